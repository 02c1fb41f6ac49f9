"""The ``precal`` command line: info, convert, train, evaluate, robustness, dashboard, precompute.

Errors a user can cause (a wrong path, a malformed file, an unknown modality) are printed as one
readable line and exit with status 2; tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, get_args, get_type_hints

from precal import __version__
from precal.errors import USER_ERRORS, error_line


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors (unknown option, wrong type) on one line like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _key_value_ints(items: Sequence[str], option: str, example: str) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.isdigit():
            raise ValueError(f"{option} expects NAME=STEPS with STEPS a whole number (e.g. {example}), got {item!r}")
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
        out = convert(args.name, Path(args.paths[0]), Path(args.paths[1]), overwrite=args.overwrite, option="OUT",
                      trusted=args.trust_pickle)
    print(f"wrote {out}")


def cmd_train(args: argparse.Namespace) -> None:
    from precal.training import train
    from precal.training.config import TrainConfig, read_settings

    values = read_settings(args.config) if args.config else {}
    if "model" in values:  # a settings file may come from anyone: it never names code to run
        raise ValueError(f"--config {args.config}: the setting 'model' is refused in a settings file; precal imports "
                         "a model's code only when you name it on the command line (--model)")
    values.update(train_settings(args))
    if "data" not in values:
        raise ValueError("--data is required (or a 'data' setting in --config)")
    cfg = TrainConfig.from_mapping(values, source=args.config or "precal train")
    result = train(cfg, out=args.out, progress=not args.quiet, overwrite=args.overwrite)
    if result.checkpoint is not None:
        summary = {k: v for k, v in result.metrics.items() if not isinstance(v, dict)}
        for split in ("val", "test"):
            if split in result.metrics:
                summary[split] = {k: v for k, v in result.metrics[split].items()
                                  if isinstance(v, float)}
        print(json.dumps(summary, indent=1))
        print(f"wrote {result.checkpoint}")


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """One option per field of :class:`~precal.training.config.TrainConfig` that the command line
    offers, typed, with choices and help (and the default) from the field. Options the user does not
    give are left out of the namespace, so that a ``--config`` file's settings stand."""
    from dataclasses import MISSING

    from precal.training.config import TrainConfig, cli_fields, option_name

    types = get_type_hints(TrainConfig)
    for f in cli_fields():
        meta = f.metadata
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)  # type: ignore[misc]
        shown = {True: "on", False: "off"}.get(default, default) if isinstance(default, bool) else default
        help_text = meta["help"].replace("%", "%%")
        if shown is not None and meta["form"] in ("value", "switch"):
            help_text = f"{help_text} (default: {shown})" if help_text else f"default: {shown}"
        kw = dict(dest=f.name, help=help_text or None, default=argparse.SUPPRESS, metavar=meta["metavar"])
        form = meta["form"]
        if form == "switch":
            kw.update(choices=("on", "off"), metavar=None)
        elif form == "list":
            kw.update(nargs="+")
        elif form in ("repeat", "pairs"):
            kw.update(action="append")
        else:
            kw.update(type={int: int, float: float}.get(types[f.name]), choices=meta["choices"])
        parser.add_argument(option_name(f), **{k: v for k, v in kw.items() if v is not None or k == "default"})


def train_settings(args: argparse.Namespace) -> Dict[str, object]:
    """The TrainConfig fields given on the command line, converted to the fields' types."""
    from precal.training.config import TrainConfig, cli_fields, option_name

    types = get_type_hints(TrainConfig)
    out: Dict[str, object] = {}
    for f in cli_fields():
        if not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        form, option = f.metadata["form"], option_name(f)
        if form == "switch":
            value = value == "on"
        elif form == "pairs":
            parse = {int: _key_value_ints, float: _key_value_floats}.get(get_args(types[f.name])[1], _key_values)
            value = parse(value, option, f.metadata["example"])
        elif f.name == "val_split" and isinstance(value, str) and value.lower() == "none":
            value = None
        out[f.name] = value
    return out


def check_model_options(args: argparse.Namespace, checkpoints: Sequence[str]) -> None:
    """``--model`` and ``--weights`` against the checkpoints given: a model needs a checkpoint or
    data, weights belong to a model without a checkpoint (a checkpoint holds its own)."""
    if args.weights and not args.model:
        raise ValueError("--weights needs --model FACTORY (the weights of your own model)")
    if args.weights and checkpoints:
        raise ValueError("--weights applies to --model without a checkpoint; a checkpoint holds its own weights")
    if not checkpoints and not args.model:
        raise ValueError("name a CHECKPOINT, or your own model with --model FILE.py:NAME --data DIR")
    if args.model:
        from precal.own_model import FactorySpec

        FactorySpec.parse(args.model)


def print_notes(command: str, notes: Sequence[str]) -> None:
    for note in notes:
        print(f"precal {command}: warning: {note}", file=sys.stderr)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from precal.evaluation import evaluate_checkpoint, evaluate_own_model

    check_model_options(args, [args.checkpoint] if args.checkpoint else [])
    out = Path(args.out) if args.out else None
    if args.checkpoint:
        result, path = evaluate_checkpoint(Path(args.checkpoint), data_dir=args.data, split=args.split,
                                           model=args.model, out=out, overwrite=args.overwrite,
                                           note=lambda text: print_notes("evaluate", [text]))
    else:
        result, path = evaluate_own_model(args.model, args.data, args.split, args.weights, out, args.overwrite)
    shown = {k: v for k, v in result.items() if not isinstance(v, (list, dict))}
    print(json.dumps(shown, indent=1))
    if path is not None:
        print(f"wrote {path}")


def cmd_robustness(args: argparse.Namespace) -> None:
    from precal.robustness.sweep import run_sweep_cli

    check_model_options(args, args.checkpoints)
    run_sweep_cli(args, note=lambda text: print_notes("robustness", [text]))


def cmd_dashboard(args: argparse.Namespace) -> None:
    from precal.dashboard.launcher import launch

    if args.model:
        check_model_options(args, args.checkpoint or [])
        if not args.checkpoint and not args.data:
            raise ValueError("--model without --checkpoint needs --data DIR (a data set folder)")
        module = args.model.rpartition(":")[0]
        if module.endswith(".py") and not Path(module).expanduser().is_file():
            raise ValueError(f"--model: no such file {module}")
    elif args.weights:
        raise ValueError("--weights needs --model FACTORY (the weights of your own model)")
    launch(checkpoints=args.checkpoint or [], data=args.data, port=args.port, address=args.address,
           headless=args.headless, model=args.model, weights=args.weights)


def cmd_precompute(args: argparse.Namespace) -> None:
    """The dashboard's caches, filled by the app's own code (``precal.dashboard.precompute``): like
    ``precal dashboard``, this command only calls into the app."""
    from precal.dashboard import precompute

    check_model_options(args, args.checkpoints)
    if args.threads < 0:
        raise ValueError(f"--threads must be at least 0, got {args.threads}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    # run() checks the options (methods, corruptions, severities) before it opens anything
    precompute.run(args.checkpoints, data=args.data, split=args.split, methods=precompute.names(args.methods) or [],
                   features=precompute.names(args.features), corruptions=precompute.names(args.corruptions),
                   severities=args.severities,
                   sweep=not args.no_sweep, model=args.model, weights=args.weights, progress=not args.quiet)


def add_model_options(parser: argparse.ArgumentParser, weights: bool = True) -> None:
    """``--model`` (your own model's factory) and ``--weights`` (its state dict)."""
    parser.add_argument("--model", metavar="FACTORY",
                        help="your own model: FILE.py:NAME or package.module:NAME, called with the data set's schema; "
                             "precal imports this code because you name it here (see examples/own_model)")
    if weights:
        parser.add_argument("--weights", metavar="FILE.safetensors",
                            help="--model without a checkpoint: its weights, a safetensors state dict (never a pickle); "
                                 "default: as the factory builds it")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="precal", description="Pre-fusion calibration for multimodal models.")
    parser.add_argument("--version", action="version", version=f"precal {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="describe a checkpoint folder or a data folder")
    p.add_argument("path")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help="convert a raw data set into the precal data format, or generate the "
                                        "synthetic benchmark")
    p.add_argument("name", help="utd-mhad, avletters, mmsa (CMU-MOSI/MOSEI feature pickles) or synthetic")
    p.add_argument("paths", nargs="+", metavar="SRC OUT",
                   help="the raw files (a folder; mmsa: the .pkl file) and the output data folder (synthetic: OUT only)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="mmsa: read SRC although it is a Python pickle, which can run code: only for a file you "
                        "trust; it is read with an unpickler that admits numpy arrays only")
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
    p.add_argument("--config", metavar="FILE",
                   help="a JSON or TOML file of training settings (the fields of precal.training.TrainConfig, "
                        "e.g. experiments/recipes/utd_mhad.json); options given here override it")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it already holds a precal checkpoint (anything else is never replaced)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint (and write metrics next to it), or your own model")
    p.add_argument("checkpoint", nargs="?", help="checkpoint folder (optional with --model)")
    add_model_options(p)
    p.add_argument("--data", help="data folder (default: the one recorded in the checkpoint)")
    p.add_argument("--split", default="test")
    p.add_argument("--out", metavar="FILE", help="write the metrics to this JSON file (default: eval_<split>.json in "
                                                 "the checkpoint; without a checkpoint: nothing is written)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it is a metrics file precal wrote")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("robustness", help="corruption sweep over every modality x corruption x severity")
    p.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT", help="checkpoint folders (optional with --model)")
    add_model_options(p)
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
    p.add_argument("--checkpoint", action="append", help="checkpoint folder, or a folder of checkpoint folders (repeatable; default: shipped ones)")
    add_model_options(p)
    p.add_argument("--data", help="data folder (default: sample_data/)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1", help="listen address (default: localhost only)")
    p.add_argument("--headless", action="store_true", help="do not open a browser")
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("precompute", help="fill the dashboard's caches (predictions, 2-D maps, robustness sweeps) "
                                          "ahead of a demo or for a large data set")
    p.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT",
                   help="checkpoint folders or folders of them, as given to precal dashboard --checkpoint "
                        "(optional with --model)")
    add_model_options(p)
    p.add_argument("--data", help="data folder, or a folder of data sets (default: as the dashboard: the one "
                                  "recorded in the checkpoint, else sample_data/)")
    p.add_argument("--split", help="the split to fill (default: test, as the dashboard opens)")
    p.add_argument("--methods", nargs="+", default=["pca,tsne,umap"], metavar="M",
                   help="2-D maps to fit: pca, tsne, umap (comma- or space-separated; default: all three)")
    p.add_argument("--features", nargs="+", metavar="NAME",
                   help="feature spaces to map: fused and/or modality names (default: all, as the page offers)")
    p.add_argument("--corruptions", nargs="+", metavar="NAME",
                   help="corruptions of the robustness page's sweep (default: the page's, gaussian_noise and "
                        "remove_absent)")
    p.add_argument("--severities", nargs="+", type=int, default=[1, 3, 5], metavar="S",
                   help="severities of that sweep (default: 1 3 5, the page's; 0, the clean input, is always in)")
    p.add_argument("--no-sweep", action="store_true", help="no robustness sweep")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_precompute)
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
