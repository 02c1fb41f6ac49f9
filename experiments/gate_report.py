"""Does the gate damp what conflicts? The tables of docs/results/gates.md and the README headline.

Reads only stored results:

- the store ``results/runs`` (``experiments/results_store.py``): each evidence run's swap sweep
  (``precal robustness CK --corruptions swap --severities 1``, ``swaps.csv``), for the calibrator
  (``*_calon_*``) and the self-gate control (``*_calself_*``), and its config and metrics for test
  accuracy;
- the free gates before the direction contract: ``results/gates/free_shipped/*.csv`` (seed 0, the
  checkpoints shipped at commit 3a8e687) and the sweeps ``*_calon_swap_seed{1,2}`` of the store
  ``results/ablation``;
- ``checkpoints/*_calon/robustness.csv``: the shipped pairs' full sweeps;
- ``results/gates/benchmark.csv`` and ``.detail.csv``: ``python benchmarks/gates.py``.

    python -m experiments.gate_report
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from experiments import results_store
from experiments.evidence import describe, describe_runs
from experiments.readme_section import replace_section
from experiments.robustness_report import kept_fraction, pairs
from precal.robustness.table import gated_modalities

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
"""The stores and tables below are under a results folder (this one, or a test's)."""
RUNS = "runs"
FREE_SHIPPED = "gates/free_shipped"
ABLATION = "ablation"
FREE_ABLATION_SWEEPS = "*_calon_swap_seed*"
"""The ablation's calibrated runs with the shipped recipe: free gates, seeds beside the shipped one."""
BENCHMARK = "gates/benchmark.csv"
TARGET = 0.9
INFORMATION_REMOVING = ("gaussian_noise", "element_dropout", "temporal_mask", "occlusion", "frame_drop",
                        "dead_pixels", "blur", "remove_zero")
"""Corruptions after which the modality carries less of the sample: its gate should fall with severity."""


def variant(calibration: str) -> str:
    """The evidence table's calibration label -> the variant these tables compare."""
    return {"off": "baseline", "self-gate": "self-gate"}.get(calibration, "calibrator")


def _swap_rows(table: pd.DataFrame, dataset: str, backbone: str, variant: str, seed: int) -> List[Dict]:
    """The swap rows at severity 1 of the calibrated model (a stored sweep may hold its baseline too)."""
    t = table[(table["corruption"] == "swap") & (table["severity"] == 1)]
    if "role" in t:
        t = t[t["role"] == "calibrated"]
    elif "calibration" in t:
        t = t[t["calibration"].astype(str).str.lower() == "true"]
    return [{"dataset": dataset, "backbone": backbone, "variant": variant, "seed": seed, "modality": r.modality,
             "auroc_alpha": r.auroc_alpha, "auroc_support": r.auroc_support} for r in t.itertuples()]


def load_swaps(results: Path = RESULTS, runs: Optional[Sequence[results_store.Run]] = None) -> pd.DataFrame:
    """Swap-detection AUROC per run and modality: free gates, the calibrator and the self-gate.
    ``runs``: the evidence store's runs, if already read (else read from ``results``)."""
    rows: List[Dict] = []
    for path in sorted((results / FREE_SHIPPED).glob("*_calon.csv")):
        t = pd.read_csv(path)
        rows += _swap_rows(t, t["dataset"].iloc[0], t["backbone"].iloc[0], "free gates", 0)
    for run in results_store.load(results / ABLATION):
        if run.sweep is None or not fnmatch(run.name, FREE_ABLATION_SWEEPS):
            continue
        seed = int(run.name.rsplit("seed", 1)[1])
        if seed == 0:  # the shipped checkpoint, already above
            continue
        t = run.sweep
        rows += _swap_rows(t, t["dataset"].iloc[0], t["backbone"].iloc[0], "free gates", seed)
    for run in results_store.load(results / RUNS) if runs is None else runs:
        if run.swap is None:
            continue
        row = describe(run)
        rows += _swap_rows(run.swap, row["dataset"], row["backbone"], variant(row["calibration"]), row["seed"])
    return pd.DataFrame(rows)


def _pm(values: pd.Series) -> str:
    if len(values) == 0:
        return "–"
    if len(values) == 1:
        return f"{values.iloc[0]:.2f} (1)"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f} ({len(values)})"


def real_table(swaps: pd.DataFrame) -> str:
    lines = ["| data set | backbone | modality | free gates | calibrator | self-gate | support cue, calibrator |",
             "|---|---|---|---|---|---|---|"]
    for (ds, bb, mod), g in swaps.groupby(["dataset", "backbone", "modality"]):
        cell = {v: g[g["variant"] == v] for v in ("free gates", "calibrator", "self-gate")}
        lines.append(f"| {ds} | {bb} | {mod} | {_pm(cell['free gates']['auroc_alpha'])} | "
                     f"{_pm(cell['calibrator']['auroc_alpha'])} | {_pm(cell['self-gate']['auroc_alpha'])} | "
                     f"{_pm(cell['calibrator']['auroc_support'])} |")
    worst = swaps[swaps["variant"] == "calibrator"].groupby(["dataset", "backbone", "modality", "seed"])[
        "auroc_alpha"].first()
    below = worst[worst < TARGET]
    note = (f"AUROC of 1 − alpha for a modality swapped in from a sample of another class (test split, 20% of the "
            f"samples swapped (severity 1), seed 0 of the corruption), mean ± std over seeds (count). Target ≥ {TARGET} "
            f"for every modality: the calibrator misses it in {len(below)} of {len(worst)} (run, modality) pairs"
            + (": " + ", ".join(f"{d}/{b}/{m} seed {s} ({v:.2f})" for (d, b, m, s), v in below.items()) if len(below)
               else "") + ".")
    return "\n".join(lines) + "\n\n" + note


def which_rows(runs: Sequence[results_store.Run]) -> pd.DataFrame:
    """For every calibrator run (of the evidence store) and swapped modality: the split's mean alpha
    of each modality with that modality swapped, as a fraction of its clean mean alpha."""
    rows: List[Dict] = []
    for run in runs:
        row = describe(run)
        if run.swap is None or variant(row["calibration"]) != "calibrator":
            continue
        t = run.swap[run.swap["role"] == "calibrated"] if "role" in run.swap else run.swap
        modalities = gated_modalities(t)
        for swapped, g in t[t["corruption"] == "swap"].groupby("modality"):
            clean, hit = g[g["severity"] == 0].iloc[0], g[g["severity"] == 1].iloc[0]
            for m in modalities:
                rows.append({"dataset": row["dataset"], "backbone": row["backbone"], "seed": row["seed"],
                             "swapped": swapped, "modality": m,
                             "ratio": float(hit[f"alpha_{m}"]) / float(clean[f"alpha_{m}"])})
    return pd.DataFrame(rows)


def which_table(rows: pd.DataFrame) -> str:
    """Does a swap damp the swapped modality more than the others? With two modalities a conflict is
    symmetric (each disagrees with the other), so the agreement cues cannot say which one moved."""
    lines = ["| data set | backbone | swapped | its alpha (× clean) | the others' alpha (× clean) | "
             "seeds where the swapped one is damped most |", "|---|---|---|---|---|---|"]
    for (ds, bb, swapped), g in rows.groupby(["dataset", "backbone", "swapped"]):
        own = g[g["modality"] == swapped].set_index("seed")["ratio"]
        others = g[g["modality"] != swapped].groupby("seed")["ratio"]
        most = sum(own[s] < others.get_group(s).min() for s in own.index)
        lines.append(f"| {ds} | {bb} | {swapped} | {own.mean():.2f} | {others.mean().mean():.2f} | "
                     f"{most} of {len(own)} |")
    note = ("Mean alpha over the test split with the modality swapped in 20% of the samples (severity 1; the "
            "other 80% are unchanged, so the drop on a swapped sample is about five times the drop shown), "
            "divided by the clean mean alpha of the same run, mean over seeds. The last column says in how many "
            "seeds the swapped modality was damped most: with three modalities it is the one whose peers agree "
            "with each other and not with it; with two, both are damped about alike: each disagrees with the "
            "other, and agreement alone cannot say which of the two moved. The AUROC above compares swapped samples with clean ones, not the two modalities of "
            "one sample, so it is high in both cases.")
    return "\n".join(lines) + "\n\n" + note


def monotone_table() -> str:
    """Per shipped calibrated checkpoint, modality and information-removing corruption: alpha by
    severity, and whether it never rises."""
    lines = ["| checkpoint | modality | corruption | alpha at severity 0 → 5 | falls monotonically | largest rise |",
             "|---|---|---|---|---|---|"]
    failures, total, rises = [], 0, []
    for name, on, _ in pairs():
        table = pd.read_csv(on / "robustness.csv")
        t = table[(table["checkpoint"] == on.name) & table["corruption"].isin(INFORMATION_REMOVING)]
        for (mod, corr), g in t.groupby(["modality", "corruption"], sort=False):
            curve = g.sort_values("severity")[f"alpha_{mod}"].to_numpy()
            rise = float(np.max(np.diff(curve), initial=0.0))
            falls = rise <= 1e-4
            total += 1
            if not falls:
                failures.append(f"{name}/{mod}/{corr}")
                rises.append(rise)
            lines.append(f"| {name} | {mod} | {corr} | {' '.join(f'{v:.3f}' for v in curve)} | "
                         f"{'yes' if falls else '**no**'} | {max(rise, 0.0):.4f} |")
    head = (f"Alpha of the corrupted modality (mean over the test split) falls monotonically with severity in "
            f"{total - len(failures)} of {total} (checkpoint, modality, corruption) curves"
            + (f"; not in: {', '.join(failures)} (largest rise {max(rises):.4f})" if failures else "") + ".")
    return head + "\n\n" + "\n".join(lines)


def synthetic_table(benchmark: Path) -> str:
    """The synthetic benchmark by set, backbone and variant. Scored on each set's fresh draw where the
    benchmark stored one (``scored_on``): the sets' own test splits hold too few corrupted samples
    per (modality, corruption) for a worst-modality figure (benchmarks/gates.py)."""
    runs = pd.read_csv(benchmark)
    detail = pd.read_csv(benchmark.with_suffix(".detail.csv"))
    keys = ["set", "backbone", "variant", "seed"] + (["scored_on"] if "scored_on" in runs and "scored_on" in detail
                                                      else [])
    per = detail[detail["corruption"].isin(["noise", "swap"])].groupby(
        keys + ["corruption"])["auroc_alpha"].min().unstack("corruption")
    runs = runs.merge(per.reset_index(), on=keys, how="left")
    cells = "smallest_cell" in runs
    attribution = "attributed_mean" in runs
    lines = ["| set | backbone | variant | seeds | accuracy (%) | gate AUROC, worst modality | swaps, worst | "
             "noise, worst | support cue, worst |"
             + (" corrupted modality damped most (chance) |" if attribution else "")
             + (" corrupted samples per cell, fewest |" if cells else ""),
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if attribution else "") + ("---|" if cells else "")]
    for (s, b, v), g in runs.groupby(["set", "backbone", "variant"]):
        acc = 100 * g["accuracy_fresh" if "accuracy_fresh" in g else "accuracy"]  # the scored samples' accuracy
        lines.append(f"| {s} | {b} | {v} | {len(g)} | {acc.mean():.1f} ± {acc.std(ddof=1) if len(g) > 1 else 0:.1f} | "
                     f"{g['gate_auroc_min'].mean():.3f} | {g['swap'].mean():.3f} | {g['noise'].mean():.3f} | "
                     f"{g['cue_auroc_min'].mean():.3f} |"
                     + (f" {g['attributed_mean'].mean():.2f} ({g['attributed_chance'].mean():.2f}) |"
                        if attribution else "")
                     + (f" {int(g['smallest_cell'].min())} |" if cells else ""))
    return "\n".join(lines)


def headline(swaps: pd.DataFrame, runs: pd.DataFrame) -> str:
    """The README's table: accuracy of the three variants, swap detection by the gate, and accuracy kept
    under corruption. ``runs``: the evidence runs (:func:`experiments.evidence.describe_runs`)."""
    multimodal = runs[runs["calibration"] != "–"]
    acc = pd.DataFrame({"dataset": multimodal["dataset"], "backbone": multimodal["backbone"],
                        "variant": multimodal["calibration"].map(variant), "seed": multimodal["seed"],
                        "accuracy": multimodal["test_accuracy"]})
    kept = {}
    for name, on, off in pairs():
        table = pd.read_csv(on / "robustness.csv")
        kept[(table["dataset"].iloc[0], table["backbone"].iloc[0])] = (kept_fraction(table, on.name),
                                                                      kept_fraction(table, off.name))
    lines = ["| data set | backbone | test accuracy (%): calibrator | self-gate | baseline | "
             "gate finds a swapped modality (AUROC, worst modality): calibrator | free gates before | "
             "accuracy kept at severity ≥ 3: calibrator | baseline |", "|---|---|---|---|---|---|---|---|---|"]
    for (ds, bb), g in acc.groupby(["dataset", "backbone"]):
        cell = {v: 100 * g[g["variant"] == v]["accuracy"] for v in ("calibrator", "self-gate", "baseline")}
        text = {v: f"{c.mean():.1f} ± {c.std(ddof=1):.1f}" if len(c) > 1 else "–" for v, c in cell.items()}
        s = swaps[(swaps["dataset"] == ds) & (swaps["backbone"] == bb)]
        worst = {v: s[s["variant"] == v].groupby("modality")["auroc_alpha"].mean().min()
                 for v in ("calibrator", "free gates")}
        k = kept.get((ds, bb), (np.nan, np.nan))
        lines.append(f"| {ds} | {bb} | {text['calibrator']} | {text['self-gate']} | {text['baseline']} | "
                     f"{worst['calibrator']:.2f} | {worst['free gates']:.2f} | {k[0]:.3f} | {k[1]:.3f} |")
    seeds = acc.groupby("variant")["seed"].nunique().max()
    return "\n".join(lines) + (
        f"\n\nTest accuracy: mean ± std over {seeds} seeds. Swap detection: mean over seeds of the AUROC of "
        "1 − alpha for the modality swapped in from a sample of another class, worst modality of the pair "
        "(1.0: every swapped modality got a lower gate than every clean one; 0.5: chance; below: backwards). "
        "Kept: accuracy under single-modality corruption at severity ≥ 3 as a fraction of clean accuracy, "
        "shipped checkpoints (seed 0). Generated by `python -m experiments.gate_report`.")


def sections(results: Path = RESULTS) -> Dict[str, str]:
    """Every section this generator writes, by name, from the stores under ``results`` (and the
    shipped checkpoints' sweeps)."""
    runs = results_store.load(results / RUNS)  # read once: three sections come from it
    swaps = load_swaps(results, runs)
    out = {"gates_real": real_table(swaps), "gates_which": which_table(which_rows(runs)),
           "gates_monotone": monotone_table(), "headline": headline(swaps, describe_runs(runs))}
    if (results / BENCHMARK).exists():
        out["gates_synthetic"] = synthetic_table(results / BENCHMARK)
    return out


def main() -> None:
    for name, body in sections().items():
        page = replace_section(name, body)
        print(f"--- {name} -> {page.relative_to(ROOT)}\n{body}\n")


if __name__ == "__main__":
    main()
