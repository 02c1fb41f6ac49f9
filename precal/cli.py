"""The ``precal`` command line: info, convert, train, evaluate, robustness, dashboard.

Errors a user can cause (a wrong path, a malformed file, an unknown modality) are printed as one
readable line and exit with status 2; tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from precal import __version__
from precal.errors import USER_ERRORS, error_line

class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors (unknown option, wrong type) on one line like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _key_value_ints(items: Sequence[str]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.isdigit():
            raise ValueError(f"--length expects NAME=STEPS with STEPS a whole number (e.g. depth=16), got {item!r}")
        out[name] = int(value)
    return out


def _key_value_floats(items: Sequence[str], option: str, example: str) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for name, value in _key_values(items, option, example).items():
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"{option} expects NAME=NUMBER (e.g. {example}), got {name}={value}") from None
    return out


def _key_values(items: Sequence[str], option: str, example: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{option} expects NAME=VALUE (e.g. {example}), got {item!r}")
        out[name] = value
    return out


def cmd_info(args: argparse.Namespace) -> None:
    from precal.describe import describe_path

    print(describe_path(Path(args.path)))


SYNTHETIC_OPTIONS = ("kinds", "samples", "classes", "corrupt_fraction", "seed")


def cmd_convert(args: argparse.Namespace) -> None:
    from precal.data.converters import convert
    from precal.safe_write import DATASET, write_folder_with

    given = [f"--{k.replace('_', '-')}" for k in SYNTHETIC_OPTIONS if getattr(args, k) is not None]
    if args.name.strip().lower() == "synthetic":
        if len(args.paths) != 1:
            raise ValueError("usage: precal convert synthetic OUT [--kinds ...] (a generated set has no source)")
        from precal.data.synthetic import SyntheticSpec, parse_kinds, write_synthetic

        options = {k: getattr(args, k) for k in SYNTHETIC_OPTIONS if getattr(args, k) is not None}
        if "kinds" in options:
            options["kinds"] = parse_kinds(options["kinds"])
        spec = SyntheticSpec(**options)
        out = write_folder_with(Path(args.paths[0]), DATASET, lambda path: write_synthetic(path, spec),
                                args.overwrite, option="OUT")
    else:
        if given:
            raise ValueError(f"{given[0]} applies only to 'precal convert synthetic'")
        if len(args.paths) != 2:
            raise ValueError(f"usage: precal convert {args.name} SRC OUT")
        out = convert(args.name, Path(args.paths[0]), Path(args.paths[1]), overwrite=args.overwrite, option="OUT")
    print(f"wrote {out}")


def cmd_train(args: argparse.Namespace) -> None:
    from precal.training import TrainConfig, train

    cfg = TrainConfig(
        data=args.data, backbone=args.backbone, calibration=args.calibration == "on", seed=args.seed,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        modalities=args.modalities or [], lengths=_key_value_ints(args.length or []),
        centre=_key_values(args.centre or [], "--centre", "skeleton=hip_center"),
        scale=_key_values(args.scale or [], "--scale", "skeleton=hip_center:shoulder_center"),
        modality_dropout=args.modality_dropout, noise_augment=args.noise_augment, swap_augment=args.swap_augment,
        recombine_augment=args.recombine_augment,
        rotate_augment=_key_value_floats(args.rotate_augment or [], "--rotate-augment", "inertial=15"),
        shear_augment=_key_value_floats(args.shear_augment or [], "--shear-augment", "skeleton=0.2"),
        time_augment=args.time_augment, mixup=args.mixup, train_split=args.train_split, selection=args.selection,
        val_split=None if args.val_split.lower() == "none" else args.val_split,
        aux_weight=args.aux_weight, aux_loss=args.aux_loss, unimodal_loss=args.unimodal_loss,
        average_epochs=args.average_epochs,
        dim=args.dim, shared_dim=args.shared_dim, dropout=args.dropout, frame_encoder=args.frame_encoder,
        point_encoder=args.point_encoder,
        velocity=args.velocity or [], norms=_key_values(args.norms or [], "--norms", "inertial=0-2,3-5"),
        cue_gradient=args.cue_gradient == "on", gate=args.gate, gate_loss=args.gate_loss, threads=args.threads,
    )
    result = train(cfg, out=args.out, progress=not args.quiet, overwrite=args.overwrite)
    if result.checkpoint is not None:
        summary = {k: v for k, v in result.metrics.items() if not isinstance(v, dict)}
        for split in ("val", "test"):
            if split in result.metrics:
                summary[split] = {k: v for k, v in result.metrics[split].items()
                                  if isinstance(v, float)}
        print(json.dumps(summary, indent=1))
        print(f"wrote {result.checkpoint}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from precal.evaluation import evaluate_checkpoint

    result, path = evaluate_checkpoint(Path(args.checkpoint), data_dir=args.data, split=args.split)
    shown = {k: v for k, v in result.items() if not isinstance(v, (list, dict))}
    print(json.dumps(shown, indent=1))
    print(f"wrote {path}")


def cmd_robustness(args: argparse.Namespace) -> None:
    from precal.robustness.sweep import run_sweep_cli

    run_sweep_cli(args)


def cmd_dashboard(args: argparse.Namespace) -> None:
    from precal.dashboard_launcher import launch

    launch(checkpoints=args.checkpoint or [], data=args.data, port=args.port, address=args.address,
           headless=args.headless)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="precal", description="Pre-fusion calibration for multimodal models.")
    parser.add_argument("--version", action="version", version=f"precal {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="describe a checkpoint folder or a data folder")
    p.add_argument("path")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help="convert a raw data set into the precal data format, or generate the "
                                        "synthetic benchmark")
    p.add_argument("name", help="utd-mhad, avletters or synthetic")
    p.add_argument("paths", nargs="+", metavar="SRC OUT",
                   help="folder with the raw files and the output data folder (synthetic: OUT only)")
    p.add_argument("--kinds", help="synthetic: modality kinds, e.g. time_series,frame_sequence,vector or vector*6")
    p.add_argument("--samples", type=int, help="synthetic: number of samples (default 900)")
    p.add_argument("--classes", type=int, help="synthetic: number of classes (default 6)")
    p.add_argument("--corrupt-fraction", type=float,
                   help="synthetic: share of samples with one corrupted modality, in every split (default 0.3)")
    p.add_argument("--seed", type=int, help="synthetic: generator seed (default 0)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT if it already holds a precal data set (anything else is never replaced)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("train", help="train a model and write a checkpoint folder")
    p.add_argument("--data", required=True, help="data folder (precal format)")
    p.add_argument("--backbone", choices=["sequence", "conv", "late", "score"], default="sequence")
    p.add_argument("--calibration", choices=["on", "off"], default="on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it already holds a precal checkpoint (anything else is never replaced)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--modalities", nargs="+", help="train on a subset (e.g. a unimodal model)")
    p.add_argument("--centre", action="append", metavar="NAME=POINT",
                   help="express a point-sequence modality relative to this point of its first step "
                        "(e.g. skeleton=hip_center); removes where the subject stands")
    p.add_argument("--scale", action="append", metavar="NAME=POINT:POINT",
                   help="measure a point-sequence modality in units of the distance between two points of "
                        "its first step (e.g. skeleton=hip_center:shoulder_center); removes body size")
    p.add_argument("--length", action="append", metavar="NAME=STEPS",
                   help="resample a modality to a fixed number of steps (repeatable)")
    p.add_argument("--modality-dropout", type=float, default=0.0,
                   help="per-sample probability of dropping one modality (same for calibrated and baseline)")
    p.add_argument("--noise-augment", type=float, default=0.0,
                   help="per-sample probability of adding noise to one modality")
    p.add_argument("--swap-augment", type=float, default=0.2,
                   help="per-sample probability of swapping one modality with a different-class sample: "
                        "the conflicts the gates learn to damp (default 0.2; the baseline sees the same swaps)")
    p.add_argument("--recombine-augment", type=float, default=0.0,
                   help="per-sample probability of exchanging one modality with a same-class sample "
                        "(new combinations of subjects' styles; same for calibrated and baseline)")
    p.add_argument("--rotate-augment", action="append", metavar="NAME=DEGREES",
                   help="rotate the 3-vectors of a modality's steps (IMU axes, skeleton joints) by a random "
                        "rotation of up to DEGREES per sample, in raw units (repeatable)")
    p.add_argument("--shear-augment", action="append", metavar="NAME=AMOUNT",
                   help="shear the 3-vectors of a modality's steps by a random matrix with ones on the "
                        "diagonal and off-diagonal entries up to AMOUNT per sample, after any rotation "
                        "(repeatable; e.g. skeleton=0.2)")
    p.add_argument("--time-augment", type=float, default=0.0,
                   help="per-sample probability of cutting up to 20%% of the recording (start and end) and "
                        "stretching the rest back, the same window for every modality")
    p.add_argument("--mixup", type=float, default=0.0, metavar="W",
                   help="blend every sample with another of the batch, partner weight drawn from [0, W] "
                        "(W <= 0.5), the same for all its modalities; the loss mixes the labels alike")
    p.add_argument("--train-split", default="train",
                   help='split to train on; several joined by "+" (e.g. train+val, with --selection last)')
    p.add_argument("--selection", choices=("best", "last"), default="best",
                   help="keep the epoch with the best validation score, or the final epoch (a fixed budget)")
    p.add_argument("--val-split", default="val", metavar="NAME",
                   help="split that validates every epoch (default: val); 'none' with --selection last: no "
                        "validation split")
    p.add_argument("--aux-weight", type=float, default=0.1, help="weight of the calibrator's prediction loss")
    p.add_argument("--aux-loss", choices=("contrastive", "mse"), default="contrastive",
                   help="objective of the calibrator's predictors (mse: regression, collapses the cues)")
    p.add_argument("--unimodal-loss", type=float, default=0.0,
                   help="weight of a per-encoder classification loss (side heads on each modality's summary; "
                        "same for calibrated and baseline)")
    p.add_argument("--average-epochs", type=int, default=0, metavar="N",
                   help="also consider the average of the weights of the last N epochs (BatchNorm statistics "
                        "recomputed); validation picks it or the best single epoch")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--shared-dim", type=int, default=16)
    p.add_argument("--dropout", type=float, default=0.1, help="dropout of encoders, fusion and head")
    p.add_argument("--frame-encoder", choices=("motion", "frames", "frame-diffs"), default="motion",
                   help="trunk for frame sequences: motion-energy images (default), per-frame CNN + temporal "
                        "conv, or the same with each frame's difference from the previous as a second channel")
    p.add_argument("--point-encoder", choices=("series", "joints"), default="series",
                   help="trunk for point sequences (skeletons): all coordinates as one series (default), or a "
                        "joint graph with shared per-joint embedding, bone-initialised adjacency and temporal conv")
    p.add_argument("--velocity", action="append", metavar="NAME",
                   help="the modality's encoder also sees each feature's change since the previous step "
                        "(repeatable; e.g. skeleton)")
    p.add_argument("--norms", action="append", metavar="NAME=RANGES",
                   help="the modality's encoder also sees the physical length of column groups, inclusive "
                        "ranges (repeatable; e.g. inertial=0-2,3-5 for |acc| and |gyro|)")
    p.add_argument("--cue-gradient", choices=("on", "off"), default="on",
                   help="off: the calibrator compares detached encoder summaries, so the cue objective "
                        "does not shape the encoders")
    p.add_argument("--gate", choices=("monotone", "free", "self"), default="monotone",
                   help="monotone (default): gates from the comparison with the other modalities, more "
                        "support never lowers and more conflict never raises them; free: the same cues "
                        "through unconstrained weights; self: the control, gates from the modality's own "
                        "summary only")
    p.add_argument("--gate-loss", type=float, default=0.0,
                   help="weight of a ranking loss that puts the gate of a swapped-in modality below the clean "
                        "ones' (needs --swap-augment; 0: off)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint and write metrics next to it")
    p.add_argument("checkpoint")
    p.add_argument("--data", help="data folder (default: the one recorded in the checkpoint)")
    p.add_argument("--split", default="test")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("robustness", help="corruption sweep over every modality x corruption x severity")
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--data", help="data folder (default: the one recorded in the checkpoint)")
    p.add_argument("--split", default="test")
    p.add_argument("--baseline", help="checkpoint to measure effective robustness against")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corruptions", nargs="+", metavar="NAME", help="only these corruptions (default: all)")
    p.add_argument("--severities", nargs="+", type=int, default=[1, 2, 3, 4, 5], metavar="S",
                   help="severities to run (1..5; severity 0, the clean input, is always included)")
    p.add_argument("--out", required=True, help="output table (.csv or .parquet)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out (and its .summary.csv) if they are tables precal robustness wrote")
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("dashboard", help="start the dashboard on localhost")
    p.add_argument("--checkpoint", action="append", help="checkpoint folder (repeatable; default: shipped ones)")
    p.add_argument("--data", help="data folder (default: sample_data/)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1", help="listen address (default: localhost only)")
    p.add_argument("--headless", action="store_true", help="do not open a browser")
    p.set_defaults(func=cmd_dashboard)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    try:
        args, unknown = build_parser().parse_known_args(argv)
    except SystemExit as exc:  # --help, --version, or an argparse error (already printed, one line)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    if unknown:
        print(f"precal {args.command}: error: unrecognized arguments: {' '.join(unknown)} "
              f"(see precal {args.command} --help)", file=sys.stderr)
        return 2
    try:
        args.func(args)
    except USER_ERRORS as exc:
        print(f"precal {args.command}: error: {error_line(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
