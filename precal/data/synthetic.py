"""A synthetic multimodal benchmark with ground-truth reliability.

Why it exists: on real data one can only *apply* a corruption and ask whether the gates noticed.
Here every sample's modalities are generated from one latent, and a known fraction of (sample,
modality) pairs is corrupted at generation time, in every split: drowned in noise, swapped in from a
sample of another class, or removed. The truth is stored with the data (``truth.<modality>``), so a
gate is scored against what really happened (:func:`precal.gate_truth.truth_table`), on any number of
modalities of any kind, in seconds, with no tuning to one real data set.

The generative story, per sample ``i`` of class ``y``:

* a latent ``z_i = mu_y + spread * eps_i`` (``latent_dim``): the class, plus a sample-specific part
  that every modality shares, so that the modalities agree on more than the class and a swap from
  another sample is a real conflict;
* modality ``m`` sees ``A_m z_i`` through its own fixed random map, rendered as its kind:
  ``vector`` (one (F,) step), ``time_series`` (T x F, a per-feature oscillation whose amplitude and
  phase carry the latent), ``token_sequence`` (T x F, tokens that each carry the latent plus a token
  position code) or ``frame_sequence`` (T x H x W, smooth blobs whose brightness carries the latent,
  drifting over time); lengths vary per sample;
* independent observation noise per modality, with a different level per modality (modalities differ
  in reliability, as real ones do).

Corruptions (each corrupted sample has exactly one corrupted modality; the others stay clean):

* ``noise``: Gaussian noise at ``noise_snr_db`` (default -10 dB: the modality is mostly noise);
* ``swap``: the modality of a random sample of another class (in the same split);
* ``absent``: the modality is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from precal.data.schema import MODALITY_KINDS, DatasetSchema, ModalitySchema
from precal.data.storage import TRUTH_CODES, MultimodalData, build_ragged, save_dataset

CORRUPTIONS = ("noise", "swap", "absent")
SPLIT_FRACTIONS = (("train", 0.6), ("val", 0.2), ("test", 0.2))
LIMITS = {"samples": (12, 200_000), "classes": (2, 1000), "modalities": (1, 32), "latent_dim": (1, 512)}


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate; every field has a bound checked before anything is allocated."""

    kinds: Tuple[str, ...] = ("time_series", "frame_sequence", "vector")
    samples: int = 900
    classes: int = 6
    latent_dim: int = 8
    spread: float = 0.7  # sample-specific latent variation, relative to the class means' scale
    corrupt_fraction: float = 0.3  # share of samples (every split) with one corrupted modality
    corruptions: Tuple[str, ...] = CORRUPTIONS
    noise_snr_db: float = -10.0
    seed: int = 0
    name: str = "synthetic"
    feature_dims: Dict[str, int] = field(default_factory=lambda: {"vector": 16, "time_series": 6,
                                                                    "token_sequence": 12})
    frame_size: Tuple[int, int] = (12, 12)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(self.kinds))
        object.__setattr__(self, "corruptions", tuple(self.corruptions))
        for key, (lo, hi) in LIMITS.items():
            value = len(self.kinds) if key == "modalities" else getattr(self, key)
            if not lo <= value <= hi:
                raise ValueError(f"synthetic {key} must be between {lo} and {hi}, got {value}")
        unknown = [k for k in self.kinds if k not in MODALITY_KINDS]
        if unknown:
            raise ValueError(f"unknown modality kind {unknown[0]!r}; choose from {', '.join(MODALITY_KINDS)}")
        bad = [c for c in self.corruptions if c not in CORRUPTIONS]
        if bad:
            raise ValueError(f"unknown synthetic corruption {bad[0]!r}; choose from {', '.join(CORRUPTIONS)}")
        if not 0.0 <= self.corrupt_fraction <= 1.0:
            raise ValueError(f"corrupt fraction must be between 0 and 1, got {self.corrupt_fraction}")
        if not 0.0 <= self.spread <= 10.0:
            raise ValueError(f"spread must be between 0 and 10, got {self.spread}")
        if self.samples < self.classes * 2:
            raise ValueError(f"{self.samples} samples are too few for {self.classes} classes (at least 2 each)")
        if not all(2 <= s <= 128 for s in self.frame_size):
            raise ValueError(f"frame size must be between 2 and 128 per side, got {self.frame_size}")
        if any(not 1 <= d <= 4096 for d in self.feature_dims.values()):
            raise ValueError(f"feature dims must be between 1 and 4096, got {self.feature_dims}")

    @property
    def modality_names(self) -> List[str]:
        """``<kind>`` when the kind occurs once, ``<kind>_<j>`` (1-based) when it repeats."""
        names = []
        for i, kind in enumerate(self.kinds):
            repeats = self.kinds.count(kind) > 1
            names.append(f"{kind}_{self.kinds[:i + 1].count(kind)}" if repeats else kind)
        return names


BENCHMARK_SETS: Dict[str, SyntheticSpec] = {
    "mixed3": SyntheticSpec(kinds=("time_series", "frame_sequence", "vector"), samples=2000),
    "vector6": SyntheticSpec(kinds=("vector",) * 6, samples=2000),
    "tokens2": SyntheticSpec(kinds=("token_sequence", "time_series"), samples=2000),
}
"""The gate benchmark's sets (``benchmarks/gates.py``): mixed kinds, many vector views, and two
modalities; the experiments that study its results generate the same worlds from here."""


def parse_kinds(text: str) -> Tuple[str, ...]:
    """``"vector*6"`` or ``"time_series,frame_sequence,vector"`` (``KIND*COUNT`` repeats a kind)."""
    kinds: List[str] = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        kind, _, count = part.partition("*")
        if count and (not count.isdigit() or not 1 <= int(count) <= LIMITS["modalities"][1]):
            raise ValueError(f"--kinds: repeat count must be 1..{LIMITS['modalities'][1]}, got {part!r}")
        kinds.extend([kind.strip()] * (int(count) if count else 1))
    if not kinds:
        raise ValueError("--kinds names no modality (e.g. time_series,frame_sequence,vector or vector*6)")
    return tuple(kinds)


@dataclass
class _World:
    """What every sample of a generated set shares: the class means, each modality's observation
    noise level and its renderer (the fixed random maps). A fresh draw of the same world is new samples
    that a model trained on the set has never seen, from the same distribution."""

    means: np.ndarray
    levels: np.ndarray
    renderers: Dict[str, "_Renderer"]


def generate(spec: SyntheticSpec) -> MultimodalData:
    """The data set described by ``spec``; the same spec always gives the same arrays."""
    return _generate(spec)[0]


def fresh_draw(spec: SyntheticSpec, samples: int, draw: int = 1) -> MultimodalData:
    """``samples`` new samples of the world ``spec`` describes, all in one ``test`` split, corrupted
    at the same rate and recorded in the same truth.

    Why: the gates are scored per (modality, kind of corruption), and a 2,000-sample set leaves some
    2-30 corrupted test samples in a cell, where one AUROC has a standard error of 0.04 or more and
    the worst of several modalities is biased low by about as much. A model trained on ``generate(spec)``
    is scored on as many unseen samples of the same distribution as the figure needs. ``draw`` numbers
    independent draws (0 is not allowed: it would not be independent of the set itself). The draw
    keeps the set's schema, which describes the world it was drawn from."""
    if not LIMITS["samples"][0] <= samples <= LIMITS["samples"][1]:
        raise ValueError(f"synthetic samples must be between {LIMITS['samples'][0]} and {LIMITS['samples'][1]}, "
                         f"got {samples}")
    if draw < 1:
        raise ValueError(f"a fresh draw is numbered from 1, got {draw}")
    base, world = _generate(spec)
    rng = np.random.default_rng([spec.seed, draw])
    labels = np.arange(samples) % spec.classes
    rng.shuffle(labels)
    z = world.means[labels] + spec.spread * rng.standard_normal((samples, spec.latent_dim))
    splits = {"test": np.arange(samples, dtype=np.int64)}
    sequences = {name: [render(z[i], level, rng) for i in range(samples)]
                 for (name, render), level in zip(world.renderers.items(), world.levels)}
    truth = _corrupt(spec, sequences, labels, splits, rng)
    modalities = {m.name: build_ragged(sequences[m.name], m.step_shape, np.float32) for m in base.schema.modalities}
    return MultimodalData(base.schema, np.array([f"d{draw}s{i:06d}" for i in range(samples)]),
                          labels.astype(np.int64), modalities, splits, truth)


def _generate(spec: SyntheticSpec) -> Tuple[MultimodalData, _World]:
    rng = np.random.default_rng(spec.seed)
    n, c, latent = spec.samples, spec.classes, spec.latent_dim
    labels = np.arange(n) % c
    rng.shuffle(labels)
    means = rng.standard_normal((c, latent))
    z = means[labels] + spec.spread * rng.standard_normal((n, latent))
    splits = _splits(labels, rng)
    names = spec.modality_names
    # Observation noise differs between modalities: from 0.3 (clean) to 0.9 (noisy) of the signal.
    levels = np.linspace(0.3, 0.9, len(names)) if len(names) > 1 else np.array([0.5])
    levels = levels[rng.permutation(len(names))]
    sequences: Dict[str, List[Optional[np.ndarray]]] = {}
    schemas = []
    renderers: Dict[str, _Renderer] = {}
    for name, kind, level in zip(names, spec.kinds, levels):
        render = renderers[name] = _Renderer(kind, spec, latent, rng)
        sequences[name] = [render(z[i], level, rng) for i in range(n)]
        schemas.append(ModalitySchema(name, kind, render.step_shape, unit="a.u.",
                                      description=f"generated {kind}, observation noise {level:.2f} of the signal"))
    truth = _corrupt(spec, sequences, labels, splits, rng)
    schema = DatasetSchema(
        name=spec.name, modalities=tuple(schemas), task="classification",
        class_names=tuple(f"class_{k}" for k in range(c)),
        description=(f"Synthetic benchmark: {len(names)} modalities ({', '.join(spec.kinds)}) generated from a "
                     f"{latent}-d latent of {c} classes; {spec.corrupt_fraction:.0%} of the samples of every "
                     f"split have one modality corrupted ({', '.join(spec.corruptions)}), recorded as truth."),
        extra={"generator": {"kinds": list(spec.kinds), "samples": n, "classes": c, "latent_dim": latent,
                             "spread": spec.spread, "corrupt_fraction": spec.corrupt_fraction,
                             "corruptions": list(spec.corruptions), "noise_snr_db": spec.noise_snr_db,
                             "seed": spec.seed}},
    )
    modalities = {m.name: build_ragged(sequences[m.name], m.step_shape, np.float32) for m in schemas}
    data = MultimodalData(schema, np.array([f"s{i:05d}" for i in range(n)]), labels.astype(np.int64),
                          modalities, splits, truth)
    return data, _World(means, levels, renderers)


def write_synthetic(out: Path | str, spec: SyntheticSpec) -> Path:
    return save_dataset(generate(spec), out)


class _Renderer:
    """Turns a latent into one sample of a modality of the given kind (fixed random maps per modality)."""

    def __init__(self, kind: str, spec: SyntheticSpec, latent: int, rng: np.random.Generator) -> None:
        self.kind = kind
        if kind == "frame_sequence":
            h, w = spec.frame_size
            blobs = max(2, latent)
            self.step_shape: Tuple[int, ...] = (h, w)
            centres = rng.uniform(0.15, 0.85, size=(blobs, 2)) * np.array([h, w])
            yy, xx = np.mgrid[0:h, 0:w]
            width = max(h, w) / 5.0
            self.basis = np.exp(-((yy[None] - centres[:, 0, None, None]) ** 2 + (xx[None] - centres[:, 1, None, None]) ** 2)
                                / (2 * width ** 2))  # (blobs, h, w)
            self.map = rng.standard_normal((blobs, latent)) / np.sqrt(latent)
            self.drift = rng.standard_normal(blobs) * 0.5
            self.lengths = (4, 8)
        else:
            f = spec.feature_dims.get(kind, 8)
            self.step_shape = (f,)
            self.map = rng.standard_normal((f, latent)) / np.sqrt(latent)
            self.phase_map = rng.standard_normal((f, latent)) / np.sqrt(latent)
            self.positions = rng.standard_normal((16, f)) * 0.3
            self.lengths = {"vector": (1, 1), "time_series": (12, 24), "token_sequence": (4, 10)}[kind]

    def __call__(self, z: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
        t = int(rng.integers(self.lengths[0], self.lengths[1] + 1))
        if self.kind == "vector":
            clean = (self.map @ z)[None, :]
        elif self.kind == "time_series":
            steps = np.linspace(0, 1, t)[:, None]
            amp, phase = self.map @ z, self.phase_map @ z
            clean = amp[None, :] * np.sin(2 * np.pi * (steps + 0.25 * phase[None, :]))
        elif self.kind == "token_sequence":
            pos = self.positions[np.arange(t) % len(self.positions)]
            clean = (self.map @ z)[None, :] + pos
        else:
            steps = np.linspace(0, 1, t)[:, None]
            brightness = (self.map @ z)[None, :] * (1 + self.drift[None, :] * (steps - 0.5))  # (t, blobs)
            clean = np.tensordot(brightness, self.basis, axes=(1, 0))  # (t, h, w)
        noise = rng.standard_normal(clean.shape) * level * clean.std()
        return (clean + noise).astype(np.float32)


def _splits(labels: np.ndarray, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Stratified 60/20/20 split (every class in every split)."""
    parts: Dict[str, List[int]] = {name: [] for name, _ in SPLIT_FRACTIONS}
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        n_train = int(round(len(idx) * SPLIT_FRACTIONS[0][1]))
        n_val = int(round(len(idx) * SPLIT_FRACTIONS[1][1]))
        parts["train"].extend(idx[:n_train])
        parts["val"].extend(idx[n_train:n_train + n_val])
        parts["test"].extend(idx[n_train + n_val:])
    return {name: np.sort(np.asarray(v, dtype=np.int64)) for name, v in parts.items()}


def drown(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` plus Gaussian noise at ``snr_db`` relative to its own mean power: the benchmark's noise
    corruption (also applied by the experiments that need more noisy samples than a draw holds)."""
    power = float(np.mean(x ** 2)) or 1.0
    sigma = np.sqrt(power / 10 ** (snr_db / 10))
    return (x + rng.standard_normal(x.shape) * sigma).astype(np.float32)


def _corrupt(spec: SyntheticSpec, sequences: Dict[str, List[Optional[np.ndarray]]], labels: np.ndarray,
             splits: Dict[str, np.ndarray], rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Corrupt one modality of a ``corrupt_fraction`` share of each split; return the truth codes."""
    names = list(sequences)
    truth = {m: np.zeros(len(labels), dtype=np.int8) for m in names}
    if not spec.corruptions or spec.corrupt_fraction <= 0:
        return truth
    kinds = list(spec.corruptions)
    if len(names) < 2:  # a lone modality cannot be removed (nothing would be left) nor compared
        kinds = [k for k in kinds if k == "noise"] or kinds[:0]
    if not kinds:
        return truth
    clean = {m: list(v) for m, v in sequences.items()}  # swaps take from the uncorrupted originals
    for idx in splits.values():
        hit = idx[rng.random(len(idx)) < spec.corrupt_fraction]
        for i in hit:
            m = names[int(rng.integers(len(names)))]
            kind = kinds[int(rng.integers(len(kinds)))]
            if kind == "noise":
                sequences[m][i] = drown(clean[m][i], spec.noise_snr_db, rng)
            elif kind == "swap":
                donors = idx[labels[idx] != labels[i]]
                if len(donors) == 0:
                    continue
                sequences[m][i] = clean[m][int(rng.choice(donors))].copy()
            else:
                sequences[m][i] = None
            truth[m][i] = TRUTH_CODES.index(kind)
    return truth
