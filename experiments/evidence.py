"""Build the evidence table from stored run results and write it into the README.

Reads every run of the store ``results/runs`` (metrics and config of each checkpoint trained by
``scripts/run_evidence.sh``, see ``experiments/results_store.py``), aggregates test accuracy (and
macro-F1) over seeds as mean ± std, writes ``results/evidence.csv`` and replaces the section between
the evidence markers in README.md. Nothing in the table is typed by hand.

    python -m experiments.evidence
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import pandas as pd

from experiments import results_store
from experiments.readme_section import replace_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
"""The stores below are folders under a results folder (this one, or a test's)."""
RUNS = "runs"
PREVIOUS_INPUTS = "input_ablation/runs"
"""UTD-MHAD runs with the earlier input representation (per-frame depth trunk, skeletons in camera
coordinates), same recipe otherwise, 40 epochs: ``scripts/train_input_ablation.sh``."""
CURRENT_INPUTS_40 = "input_ablation/current"
"""UTD-MHAD runs with the current input representation at the same 40-epoch budget (the evidence
runs before UTD-MHAD's budget became 60 epochs), so that the comparison changes only the inputs."""
AVL_VALIDATION_SELECTION = "avletters_validation_selection/runs"
"""The AVLetters evidence runs of the recipe before train+val: trained on the train split, the best
validation epoch kept (``scripts/run_evidence.sh`` at the time), same seeds and budget."""
UTD_WITHOUT_DERIVED = "utd_mhad_without_derived_inputs/runs"
"""The UTD-MHAD evidence runs from before the encoders saw derived inputs (joint velocities, the
IMU's |acc| and |gyro|): the same recipe, seeds and budget otherwise (validation selection)."""
UTD_VALIDATION_SELECTION = "utd_mhad_validation_selection/runs"
"""The UTD-MHAD evidence runs with derived inputs from before train+val: trained on the train split,
the best validation epoch kept, same seeds, inputs and budget."""
FREE_GATES = "free_gates/runs"
"""The calibrated evidence runs from before the direction contract (free gates on raw cues), same
recipe, seeds and budget: the "before" of the gate change. The earlier before/after tables (inputs,
train+val) compare these, as their own earlier runs had free gates too."""

GATE_LABELS = {"monotone": "on", "self": "self-gate", "free": "on, free gates"}
"""The calibration column: the calibrator (monotone gates), the self-gate control, and the earlier
free gates (configs written before the field existed have free gates)."""


def fit_description(training: dict) -> str:
    """What a run trained on and which epoch it kept (runs from before the option: train, best)."""
    epoch = "final epoch" if training.get("selection", "best") == "last" else "best val epoch"
    return f"{training.get('train_split', 'train')}, {epoch}"


def calibration_label(model: dict) -> str:
    """The calibration column of a run's model config; "–" with one modality (the calibrator has no
    peer and is the identity: the flag means nothing)."""
    if len(model["modalities"]) == 1:
        return "–"
    return GATE_LABELS[model.get("gate", "free")] if model["calibration"] else "off"


def describe(run: results_store.Run) -> dict:
    """One run as a row of the evidence table: what was trained, and how well it did."""
    cfg, metrics = run.config, run.metrics
    training, model = cfg["training"], cfg["model"]
    return {
        "dataset": cfg["schema"]["name"],
        "modalities": "+".join(model["modalities"]),
        "backbone": model["backbone"],
        "calibration": calibration_label(model),
        "seed": training["seed"],
        "test_accuracy": metrics["test"]["accuracy"],
        "test_macro_f1": metrics["test"]["macro_f1"],
        "val_accuracy": metrics["val"]["accuracy"],
        "train_seconds": metrics.get("train_seconds"),
        "threads": training.get("threads", 0),
        "epochs": training["epochs"],
        "fit": fit_description(training),
    }


def load_runs(store: Path) -> pd.DataFrame:
    """Every run of a store with metrics, one row each (:func:`describe`)."""
    return describe_runs(results_store.load(store))


def describe_runs(runs: Sequence[results_store.Run]) -> pd.DataFrame:
    """The runs with metrics, one row each (:func:`describe`), for a store already read."""
    return pd.DataFrame([describe(run) for run in runs if run.metrics is not None])


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    keys = ["dataset", "modalities", "backbone", "calibration", "epochs", "fit"]
    g = runs.groupby(keys)
    out = g.agg(seeds=("seed", "nunique"), acc_mean=("test_accuracy", "mean"), acc_std=("test_accuracy", "std"),
                f1_mean=("test_macro_f1", "mean"), f1_std=("test_macro_f1", "std"),
                train_s=("train_seconds", "mean")).reset_index()
    return out.fillna({"acc_std": 0.0, "f1_std": 0.0})


def markdown(table: pd.DataFrame) -> str:
    lines = ["| data set | modalities | backbone | calibration | epochs | trained on, kept | seeds | test accuracy (%) "
             "| test macro-F1 (%) | train time (s) |", "|---|---|---|---|---|---|---|---|---|---|"]
    def pm(mean: float, std: float, n: int) -> str:
        return f"{100 * mean:.1f} ± {100 * std:.1f}" if n > 1 else f"{100 * mean:.1f} (one seed)"

    for r in table.sort_values(["dataset", "modalities", "backbone", "calibration"]).itertuples():
        lines.append(f"| {r.dataset} | {r.modalities} | {r.backbone} | {r.calibration} | {r.epochs} | {r.fit} | {r.seeds} | "
                     f"{pm(r.acc_mean, r.acc_std, r.seeds)} | {pm(r.f1_mean, r.f1_std, r.seeds)} | {r.train_s:.0f} |")
    return "\n".join(lines)


def paired_differences(runs: pd.DataFrame) -> str:
    """Calibrated (and self-gated) minus baseline test accuracy, paired by seed (same data, budget,
    augmentation)."""
    multi = runs[runs["modalities"].str.contains(r"\+")]
    lines = []
    for (ds, bb), g in multi.groupby(["dataset", "backbone"]):
        off = g[g["calibration"] == "off"].set_index("seed")["test_accuracy"]
        for label, name in (("on", "calibrated"), ("self-gate", "self-gated")):
            on = g[g["calibration"] == label].set_index("seed")["test_accuracy"]
            common = on.index.intersection(off.index)
            if len(common) == 0:
                continue
            d = 100 * (on[common] - off[common])
            spread = f" ± {d.std(ddof=1):.1f}" if len(d) > 1 else ""
            lines.append(f"- {ds}, {bb}: {name} − baseline = {d.mean():+.1f}{spread} points over {len(common)} "
                         f"paired seed(s) (per seed: {', '.join(f'{x:+.1f}' for x in d)})")
    return "\n".join(lines)


def load_dynamics(store: Path) -> pd.DataFrame:
    """Per multimodal run and modality: the gate (mean alpha) and the unimodal probe's validation
    accuracy at the selected epoch, i.e. of the weights the run kept (its history)."""
    rows = []
    for run in results_store.load(store):
        if run.metrics is None:
            continue
        cfg = run.config
        model = cfg["model"]
        if len(model["modalities"]) < 2:
            continue
        epoch = run.metrics["selected_epoch"]
        training = cfg["training"]
        probe_on_training_data = training.get("val_split", "val") in training.get("train_split", "train").split("+")
        if run.history is None:
            raise SystemExit(f"run {run.name} in {store} has no history: the probes need it")
        record = next(r for r in run.history if r["epoch"] == epoch)
        for name, stats in record["modalities"].items():
            rows.append({"dataset": cfg["schema"]["name"], "backbone": model["backbone"],
                         "calibration": calibration_label(model), "seed": training["seed"],
                         "modality": name, "alpha": stats["alpha_mean"], "probe": stats["probe_accuracy"],
                         "probe_on_training_data": probe_on_training_data})
    return pd.DataFrame(rows)


def dynamics_table(dynamics: pd.DataFrame) -> str:
    """Gate and unimodal probe per modality, calibrated next to baseline, mean over seeds."""
    g = dynamics.groupby(["dataset", "backbone", "modality", "calibration"]).agg(
        alpha=("alpha", "mean"), probe=("probe", "mean"), seeds=("seed", "nunique"),
        trained_on=("probe_on_training_data", "any")).unstack("calibration")
    lines = ["| data set | backbone | modality | mean alpha, calibrated | probe, calibrated (%) | "
             "probe, baseline (%) | seeds |", "|---|---|---|---|---|---|---|"]
    for (ds, bb, mod), r in g.iterrows():
        mark = " †" if r[("trained_on", "on")] or r[("trained_on", "off")] else ""
        lines.append(f"| {ds} | {bb} | {mod} | {r[('alpha', 'on')]:.2f} | {100 * r[('probe', 'on')]:.1f}{mark} | "
                     f"{100 * r[('probe', 'off')]:.1f}{mark} | {int(r[('seeds', 'on')])} |")
    return "\n".join(lines) + (
        "\n\nAt the selected epoch of each evidence run (`history.json`), mean over seeds. Alpha is the "
        "instance-wise gate (1 = unchanged; the baseline has none). The probe is the model's validation "
        "accuracy with every other modality marked absent: how much the fused model can do with this "
        "modality alone. † The runs trained on their validation split too, so this probe measures how "
        "well the modality alone fits data the model has seen, not how well it generalises.")


def comparison(current: pd.DataFrame, previous: pd.DataFrame, before: str, after: str, footer: str) -> str:
    """Per configuration present in both, test accuracy before and after a change, mean ± std over seeds."""
    keys = ["modalities", "backbone", "calibration"]
    now = aggregate(current).set_index(keys)
    then = aggregate(previous).set_index(keys)
    lines = [f"| modalities | backbone | calibration | {before} (%) | {after} (%) | change (points) |",
             "|---|---|---|---|---|---|"]
    for key in then.index.intersection(now.index):
        b, n = then.loc[key], now.loc[key]
        lines.append(f"| {' | '.join(key)} | {100 * b.acc_mean:.1f} ± {100 * b.acc_std:.1f} ({b.seeds}) | "
                     f"{100 * n.acc_mean:.1f} ± {100 * n.acc_std:.1f} ({n.seeds}) | "
                     f"{100 * (n.acc_mean - b.acc_mean):+.1f} |")
    return "\n".join(lines) + "\n\n" + footer


def gate_change(current: pd.DataFrame, free: pd.DataFrame) -> str:
    """Calibrated models with free gates (before the direction contract) vs monotone gates."""
    calibrated = current[current["calibration"] == GATE_LABELS["monotone"]]
    before = free[free["calibration"] == GATE_LABELS["free"]].assign(calibration=GATE_LABELS["monotone"])
    return comparison(calibrated, before, "free gates", "monotone gates",
                      "Test accuracy of the calibrated models, mean ± std (seeds); same recipe, seeds and budget. "
                      "The free-gate runs are kept in `results/free_gates/runs/`.")


def input_representation(current: pd.DataFrame, previous: pd.DataFrame) -> str:
    """Current vs earlier input representation on UTD-MHAD, per configuration, mean ± std over seeds."""
    return comparison(current, previous, "per-frame depth, camera skeleton", "motion-energy depth, hip-centred skeleton",
                      "Test accuracy, mean ± std (seeds) on the cross-subject split, both with the 40-epoch budget.")


def validation_fit(current: pd.DataFrame, previous: pd.DataFrame, test: str, budget: int, kept: Path) -> str:
    """Validation held back for selection vs trained on train+val, final epoch kept."""
    return comparison(current, previous, "train, best validation epoch", "train+val, final epoch",
                      f"Test accuracy on {test}, mean ± std (seeds); same seeds, inputs, augmentation and "
                      f"{budget}-epoch budget. The earlier runs are kept in `{kept.relative_to(ROOT)}/`.")


def derived_inputs(current: pd.DataFrame, previous: pd.DataFrame) -> str:
    """UTD-MHAD with and without the derived input channels, same recipe otherwise."""
    return comparison(current, previous, "without derived inputs", "with joint velocities and IMU norms",
                      "Test accuracy, mean ± std (seeds) on the cross-subject split; same seeds, inputs, augmentation "
                      "and 60-epoch budget, both trained on the train split with the best validation epoch kept. "
                      "Depth alone is the control (no derived inputs). The runs are kept in "
                      "`results/utd_mhad_without_derived_inputs/runs/` and `results/utd_mhad_validation_selection/runs/`.")


def train_time_note(runs: pd.DataFrame) -> str:
    seconds = runs["train_seconds"].dropna()
    threads = runs["threads"].value_counts()
    spread = runs.groupby(["dataset", "modalities", "backbone", "calibration"])["train_seconds"].agg(
        lambda t: t.max() / t.min()).max()
    return (f"Train time: mean wall-clock seconds per run on the 2-core machine, which the runs shared "
            f"({threads.get(1, 0)} runs used one thread with another run beside them, {threads.get(2, 0)} used "
            f"two threads; other work ran on the machine at times), so one configuration's times vary by up "
            f"to {spread:.0f}× between seeds. The longest single run took {seconds.max():.0f} s.")


def sections(results: Path = RESULTS) -> Dict[str, str]:
    """Every section this generator writes, by name, from the stores under ``results``."""
    def load(store: str) -> pd.DataFrame:
        return load_runs(results / store)

    runs = load(RUNS)
    if runs.empty:
        raise SystemExit(f"no results in {results / RUNS}; run scripts/run_evidence.sh first")
    out = {"evidence": "\n\n".join([markdown(aggregate(runs)), paired_differences(runs), train_time_note(runs)]),
           "dynamics": dynamics_table(load_dynamics(results / RUNS))}
    free = load(FREE_GATES)
    if not free.empty:
        out["gate_accuracy"] = gate_change(runs, free)
    # The earlier before/after tables compare runs that all had free gates.
    with_free = pd.concat([runs, free], ignore_index=True) if not free.empty else runs
    for marker, dataset, kept, test, budget in (
            ("avl_fit", "avletters", AVL_VALIDATION_SELECTION, "repetition 3", 40),
            ("utd_fit", "utd-mhad", UTD_VALIDATION_SELECTION, "the cross-subject split", 60)):
        held_back = load(kept)
        if not held_back.empty:
            out[marker] = validation_fit(with_free[with_free["dataset"] == dataset], held_back, test, budget,
                                         RESULTS / kept)
    without, with_derived = load(UTD_WITHOUT_DERIVED), load(UTD_VALIDATION_SELECTION)
    # (both sets of runs had free gates)
    if not without.empty and not with_derived.empty:  # both with validation selection: one change
        out["utd_derived"] = derived_inputs(with_derived, without)
    previous, current_40 = load(PREVIOUS_INPUTS), load(CURRENT_INPUTS_40)
    if not previous.empty and not current_40.empty:
        out["inputs"] = input_representation(current_40, previous)
    return out


def main() -> None:
    written = sections()  # all computed before anything is written
    aggregate(load_runs(RESULTS / RUNS)).to_csv(RESULTS / "evidence.csv", index=False, float_format="%.4f")
    for name, body in written.items():
        replace_section(name, body)
        print(body)


if __name__ == "__main__":
    main()
