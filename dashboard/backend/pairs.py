"""Checkpoints side by side: loading them, pairing calibrated with uncalibrated, and the views
(a checkpoint with its calibrator on or off) that the pages show in columns.

Pairing reads the checkpoints' configs, not their folder names: a calibrated and an uncalibrated
checkpoint pair when they were trained on the same data set with the same recipe and seed, apart
from the calibrator itself (:func:`recipe_of`). Folder names only break ties between identical
candidates. Anything else stands alone (its uncalibrated column is then the calibrator switched
off) or is paired by an explicit choice in the sidebar (:meth:`ModelPair.with_reference`). Every
pair gets a label that tells it from every other (:func:`label_pairs`): its name, seed and the
recipe settings in which it differs from the others of its data set and backbone.
"""

from __future__ import annotations

import json
import re
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from precal.checkpoint import CONFIG_FILE, Checkpoint, load_checkpoint
from precal.dashboard.backend.references import REFERENCE_SWITCHED_OFF, REFERENCE_TRAINED
from precal.dashboard.settings import ROOT
from precal.errors import USER_ERRORS, error_line
from precal.models.model import CALIBRATED, UNCALIBRATED


@dataclass(frozen=True)
class LoadProblem:
    """A checkpoint or data folder that could not be opened, with a one-line reason."""

    path: str
    message: str


def _is_checkpoint_dir(p: Path) -> bool:
    return p.is_dir() and (p / CONFIG_FILE).is_file() and not p.name.startswith(".")


def default_checkpoint_dirs(root: Path = ROOT) -> List[Path]:
    """Every folder in ``<root>/checkpoints`` that looks like a checkpoint (has a config.json)."""
    return [Path(p) for p in expand_checkpoint_paths([root / "checkpoints"])] if (root / "checkpoints").is_dir() \
        else []


def expand_checkpoint_paths(paths: Iterable[str | Path]) -> List[str]:
    """Each path as given, except a folder *of* checkpoints (no config.json of its own, but
    sub-folders with one), which stands for those sub-folders, sorted: ``--checkpoint DIR`` accepts
    such a folder as ``--data`` accepts a folder of data sets. A path that is neither is kept, so
    that loading it reports why."""
    out: List[str] = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir() and not (path / CONFIG_FILE).is_file():
            inner = sorted(q for q in path.iterdir() if _is_checkpoint_dir(q))
            if inner:
                out.extend(str(q) for q in inner)
                continue
        out.append(str(p))
    return out


def load_checkpoints(paths: Sequence[str | Path], load: Callable[[str], Checkpoint] = load_checkpoint
                     ) -> Tuple[List[Checkpoint], List[LoadProblem]]:
    """Load each folder (with ``load``: the app passes its cached loader); a failure becomes a
    :class:`LoadProblem` instead of stopping the others. A folder named twice is loaded once; a
    folder of checkpoints stands for the checkpoints in it (:func:`expand_checkpoint_paths`)."""
    loaded: List[Checkpoint] = []
    problems: List[LoadProblem] = []
    seen: set = set()
    for p in expand_checkpoint_paths(paths):
        try:
            ckpt = load(str(Path(p).expanduser().resolve()))
        except USER_ERRORS as exc:
            problems.append(LoadProblem(str(p), error_line(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - a checkpoint must never take the app down
            problems.append(LoadProblem(str(p), f"could not be loaded ({type(exc).__name__}: {exc})"[:300]))
            continue
        key = ckpt.path.resolve()
        if key not in seen:
            seen.add(key)
            loaded.append(ckpt)
    return loaded, problems


# ---- what a checkpoint is: its recipe ------------------------------------------------------------

RUN_SETTINGS = frozenset({"data", "threads", "world_size", "eval_splits", "calibration"})
"""Training settings that say where or how a run was executed, or which switch it had, not what was
trained: left out when two runs are compared."""

CALIBRATOR_SETTINGS = frozenset({"gate", "gate_loss", "evidence_margin", "evidence", "aux_weight", "aux_loss", "cue_gradient",
                                 "shared_dim", "instance_gate", "dimension_gate", "typicality"})
"""Settings of the calibrator alone: an uncalibrated run has none (older ones do not even record
them), so they never keep a calibrated run from pairing with its baseline."""

_NAME_SUFFIX = re.compile(r"^(?P<base>.+?)[_\-]cal(?P<flag>on|off)$")


def _training_defaults() -> Dict[str, Any]:
    from precal.training.config import TrainConfig

    out = {}
    for f in fields(TrainConfig):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def recipe_of(ckpt: Checkpoint) -> Dict[str, Any]:
    """What was trained, as comparable settings: the data set, the architecture (model config) and
    the training settings with their defaults filled in (a setting a run did not record had its
    default), without :data:`RUN_SETTINGS` and :data:`CALIBRATOR_SETTINGS`. Includes the seed."""
    recipe: Dict[str, Any] = {"data set": ckpt.schema.name}
    model = ckpt.config.to_json()  # precal's architecture, or an own model's few recorded facts
    for k, v in model.items():
        if k not in CALIBRATOR_SETTINGS and k != "calibration":
            recipe[k] = v
    training = ckpt.training if isinstance(ckpt.training, dict) else {}
    if training:
        filled = {**_training_defaults(), **training}
        for k, v in filled.items():
            if k not in RUN_SETTINGS and k not in CALIBRATOR_SETTINGS:
                recipe.setdefault(k, v)
    return recipe


def _recipe_key(recipe: Dict[str, Any]) -> str:
    return json.dumps(recipe, sort_keys=True, default=str)


def seed_of(ckpt: Checkpoint) -> Optional[int]:
    """The run's seed (its default, 0, when the run recorded its settings but not this one); None
    when the checkpoint has no training record at all."""
    training = ckpt.training if isinstance(ckpt.training, dict) else {}
    if not training:
        return None
    seed = training.get("seed", _training_defaults().get("seed"))
    return seed if isinstance(seed, int) else None


def base_name(ckpt: Checkpoint) -> str:
    """The folder name without a ``_calon`` / ``_caloff`` suffix (only for names and tie-breaks)."""
    m = _NAME_SUFFIX.match(ckpt.name)
    return m.group("base") if m else ckpt.name


# ---- pairs ----------------------------------------------------------------------------------------


@dataclass
class ModelPair:
    """The calibrated and uncalibrated checkpoint of one recipe and seed (either may be None)."""

    key: str
    calibrated: Optional[Checkpoint] = None
    uncalibrated: Optional[Checkpoint] = None
    _fingerprints: Dict[str, str] = field(default_factory=dict, repr=False)
    label: str = ""
    explicit: bool = False  # paired by the user's choice, not by recipe

    @property
    def checkpoints(self) -> List[Checkpoint]:
        return [c for c in (self.calibrated, self.uncalibrated) if c is not None]

    @property
    def primary(self) -> Checkpoint:
        """The checkpoint whose schema, data and splits the pages use."""
        return self.checkpoints[0]

    @property
    def dataset(self) -> str:
        return self.primary.schema.name

    @property
    def backbone(self) -> str:
        return self.primary.config.backbone

    @property
    def name(self) -> str:
        """The pair's name: the common folder name of its checkpoints without the role suffix."""
        bases = list(dict.fromkeys(base_name(c) for c in self.checkpoints))
        return " + ".join(bases)

    @property
    def seed(self) -> Optional[int]:
        return seed_of(self.primary)

    @property
    def members(self) -> str:
        """Which trained models the pair holds, in words."""
        parts = [r for r, c in ((CALIBRATED, self.calibrated), (UNCALIBRATED, self.uncalibrated)) if c is not None]
        return " + ".join(parts) + (" only" if len(parts) == 1 else "")

    def fingerprint(self, ckpt: Checkpoint) -> str:
        key = str(ckpt.path)
        if key not in self._fingerprints:
            self._fingerprints[key] = ckpt.fingerprint
        return self._fingerprints[key]

    @property
    def weights_key(self) -> str:
        """The weights of every checkpoint in the pair, by content: for caches of numbers computed
        from them (projections), which a copy of the weights at another path may share."""
        return "-".join(self.fingerprint(c) for c in self.checkpoints)

    @property
    def cache_key(self) -> str:
        """The pair's checkpoints by path *and* weights: for in-memory caches of objects that hold
        the checkpoints or are indexed by their paths (split batches, sweeps of its views). A copy
        of the same weights at another path is another entry, so its pages find their own paths."""
        return "-".join(f"{c.path}@{self.fingerprint(c)}" for c in self.checkpoints)

    def reference_options(self) -> List[str]:
        """How the uncalibrated column can be produced for this pair."""
        options = []
        if self.uncalibrated is not None:
            options.append(REFERENCE_TRAINED)
        if self.calibrated is not None:
            options.append(REFERENCE_SWITCHED_OFF)
        return options

    def with_reference(self, other: Checkpoint) -> "ModelPair":
        """This pair's calibrated checkpoint beside another uncalibrated one, paired by the user's
        explicit choice (e.g. a baseline trained with another seed or recipe)."""
        pair = ModelPair(f"{self.key} vs {other.name}", self.calibrated, other, dict(self._fingerprints),
                         explicit=True)
        pair.label = f"{self.label} · compared with {other.name} (chosen)"
        return pair

    def views(self, reference: Optional[str] = None) -> List["ModelView"]:
        """The models shown side by side: calibrated first, then the uncalibrated reference."""
        out: List[ModelView] = []
        if self.calibrated is not None:
            out.append(ModelView(CALIBRATED, self.calibrated, True, f"calibrated ({self.calibrated.name})"))
        options = self.reference_options()
        ref = reference if reference in options else (options[0] if options else None)
        if ref == REFERENCE_TRAINED and self.uncalibrated is not None:
            out.append(ModelView(UNCALIBRATED, self.uncalibrated, False, f"uncalibrated ({self.uncalibrated.name})"))
        elif ref == REFERENCE_SWITCHED_OFF and self.calibrated is not None:
            out.append(switched_off(self.calibrated))
        return out


@dataclass(frozen=True)
class ModelView:
    """One model as shown in a column: a checkpoint and the runtime calibrator switch."""

    role: str
    checkpoint: Checkpoint
    calibration: bool
    label: str

    @property
    def key(self) -> str:
        return f"{self.checkpoint.path}|{'on' if self.calibration else 'off'}"


def switched_off(checkpoint: Checkpoint) -> ModelView:
    """A gated checkpoint with its calibrator switched off (gates fixed at 1, same weights): the
    uncalibrated column on request, and the 'before calibration' features of the maps."""
    return ModelView(UNCALIBRATED, checkpoint, False, f"calibrator off (same weights as {checkpoint.name})")


def match_checkpoints(ckpts: Sequence[Checkpoint]) -> List[Tuple[Optional[Checkpoint], Optional[Checkpoint]]]:
    """(calibrated, uncalibrated) matches by recipe and seed (:func:`recipe_of`), in the order given.

    Each uncalibrated checkpoint pairs with at most one calibrated one: among several calibrated
    ones with its recipe (copies, or calibrators that differ only in their own settings), the one
    with the same folder name (without ``_calon``/``_caloff``) gets it, whatever the order given;
    the others take what is left. Unmatched checkpoints come back alone."""
    keys = {id(c): _recipe_key(recipe_of(c)) for c in ckpts}
    free_off = [c for c in ckpts if not c.config.calibration]
    calibrated = [c for c in ckpts if c.config.calibration]

    def take(c: Checkpoint, same_name: bool) -> Optional[Checkpoint]:
        """The first free baseline of c's recipe (and folder name), taken out of the free ones."""
        found = next((u for u in free_off if keys[id(u)] == keys[id(c)]
                      and (not same_name or base_name(u) == base_name(c))), None)
        if found is not None:
            free_off.remove(found)
        return found

    partners = {id(c): take(c, same_name=True) for c in calibrated}
    for c in calibrated:
        partners[id(c)] = partners[id(c)] or take(c, same_name=False)
    out: List[Tuple[Optional[Checkpoint], Optional[Checkpoint]]] = [(c, partners[id(c)]) for c in calibrated]
    out += [(None, u) for u in free_off]
    return out


def _words(key: str, value: Any) -> str:
    """A setting and its value as a reader says it ("swap augment 0", "heads 2")."""
    from precal.dashboard.backend.formatting import fmt_setting, setting_name

    return f"{setting_name(key)} {fmt_setting(value)}"


def calibrator_of(pair: ModelPair) -> Dict[str, Any]:
    """The settings of a pair's calibrator, as its model config resolved them (so a default shows
    its value, and a checkpoint from before a setting existed the value it loads with); none for a
    pair without a calibrated model. Pairing ignores them (a baseline has none), so the label is
    where two calibrators of one recipe and seed differ."""
    if pair.calibrated is None:
        return {}
    return {k: v for k, v in pair.calibrated.config.to_json().items() if k in CALIBRATOR_SETTINGS}


def recipe_differences(pairs: Sequence[ModelPair]) -> Dict[str, List[str]]:
    """Per pair key, the recipe settings (seed left out) in which the pair differs from other pairs
    of the same data set and backbone, in words; for pairs with a calibrated model, also the
    calibrator settings in which it differs from the other calibrated pairs."""
    recipes = {p.key: {**recipe_of(p.primary), **calibrator_of(p)} for p in pairs}
    out: Dict[str, List[str]] = {p.key: [] for p in pairs}
    groups: Dict[Tuple[str, str], List[ModelPair]] = {}
    for p in pairs:
        groups.setdefault((p.dataset, p.backbone), []).append(p)
    for group in groups.values():
        if len(group) < 2:
            continue
        names = sorted({k for p in group for k in recipes[p.key]} - {"seed", "data set", "backbone"})

        def varies(k: str) -> bool:
            among = [p for p in group if k in recipes[p.key]] if k in CALIBRATOR_SETTINGS else group
            return len({json.dumps(recipes[p.key].get(k), sort_keys=True, default=str) for p in among}) > 1

        varying = [k for k in names if varies(k)]
        for p in group:
            out[p.key] = [_words(k, recipes[p.key].get(k)) for k in varying if k in recipes[p.key]
                          or k not in CALIBRATOR_SETTINGS]
    return out


def label_pairs(pairs: Sequence[ModelPair]) -> None:
    """Give every pair a label that says what it is and tells it from every other: name, data set,
    backbone, seed, the recipe settings it differs in, and which trained models it holds. Labels
    that would still be equal (copies of one checkpoint) get the copy's folder."""
    diffs = recipe_differences(pairs)
    for p in pairs:
        seed = f"seed {p.seed}" if p.seed is not None else "seed not recorded"
        what = ", ".join([p.dataset, f"{p.backbone} backbone", seed, *diffs[p.key]])
        p.label = f"{p.name} ({what}) · {p.members}"
    seen: Dict[str, int] = {}
    for p in pairs:
        seen[p.label] = seen.get(p.label, 0) + 1
    counts: Dict[str, int] = {}
    for p in pairs:
        if seen[p.label] > 1:
            counts[p.label] = counts.get(p.label, 0) + 1
            p.label = f"{p.label} · copy {counts[p.label]} in {p.primary.path.parent.name}/"


def pair_checkpoints(ckpts: Sequence[Checkpoint]) -> List[ModelPair]:
    """Group checkpoints into calibrated/uncalibrated pairs by recipe and seed
    (:func:`match_checkpoints`), each with a distinct key and label (:func:`label_pairs`), sorted by
    name, then seed."""
    pairs: List[ModelPair] = []
    used: Dict[str, int] = {}
    for cal, off in match_checkpoints(ckpts):
        pair = ModelPair("", cal, off)
        key = pair.name
        used[key] = used.get(key, 0) + 1
        pair.key = key if used[key] == 1 else f"{key}#{used[key]}"
        pairs.append(pair)
    pairs.sort(key=lambda p: (p.name, p.seed if p.seed is not None else -1, p.key))
    label_pairs(pairs)
    return pairs


# ---- any two checkpoints: model A against model B ------------------------------------------------

MODEL_A = "model A"


MODEL_B = "model B"
"""The column keys (``ModelView.role``) of a free comparison. A pair's columns are ``calibrated`` and
``uncalibrated``; two arbitrary checkpoints may both be calibrated (two seeds), so their columns are
named by position instead."""

SWITCHED_OFF_SUFFIX = "@off"
"""Appended to a checkpoint's id: the calibrated checkpoint run with its calibrator switched off."""


def checkpoint_ids(ckpts: Sequence[Checkpoint]) -> Dict[str, Checkpoint]:
    """A short id per checkpoint that survives a restart and another browser (it goes into shared
    URLs): the folder name, or ``parent/name`` when two loaded folders share a name (copies)."""
    counts: Dict[str, int] = {}
    for c in ckpts:
        counts[c.name] = counts.get(c.name, 0) + 1
    out: Dict[str, Checkpoint] = {}
    for c in ckpts:
        cid = c.name if counts[c.name] == 1 else f"{c.path.parent.name}/{c.name}"
        k, base = 2, cid
        while cid in out:  # the same parent and name twice: only by a symlinked path
            cid, k = f"{base}#{k}", k + 1
        out[cid] = c
    return out


def model_options(ckpts: Sequence[Checkpoint]) -> Dict[str, Tuple[Checkpoint, bool]]:
    """Every model a comparison can show: each checkpoint as trained, and each calibrated one with
    its calibrator switched off (same weights). Keyed by a URL-safe id (:func:`checkpoint_ids`)."""
    out: Dict[str, Tuple[Checkpoint, bool]] = {}
    for cid, c in checkpoint_ids(ckpts).items():
        out[cid] = (c, bool(c.config.calibration))
        if c.config.calibration:
            out[cid + SWITCHED_OFF_SUFFIX] = (c, False)
    return out


def option_label(option: str, ckpt: Checkpoint, calibration: bool) -> str:
    """A model option in words: its id, data set, backbone, seed and whether its gates act."""
    seed = seed_of(ckpt)
    what = ("calibrator switched off" if ckpt.config.calibration and not calibration
            else ("calibrated" if calibration else "uncalibrated"))
    return (f"{option.removesuffix(SWITCHED_OFF_SUFFIX)} ({ckpt.schema.name}, {ckpt.config.backbone}, "
            f"{'seed ' + str(seed) if seed is not None else 'seed not recorded'}, {what})")


@dataclass
class Comparison(ModelPair):
    """Two arbitrary models side by side: model A and model B, each a checkpoint with its calibrator
    on or off (a seed against another, a recipe against its ablation, your model against precal's).
    Both must read the same data set, so that a split and a sample mean the same thing for both.

    ``calibrated`` is the first of the two whose gates act (the gate panels and the before/after
    projection read it), ``uncalibrated`` the other checkpoint, if any."""

    a: Optional[ModelView] = None
    b: Optional[ModelView] = None

    @property
    def checkpoints(self) -> List[Checkpoint]:
        out: List[Checkpoint] = []
        for v in (self.a, self.b):
            if v is not None and all(v.checkpoint is not c for c in out):
                out.append(v.checkpoint)
        return out

    @property
    def members(self) -> str:
        return "A vs B"

    def reference_options(self) -> List[str]:
        return []

    def views(self, reference: Optional[str] = None) -> List[ModelView]:  # noqa: ARG002 (the pair's signature)
        return [v for v in (self.a, self.b) if v is not None]


def compare(a: Tuple[Checkpoint, bool], b: Tuple[Checkpoint, bool], a_id: str = "", b_id: str = "") -> Comparison:
    """The :class:`Comparison` of model A and model B (each ``(checkpoint, calibration)``).
    Refuses two models of different data sets (a ``ValueError`` with a readable message)."""
    (ca, fa), (cb, fb) = a, b
    if ca.schema.name != cb.schema.name:
        raise ValueError(f"model A reads {ca.schema.name!r} and model B {cb.schema.name!r}: a comparison needs "
                         "two models of one data set")
    va = ModelView(MODEL_A, ca, fa, f"A: {option_label(a_id or ca.name, ca, fa)}")
    vb = ModelView(MODEL_B, cb, fb, f"B: {option_label(b_id or cb.name, cb, fb)}")
    gated = next((v for v in (va, vb) if v.calibration), None)
    other = next((v.checkpoint for v in (va, vb) if v.checkpoint is not (gated.checkpoint if gated else None)), None)
    comp = Comparison(f"{a_id or ca.name} vs {b_id or cb.name}", gated.checkpoint if gated else None, other,
                      explicit=True, a=va, b=vb)
    comp.label = f"A: {a_id or ca.name} vs B: {b_id or cb.name}"
    return comp
