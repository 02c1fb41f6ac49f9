"""Import CMU-MOSI / CMU-MOSEI features from the MMSA ``*.pkl`` files (aligned_50, unaligned_50).

Layout (as read by ``MMDataset`` in ``src/MMSA/data_loader.py`` of https://github.com/thuiar/MMSA)::

    {"train": split, "valid": split, "test": split}
    split = {"text": (N, T_t, F_t) float,      # 768-d BERT or 300-d GloVe features
             "audio": (N, T_a, F_a) float,     # 5-d (MOSI) or 74-d COVAREP
             "vision": (N, T_v, F_v) float,    # 20-d (MOSI) or 35-d Facet
             "audio_lengths": (N,) int,        # optional (unaligned files): valid leading steps
             "vision_lengths": (N,) int,       # optional, likewise
             "regression_labels": (N,) float,  # sentiment in [-3, 3]
             "id": (N,) str,
             ...}                              # text_bert, raw_text, classification_labels, ... ignored

Why the care about pickles: unpickling can execute arbitrary code, and these files are passed
around on shared drives and mirrors. :func:`load_mmsa_pickle` therefore refuses unless the caller
explicitly trusts the file, and even then unpickles with an allow-list that can only rebuild numpy
arrays and plain containers, so a tampered file fails with :class:`DataFormatError` instead of
running its payload.

Why ragged: MMSA keeps fixed-length zero-padded tensors; precal stores only the real steps, so
padding never reaches an encoder as data.
"""

from __future__ import annotations

import _codecs
import collections
import importlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from precal.data.schema import DatasetSchema, ModalitySchema
from precal.data.storage import DataFormatError, MultimodalData, build_ragged, save_dataset, validate

SPLIT_KEYS: Tuple[Tuple[str, str], ...] = (("train", "train"), ("valid", "val"), ("test", "test"))
"""(key in the MMSA pickle, split name in precal)."""

MODALITY_KEYS: Tuple[str, ...] = ("text", "audio", "vision")
LABEL_KEY = "regression_labels"
ID_KEY = "id"
REQUIRED_KEYS: Tuple[str, ...] = MODALITY_KEYS + (LABEL_KEY, ID_KEY)
SANITISED_MODALITIES: Tuple[str, ...] = ("audio", "vision")
"""Modalities whose non-finite feature values are set to 0 (see :func:`load_mmsa_pickle`)."""

TRUST_FLAG = "--trust-pickle"

CITATION = (
    "CMU-MOSI: Zadeh et al., 'Multimodal Sentiment Intensity Analysis in Videos', IEEE Intelligent "
    "Systems 2016. CMU-MOSEI: Zadeh et al., 'Multimodal Language Analysis in the Wild', ACL 2018. "
    "Features as packaged by MMSA (https://github.com/thuiar/MMSA)."
)


class UntrustedPickleError(DataFormatError):
    """Raised before a pickle is opened when the caller has not declared it trusted."""


# --------------------------------------------------------------------------------------------
# restricted unpickling


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-2 pickles use to carry raw bytes (numpy
    buffers) as latin-1 text. Only the latin-1 round trip is allowed; no codec is looked up by a
    name taken from the file."""
    if encoding not in ("latin1", "latin-1", "iso-8859-1"):
        raise DataFormatError(f"pickle asks to encode with {encoding!r}; only latin1 is allowed")
    return _codecs.encode(text, "latin1")


def _numpy_attr(name: str, modules: Sequence[str]) -> Any:
    """``name`` from the first importable module: numpy 2 moved ``numpy.core`` to ``numpy._core``,
    and a file written by either version must load under either."""
    for mod in modules:
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    return None


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    """The complete allow-list: numpy array/scalar reconstruction and plain containers."""
    multiarray = ("numpy._core.multiarray", "numpy.core.multiarray")
    numeric = ("numpy._core.numeric", "numpy.core.numeric")
    numpy_funcs = {"_reconstruct": multiarray, "scalar": multiarray, "_frombuffer": numeric}
    allowed: Dict[Tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    for name, modules in numpy_funcs.items():
        obj = _numpy_attr(name, modules)
        if obj is not None:
            for mod in modules:  # both spellings resolve to the installed numpy's function
                allowed[(mod, name)] = obj
    for container in (dict, list, tuple, set, frozenset, bytearray):
        allowed[("builtins", container.__name__)] = container
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild numpy arrays, numpy scalars and plain containers.

    Every other global (``os.system``, ``subprocess.Popen``, ``builtins.eval``, any class) is
    refused before it is imported, so a malicious ``__reduce__`` never runs.
    """

    _ALLOWED: Optional[Dict[Tuple[str, str], Any]] = None

    def find_class(self, module: str, name: str) -> Any:
        if _NumpyOnlyUnpickler._ALLOWED is None:
            _NumpyOnlyUnpickler._ALLOWED = _allowed_globals()
        obj = _NumpyOnlyUnpickler._ALLOWED.get((module, name))
        if obj is None:
            raise DataFormatError(
                f"the pickle wants to load {module}.{name}, which is not allowed: an MMSA feature file "
                "only needs numpy arrays and plain containers, so this file is either not an MMSA file "
                "or has been tampered with (it may try to run code); nothing from it was executed"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise DataFormatError("the pickle uses persistent ids, which an MMSA feature file never does")


def restricted_unpickle(path: Path) -> Any:
    """Unpickle ``path`` with :class:`_NumpyOnlyUnpickler`; every failure is a DataFormatError."""
    try:
        with open(path, "rb") as fh:
            return _NumpyOnlyUnpickler(fh).load()
    except DataFormatError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, UnicodeDecodeError, MemoryError, RecursionError, OSError) as exc:
        raise DataFormatError(f"{path} cannot be read as a pickle (truncated or corrupt?): {exc}") from exc


def untrusted_message(path: Path) -> str:
    return (
        f"refusing to read {path}: it is a Python pickle, and loading a pickle can run arbitrary code "
        "on this machine. Only load MMSA feature files from a source you trust (e.g. the official "
        f"MMSA download). To proceed, pass trusted=True (command line: {TRUST_FLAG}); precal then "
        "unpickles with an allow-list that only rebuilds numpy arrays and plain containers. Better "
        "still, convert once and use the resulting precal data folder, which never unpickles."
    )


# --------------------------------------------------------------------------------------------
# one split


@dataclass
class _Split:
    """One MMSA split, unpadded: per-modality (start, stop) windows into the padded arrays."""

    features: Dict[str, np.ndarray]
    windows: Dict[str, np.ndarray]
    labels: np.ndarray
    ids: List[str]
    nonfinite_replaced: Dict[str, int]

    def __len__(self) -> int:
        return len(self.labels)

    def sequences(self, modality: str) -> List[np.ndarray]:
        feats, win = self.features[modality], self.windows[modality]
        return [feats[i, int(a): int(b)] for i, (a, b) in enumerate(win)]


def _require_keys(block: Any, split: str) -> Mapping[str, Any]:
    if not isinstance(block, Mapping):
        raise DataFormatError(f"MMSA split {split!r} must be a dict of arrays, got {type(block).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in block]
    if missing:
        raise DataFormatError(
            f"MMSA split {split!r} is missing the key {missing[0]!r}"
            + (f" (also missing: {', '.join(map(repr, missing[1:]))})" if len(missing) > 1 else "")
            + f"; keys present: {', '.join(sorted(map(str, block)))}"
        )
    return block


def _feature_array(block: Mapping[str, Any], key: str, split: str) -> np.ndarray:
    arr = np.asarray(block[key])
    if arr.ndim != 3:
        raise DataFormatError(f"MMSA split {split!r}: {key!r} must be (N, T, F), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataFormatError(f"MMSA split {split!r}: {key!r} must be numeric, got dtype {arr.dtype}")
    if arr.shape[2] == 0:
        raise DataFormatError(f"MMSA split {split!r}: {key!r} has zero features per step")
    return arr


def _label_array(block: Mapping[str, Any], split: str) -> np.ndarray:
    """(N,) float32 labels; (N, 1) is accepted because some exports keep a trailing axis."""
    arr = np.asarray(block[LABEL_KEY])
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataFormatError(f"MMSA split {split!r}: {LABEL_KEY!r} must be (N,), got shape {arr.shape}")
    try:
        return arr.astype(np.float32)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"MMSA split {split!r}: {LABEL_KEY!r} is not numeric: {exc}") from exc


def _id_list(block: Mapping[str, Any], split: str) -> List[str]:
    arr = np.asarray(block[ID_KEY], dtype=object)
    if arr.ndim != 1:
        raise DataFormatError(f"MMSA split {split!r}: {ID_KEY!r} must be (N,), got shape {arr.shape}")
    return [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in arr]


def _check_sample_counts(split: str, counts: Mapping[str, int]) -> None:
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in counts.items())
        raise DataFormatError(f"MMSA split {split!r}: keys disagree on the number of samples: {detail}")


def _explicit_windows(block: Mapping[str, Any], key: str, n: int, t: int, split: str) -> np.ndarray:
    """Windows (0, length) from a ``*_lengths`` array: MMSA feeds these to
    ``pack_padded_sequence``, i.e. the valid steps come first and the padding after them."""
    raw = np.asarray(block[key])
    if raw.shape != (n,):
        raise DataFormatError(f"MMSA split {split!r}: {key!r} must be ({n},), got shape {raw.shape}")
    if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise DataFormatError(f"MMSA split {split!r}: {key!r} must be integers, got dtype {raw.dtype}")
    if raw.size and not np.all(np.isfinite(raw.astype(np.float64))):
        raise DataFormatError(f"MMSA split {split!r}: {key!r} contains non-finite values")
    lengths = raw.astype(np.int64)
    if raw.size and (np.any(lengths != raw) or lengths.min() < 0 or lengths.max() > t):
        raise DataFormatError(
            f"MMSA split {split!r}: {key!r} must be whole numbers in 0..{t} (the padded length), "
            f"found {raw.min()}..{raw.max()}"
        )
    return np.stack([np.zeros(n, dtype=np.int64), lengths], axis=1)


def _nonzero_windows(features: np.ndarray) -> np.ndarray:
    """Windows from the first to the last step that is not all zeros.

    Used when no ``*_lengths`` key exists (aligned files, text). Taking the span rather than
    dropping every zero row works for both left padding (CMU-MultimodalSDK exports) and right
    padding (MMSA exports) and keeps a genuine all-zero step inside an utterance. Non-finite values
    count as data, not padding. A sample with no non-zero step gets an empty window (absent).
    """
    n, t = features.shape[:2]
    nonzero = np.any(features.reshape(n, t, -1) != 0, axis=2)
    has_any = nonzero.any(axis=1)
    first = np.argmax(nonzero, axis=1)
    last = t - np.argmax(nonzero[:, ::-1], axis=1)
    return np.stack([np.where(has_any, first, 0), np.where(has_any, last, 0)], axis=1).astype(np.int64)


def _sanitise(features: np.ndarray, modality: str, split: str) -> Tuple[np.ndarray, int]:
    """float32 copy; non-finite audio/vision values become 0, non-finite text is an error."""
    out = features.astype(np.float32)
    bad = ~np.isfinite(out)
    count = int(bad.sum())
    if count and modality not in SANITISED_MODALITIES:
        raise DataFormatError(f"MMSA split {split!r}: {modality!r} contains {count} NaN or infinite values")
    if count:
        out[bad] = 0.0
    return out, count


def _parse_split(block: Any, split: str) -> _Split:
    block = _require_keys(block, split)
    raw = {m: _feature_array(block, m, split) for m in MODALITY_KEYS}
    labels = _label_array(block, split)
    ids = _id_list(block, split)
    counts = {**{m: raw[m].shape[0] for m in MODALITY_KEYS}, LABEL_KEY: len(labels), ID_KEY: len(ids)}
    n = len(labels)
    for m in MODALITY_KEYS:
        if f"{m}_lengths" in block:
            counts[f"{m}_lengths"] = len(np.asarray(block[f"{m}_lengths"]).reshape(-1))
    _check_sample_counts(split, counts)
    bad = np.nonzero(~np.isfinite(labels))[0]
    if len(bad):
        raise DataFormatError(f"MMSA split {split!r}: label of sample {str(ids[bad[0]])!r} is {labels[bad[0]]}")
    windows: Dict[str, np.ndarray] = {}
    features: Dict[str, np.ndarray] = {}
    replaced: Dict[str, int] = {}
    for m in MODALITY_KEYS:
        key = f"{m}_lengths"
        t = raw[m].shape[1]
        windows[m] = (_explicit_windows(block, key, n, t, split) if key in block
                      else _nonzero_windows(raw[m]))
        features[m], replaced[m] = _sanitise(raw[m], m, split)
    return _Split(features, windows, labels, ids, replaced)


# --------------------------------------------------------------------------------------------
# whole file


def _split_blocks(obj: Any, path: Path) -> Dict[str, Any]:
    if not isinstance(obj, Mapping):
        raise DataFormatError(f"{path}: an MMSA pickle holds a dict of splits, got {type(obj).__name__}")
    for key, _ in SPLIT_KEYS:
        if key not in obj:
            raise DataFormatError(
                f"{path}: the MMSA split {key!r} is missing; found: {', '.join(sorted(map(str, obj)))}"
            )
    return {key: obj[key] for key, _ in SPLIT_KEYS}


def _feature_dims(parts: Mapping[str, _Split], path: Path) -> Dict[str, int]:
    """F per modality, which must agree across splits (a model has one input width)."""
    dims: Dict[str, int] = {}
    for m in MODALITY_KEYS:
        per_split = {s: p.features[m].shape[2] for s, p in parts.items()}
        if len(set(per_split.values())) > 1:
            detail = ", ".join(f"{s}={d}" for s, d in per_split.items())
            raise DataFormatError(f"{path}: {m!r} has a different feature size per split: {detail}")
        dims[m] = next(iter(per_split.values()))
    return dims


def unique_ids(ids: Sequence[str]) -> List[str]:
    """Keep the first occurrence of each id; later duplicates get ``#2``, ``#3``, ... appended.

    MOSEI exports contain repeated segment ids; precal needs unique ids to address samples. The
    suffix never collides with an id that already exists.
    """
    used = set(ids)
    seen: set = set()
    out: List[str] = []
    for sid in ids:
        if sid not in seen:
            seen.add(sid)
            out.append(sid)
            continue
        k = 2
        while f"{sid}#{k}" in used:
            k += 1
        new = f"{sid}#{k}"
        used.add(new)
        out.append(new)
    return out


def _length_sources(blocks: Mapping[str, Any]) -> Dict[str, str]:
    first = next(iter(blocks.values()))
    return {m: (f"{m}_lengths" if f"{m}_lengths" in first else "non-zero span") for m in MODALITY_KEYS}


def _build_schema(path: Path, dims: Mapping[str, int], replaced: Mapping[str, int],
                  length_sources: Mapping[str, str]) -> DatasetSchema:
    descriptions = {
        "text": "word-level text features (BERT 768-d or GloVe 300-d)",
        "audio": "acoustic features (COVAREP; 5-d in MMSA MOSI, 74-d in MOSEI)",
        "vision": "facial features (Facet; 20-d in MMSA MOSI, 35-d in MOSEI)",
    }
    modalities = tuple(ModalitySchema(m, "token_sequence", (dims[m],), description=descriptions[m])
                       for m in MODALITY_KEYS)
    return DatasetSchema(
        name=f"mmsa-{path.stem}",
        modalities=modalities,
        task="regression",
        description=("Sentiment intensity in [-3, 3] (CMU-MOSI/MOSEI) imported from an MMSA feature "
                     "pickle; zero padding removed; non-finite audio/vision values set to 0 as MMSA does."),
        citation=CITATION,
        extra={
            "source_format": "mmsa-pickle",
            "source_file": path.name,
            "length_source": dict(length_sources),
            "nonfinite_features_set_to_zero": dict(replaced),
        },
    )


def load_mmsa_pickle(path: Path | str, *, trusted: bool = False) -> MultimodalData:
    """Read an MMSA CMU-MOSI/MOSEI feature pickle into a validated :class:`MultimodalData`.

    - Refuses (:class:`UntrustedPickleError`) unless ``trusted=True``, because a pickle can run code;
      even when trusted, only numpy arrays and plain containers can be unpickled.
    - Modalities ``text``, ``audio``, ``vision`` become ragged ``token_sequence`` modalities. With a
      ``<modality>_lengths`` key the first ``length`` steps are kept (MMSA's convention); without
      one the span from the first to the last non-all-zero step is kept (see
      :func:`_nonzero_windows`). A sample with no step left is stored as absent for that modality.
    - Non-finite audio/vision feature values are set to 0: MOSI's COVAREP features contain -inf,
      and MMSA's ``MMDataset`` sets ``audio[audio == -inf] = 0`` (and removes NaN when averaging);
      precal's format forbids non-finite values, so NaN and +-inf in audio and vision are zeroed too.
      The counts are recorded in ``schema.extra["nonfinite_features_set_to_zero"]``. Non-finite
      text features and NaN/infinite labels are errors: there is no safe value to substitute.
    - Labels are ``regression_labels`` as float32; sample ids come from ``id`` (made unique by
      :func:`unique_ids`); splits ``train``/``valid``/``test`` become ``train``/``val``/``test``.
    - Other keys (``text_bert``, ``raw_text``, ``classification_labels``, ...) are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"MMSA pickle {path} does not exist")
    if not trusted:
        raise UntrustedPickleError(untrusted_message(path))
    blocks = _split_blocks(restricted_unpickle(path), path)
    parts = {key: _parse_split(block, key) for key, block in blocks.items()}
    dims = _feature_dims(parts, path)
    replaced = {m: sum(p.nonfinite_replaced[m] for p in parts.values()) for m in SANITISED_MODALITIES}
    schema = _build_schema(path, dims, replaced, _length_sources(blocks))
    data = _assemble(schema, parts)
    validate(data)
    return data


def _assemble(schema: DatasetSchema, parts: Mapping[str, _Split]) -> MultimodalData:
    """Concatenate the splits in train/valid/test order and record each split's index range."""
    order = [parts[key] for key, _ in SPLIT_KEYS]
    modalities = {}
    for m in MODALITY_KEYS:
        seqs = [s for p in order for s in p.sequences(m)]
        modalities[m] = build_ragged(seqs, schema.modality(m).step_shape, np.float32)
    labels = np.concatenate([p.labels for p in order]).astype(np.float32)
    ids = np.asarray(unique_ids([i for p in order for i in p.ids]), dtype=str)
    splits: Dict[str, np.ndarray] = {}
    start = 0
    for (_, name), part in zip(SPLIT_KEYS, order):
        splits[name] = np.arange(start, start + len(part), dtype=np.int64)
        start += len(part)
    return MultimodalData(schema, ids, labels, modalities, splits)


def convert_mmsa(src: Path | str, out: Path | str, *, trusted: bool = False) -> Path:
    """``precal convert mmsa SRC.pkl OUT --trust-pickle``: an MMSA feature pickle as a precal data set
    in ``out``. Refused before the file is opened unless ``trusted`` (see :func:`load_mmsa_pickle`)."""
    return save_dataset(load_mmsa_pickle(src, trusted=trusted), out, inputs=[src])
