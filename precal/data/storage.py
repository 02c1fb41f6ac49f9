"""The on-disk data set format: one folder with ``dataset.json`` and ``data.npz``.

Why this format: it needs nothing but numpy and json to write (so users can convert their own data
in a few lines), it never unpickles (``allow_pickle=False``), ragged sequences cost no padding, and
integer storage with a declared scale keeps real data sets small enough to ship in a repository.

``dataset.json``::

    {"format": "precal-dataset", "format_version": 1,
     "schema": {... DatasetSchema.to_json() ...},
     "num_samples": N,
     "splits": {"train": [0, 3, ...], "val": [...], "test": [...]}}

``data.npz`` (arrays, no objects):

- ``sample_ids``: (N,) unicode strings, unique;
- ``labels``: (N,) int64 class indices (classification) or float32 targets (regression);
- for every modality ``m``: ``m.values`` with shape (sum of lengths, *step_shape) and ``m.offsets``
  (N + 1,) int64, non-decreasing, starting at 0 and ending at ``len(m.values)``. Sample ``i`` is
  ``values[offsets[i]:offsets[i+1]]``; an empty segment means the modality is *absent* for that
  sample. A vector modality has one step per present sample. Integer ``values`` are dequantised as
  ``values * scale + offset`` (see :class:`~precal.data.schema.ModalitySchema`);
- optionally, for a modality ``m``, ``truth.m``: (N,) int8, what is known to have been done to that
  modality of each sample, as an index into :data:`TRUTH_CODES` (0 clean, 1 noise, 2 swap, 3 absent).
  Generated benchmarks carry it (:mod:`precal.data.synthetic`), so that a gate can be scored
  against the truth instead of against a corruption applied afterwards;
- optionally ``group.<name>``: (N,) unicode strings, a label per sample of a grouping the data set
  knows (``group.subject``, ``group.speaker``, ``group.session``): who or when, not what. Splits
  that keep a group apart (cross-subject), and results sliced by group, need it; the converters of
  UTD-MHAD (subject, trial) and AVLetters (speaker, repetition) fill it from the raw file names.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from precal.data.schema import DatasetSchema, SchemaError, unknown_modality_message
from precal import limits
from precal.limits import read_json
from precal.safe_write import DATASET, write_folder

_GROUP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,99}$")

FORMAT_NAME = "precal-dataset"
FORMAT_VERSION = 1
HEADER_FILE = "dataset.json"
ARRAYS_FILE = "data.npz"


TRUTH_CODES = ("clean", "noise", "swap", "absent")
"""Per-sample, per-modality ground truth of a generated data set (the ``truth.<modality>`` arrays)."""
GROUP_PREFIX = "group."
MAX_GROUPS = 16
"""At most this many groupings per data set (``group.<name>`` arrays)."""


class DataFormatError(SchemaError):
    """A data folder that cannot be read as a precal data set; the message names the problem."""


@dataclass
class RaggedModality:
    """All samples of one modality, concatenated along time, with offsets."""

    values: np.ndarray
    offsets: np.ndarray

    def length(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])

    def raw(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]: self.offsets[i + 1]]


@dataclass
class MultimodalData:
    """A whole data set in memory: schema, ragged values per modality, labels, ids and splits."""

    schema: DatasetSchema
    sample_ids: np.ndarray
    labels: np.ndarray
    modalities: Dict[str, RaggedModality]
    splits: Dict[str, np.ndarray]
    truth: Dict[str, np.ndarray] = field(default_factory=dict)  # modality -> (N,) codes of TRUTH_CODES
    groups: Dict[str, np.ndarray] = field(default_factory=dict)  # grouping -> (N,) str, e.g. "subject" -> "s3"

    def __len__(self) -> int:
        return int(len(self.sample_ids))

    def split(self, name: str) -> np.ndarray:
        """Indices of a named split, or of the union of several joined by "+" ("train+val", in order,
        without repeats); a readable error lists the splits that exist."""
        parts = name.split("+")
        for part in parts:
            if part not in self.splits:
                raise KeyError(f"split {part!r} not found; this data set has: {', '.join(self.splits)}")
        if len(parts) == 1:
            return self.splits[name]
        merged = np.concatenate([np.asarray(self.splits[p], dtype=np.int64) for p in parts])
        return merged[np.sort(np.unique(merged, return_index=True)[1])]

    def sequence(self, modality: str, i: int) -> np.ndarray:
        """Sample ``i`` of a modality as float32 in physical units, shape (T, *step_shape)."""
        if modality not in self.modalities:
            raise KeyError(unknown_modality_message(modality, self.schema.modality_names))
        spec = self.schema.modality(modality)
        raw = self.modalities[modality].raw(i)
        out = raw.astype(np.float32)
        if spec.scale != 1.0 or spec.offset != 0.0:
            out = out * np.float32(spec.scale) + np.float32(spec.offset)
        return out

    def is_present(self, modality: str, i: int) -> bool:
        return self.modalities[modality].length(i) > 0

    def index_of(self, sample_id: str) -> int:
        hits = np.nonzero(self.sample_ids == sample_id)[0]
        if len(hits) == 0:
            raise KeyError(f"no sample with id {sample_id!r}")
        return int(hits[0])

    def group_of(self, i: int) -> Dict[str, str]:
        """Sample ``i``'s label in every grouping (``{"subject": "s3", "trial": "t1"}``)."""
        return {name: str(labels[i]) for name, labels in self.groups.items()}

    def label_name(self, i: int) -> str:
        if self.schema.task == "classification":
            return self.schema.class_names[int(self.labels[i])]
        return f"{float(self.labels[i]):.3f}"


def build_ragged(sequences: Sequence[Optional[np.ndarray]], step_shape: Sequence[int],
                 dtype: np.dtype) -> RaggedModality:
    """Concatenate per-sample arrays (None = absent) into values + offsets.

    Each sample is a (T, *step_shape) array (T steps; a vector modality has T = 1); anything that
    does not hold T whole steps is refused with the sample's position and the expected shape."""
    step_shape = tuple(int(s) for s in step_shape)
    step = math.prod(step_shape)
    arrays = [None if s is None else np.asarray(s) for s in sequences]
    for i, a in enumerate(arrays):
        if a is None:
            continue
        if a.ndim == 0 or a.size != len(a) * step:
            hint = (f"; for a vector modality pass each sample as a (1, {step_shape[0]}) array, e.g. rows[:, None]"
                    if len(step_shape) == 1 and a.ndim == 1 and a.shape == step_shape else "")
            want = ", ".join(map(str, step_shape))
            raise DataFormatError(f"sample {i} has shape {a.shape}, which is not (steps, {want}){hint}")
        if np.iscomplexobj(a):
            raise DataFormatError(f"sample {i} holds complex values; precal stores real numbers only")
    lengths = [0 if a is None else len(a) for a in arrays]
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    parts = [a.astype(dtype, copy=False).reshape(len(a), *step_shape) for a in arrays if a is not None and len(a)]
    values = np.concatenate(parts, axis=0) if parts else np.zeros((0, *step_shape), dtype=dtype)
    return RaggedModality(values=values, offsets=offsets)


def save_dataset(data: MultimodalData, directory: Path | str, overwrite: bool = False,
                 inputs: Sequence[Path | str] = ()) -> Path:
    """Validate and write a data set atomically: a failure leaves no partial folder behind.

    An existing ``directory`` is replaced only if it is a precal data set and ``overwrite`` is set;
    anything else (a user's folder, the working directory, one of ``inputs``) is refused with an
    :class:`~precal.safe_write.UnsafeWriteError` (see :mod:`precal.safe_write`)."""
    validate(data)

    def write(tmp: Path) -> None:
        header = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "schema": data.schema.to_json(),
            "num_samples": len(data),
            "splits": {k: [int(i) for i in v] for k, v in data.splits.items()},
        }
        (tmp / HEADER_FILE).write_text(json.dumps(header, indent=1) + "\n")
        arrays: Dict[str, np.ndarray] = {"sample_ids": data.sample_ids.astype(str), "labels": data.labels}
        for name, rag in data.modalities.items():
            arrays[f"{name}.values"] = rag.values
            arrays[f"{name}.offsets"] = rag.offsets
        for name, codes in data.truth.items():
            arrays[f"truth.{name}"] = np.asarray(codes, dtype=np.int8)
        for name, labels in data.groups.items():
            arrays[f"{GROUP_PREFIX}{name}"] = np.asarray(labels).astype(str)
        _write_npz_deterministic(tmp / ARRAYS_FILE, arrays)

    return write_folder(directory, DATASET, write, overwrite, inputs)


def _write_npz_deterministic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but with fixed zip timestamps, so that converting the same raw
    files twice gives byte-identical output (the converters promise a reproducible rebuild)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)


def load_dataset(directory: Path | str) -> MultimodalData:
    """Read and validate a data folder. Never unpickles; every problem is one readable error.

    Memory is bounded before anything is decompressed: the header JSON by its size and depth, the
    arrays by the shapes their npy headers declare (:func:`declared_arrays`), which must fit
    :data:`~precal.limits.MAX_DATA_BYTES` and a plausible compression ratio."""
    directory = Path(directory)
    header_path = directory / HEADER_FILE
    arrays_path = directory / ARRAYS_FILE
    if not directory.is_dir():
        raise DataFormatError(f"data folder {directory} does not exist")
    if not header_path.is_file():
        raise DataFormatError(f"{directory} is not a precal data set: {HEADER_FILE} is missing")
    if not arrays_path.is_file():
        raise DataFormatError(f"{directory}: {ARRAYS_FILE} is missing")
    header = read_json(header_path, "data set header", DataFormatError)
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise DataFormatError(f"{header_path}: 'format' must be {FORMAT_NAME!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise DataFormatError(
            f"{header_path}: format_version {header.get('format_version')!r} is not supported "
            f"(this precal reads version {FORMAT_VERSION})"
        )
    schema = DatasetSchema.from_json(header.get("schema"))
    declared = declared_arrays(arrays_path)
    try:
        with np.load(arrays_path, allow_pickle=False) as npz:
            files = set(npz.files)
            required = ["sample_ids", "labels"] + [f"{m}.{part}" for m in schema.modality_names
                                                   for part in ("values", "offsets")]
            missing = [k for k in required if k not in files]
            if missing:
                raise DataFormatError(f"{arrays_path} is missing arrays: {', '.join(missing)}")
            _check_dtypes(arrays_path, declared, schema)
            sample_ids = npz["sample_ids"]
            labels = npz["labels"]
            modalities = {m: RaggedModality(npz[f"{m}.values"], npz[f"{m}.offsets"])
                          for m in schema.modality_names}
            truth = {m: npz[f"truth.{m}"] for m in schema.modality_names if f"truth.{m}" in files}
            groups = {k[len(GROUP_PREFIX):]: npz[k] for k in sorted(files) if k.startswith(GROUP_PREFIX)}
    except DataFormatError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(f"{arrays_path} cannot be read (truncated or not an npz?): {exc}") from exc
    splits = _read_splits(header_path, header.get("splits", {}), len(sample_ids))
    data = MultimodalData(schema, sample_ids, labels, modalities, splits, truth, groups)
    validate(data)
    if header.get("num_samples") not in (None, len(data)):
        raise DataFormatError(f"{header_path}: num_samples={header['num_samples']} but arrays hold {len(data)}")
    return data


def declared_arrays(path: Path) -> Dict[str, Tuple[Tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array in an npz, read from the npy headers only (nothing else is
    decompressed), checked against the memory budget before :func:`load_dataset` reads the arrays."""
    out: Dict[str, Tuple[Tuple[int, ...], np.dtype]] = {}
    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > limits.MAX_NPZ_MEMBERS:
                raise DataFormatError(f"{path} holds {len(infos)} arrays; a precal data set has far fewer")
            for info in infos:
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                    else:
                        raise DataFormatError(f"{path}: array {info.filename} uses npy format {version}, "
                                              "which precal does not read")
                if dtype.hasobject:
                    raise DataFormatError(f"{path}: array {info.filename} holds Python objects; precal never "
                                          "unpickles them")
                size = math.prod(shape) * dtype.itemsize
                total += size
                if size > info.file_size:
                    raise DataFormatError(f"{path}: array {info.filename} declares {size:,} bytes but stores "
                                          f"{info.file_size:,} (truncated or forged)")
                out[info.filename[:-4]] = (tuple(shape), dtype)
    except DataFormatError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error, NotImplementedError) as exc:
        raise DataFormatError(f"{path} cannot be read (truncated or not an npz?): "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    on_disk = path.stat().st_size
    bomb = total > limits.RATIO_FLOOR_BYTES and total > limits.MAX_COMPRESSION_RATIO * on_disk
    if total > limits.MAX_DATA_BYTES or bomb:
        raise DataFormatError(f"{path} declares {total / 1e6:,.0f} MB of arrays in a {on_disk / 1e6:,.1f} MB file; "
                              f"precal reads at most {limits.MAX_DATA_BYTES / 1e9:.0f} GB and at most "
                              f"{limits.MAX_COMPRESSION_RATIO}x the file size")
    return out


def _check_dtypes(path: Path, declared: Mapping[str, Tuple[Tuple[int, ...], np.dtype]], schema: DatasetSchema) -> None:
    """Refuse array types precal cannot use as they are (complex values would lose their imaginary
    part, strings as values would fail deep in a model)."""
    def kind(name: str) -> str:
        return declared[name][1].kind if name in declared else "?"

    if kind("sample_ids") not in "US":
        raise DataFormatError(f"{path}: sample_ids must be strings, got {declared['sample_ids'][1]}")
    if kind("labels") not in ("iuf" if schema.task == "regression" else "iu"):
        raise DataFormatError(f"{path}: labels must be {'numbers' if schema.task == 'regression' else 'integers'}, "
                              f"got {declared['labels'][1]}")
    for m in schema.modality_names:
        if kind(f"{m}.values") not in "biuf":
            raise DataFormatError(f"{path}: {m}.values must hold real numbers, got {declared[f'{m}.values'][1]}")
        if kind(f"{m}.offsets") not in "iu":
            raise DataFormatError(f"{path}: {m}.offsets must be integers, got {declared[f'{m}.offsets'][1]}")
    for name in declared:
        if name.startswith(GROUP_PREFIX) and kind(name) not in "US":
            raise DataFormatError(f"{path}: {name[:80]} must hold strings (a group label per sample), "
                                  f"got {declared[name][1]}")


def _read_splits(header_path: Path, splits_json: Any, n: int) -> Dict[str, np.ndarray]:
    """The header's splits: names mapping to lists of integer sample positions in 0..n-1."""
    if not isinstance(splits_json, dict):
        raise DataFormatError(f"{header_path}: 'splits' must map split names to index lists")
    splits = {}
    for name, idx in splits_json.items():
        if not isinstance(idx, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in idx):
            raise DataFormatError(f"{header_path}: split {name[:60]!r} must be a list of integer sample positions")
        if idx and (min(idx) < 0 or max(idx) >= n):
            raise DataFormatError(f"{header_path}: split {name[:60]!r} has indices outside 0..{n - 1}")
        splits[name] = np.asarray(idx, dtype=np.int64)
    return splits


def validate(data: MultimodalData) -> None:
    """Check every structural invariant of the format; raise DataFormatError naming the first break."""
    schema = data.schema
    n = len(data.sample_ids)
    if data.labels.shape != (n,):
        raise DataFormatError(f"labels have shape {data.labels.shape}, expected ({n},)")
    if np.iscomplexobj(data.labels) or any(np.iscomplexobj(r.values) for r in data.modalities.values()):
        raise DataFormatError("complex values are not supported: precal stores real numbers only")
    if len(set(data.sample_ids.tolist())) != n:
        raise DataFormatError("sample_ids are not unique")
    if schema.task == "classification":
        if not np.issubdtype(data.labels.dtype, np.integer):
            raise DataFormatError(f"classification labels must be integers, got {data.labels.dtype}")
        if n and (data.labels.min() < 0 or data.labels.max() >= schema.num_classes):
            raise DataFormatError(
                f"labels must lie in 0..{schema.num_classes - 1}, found {data.labels.min()}..{data.labels.max()}"
            )
    elif not np.all(np.isfinite(data.labels)):
        raise DataFormatError("regression labels contain NaN or infinite values")
    extra = set(data.modalities) - set(schema.modality_names)
    if extra:
        raise DataFormatError(unknown_modality_message(sorted(extra)[0], schema.modality_names))
    for spec in schema.modalities:
        if spec.name not in data.modalities:
            raise DataFormatError(f"modality {spec.name!r} is declared in the schema but has no arrays")
        rag = data.modalities[spec.name]
        off = rag.offsets
        if off.shape != (n + 1,) or not np.issubdtype(off.dtype, np.integer):
            raise DataFormatError(f"{spec.name}.offsets must be ({n + 1},) integers, got {off.shape} {off.dtype}")
        if off[0] != 0 or np.any(np.diff(off) < 0) or off[-1] != len(rag.values):
            raise DataFormatError(
                f"{spec.name}.offsets must start at 0, never decrease and end at len(values)={len(rag.values)}"
            )
        if tuple(rag.values.shape[1:]) != spec.step_shape:
            raise DataFormatError(
                f"{spec.name}.values has step shape {tuple(rag.values.shape[1:])}, schema says {spec.step_shape}"
            )
        if spec.kind == "vector" and np.any(np.diff(off) > 1):
            raise DataFormatError(f"{spec.name} is a vector modality but a sample has more than one step")
        if np.issubdtype(rag.values.dtype, np.floating) and not np.all(np.isfinite(rag.values)):
            finite_rows = np.isfinite(rag.values.reshape(len(rag.values), -1)).all(axis=1)
            bad_row = int(np.argmin(finite_rows))
            sample = int(np.searchsorted(off, bad_row, side="right") - 1)
            raise DataFormatError(
                f"modality {spec.name!r} contains NaN or infinite values (first in sample "
                f"{str(data.sample_ids[sample])!r})"
            )
    for name, codes in data.truth.items():
        if name not in data.modalities:
            raise DataFormatError("truth: " + unknown_modality_message(name, schema.modality_names))
        if codes.shape != (n,) or not np.issubdtype(codes.dtype, np.integer):
            raise DataFormatError(f"truth.{name} must be ({n},) integers, got {codes.shape} {codes.dtype}")
        if n and (codes.min() < 0 or codes.max() >= len(TRUTH_CODES)):
            raise DataFormatError(f"truth.{name} codes must lie in 0..{len(TRUTH_CODES) - 1} ({', '.join(TRUTH_CODES)})")
        absent = np.diff(data.modalities[name].offsets) == 0
        if np.any((codes == TRUTH_CODES.index("absent")) != absent):
            raise DataFormatError(f"truth.{name} must mark exactly the samples where {name} is absent as 'absent'")
    _validate_groups(data)
    seen: Dict[int, str] = {}
    for split, idx in data.splits.items():
        if idx.ndim != 1 or (len(idx) and (idx.min() < 0 or idx.max() >= n)):
            raise DataFormatError(f"split {split!r} has indices outside 0..{n - 1}")
        for i in idx.tolist():
            if i in seen:
                raise DataFormatError(f"sample {str(data.sample_ids[i])!r} is in both split {seen[i]!r} and {split!r}")
            seen[i] = split



def _validate_groups(data: MultimodalData) -> None:
    """Groupings: at most :data:`MAX_GROUPS`, named like modalities, one non-empty string per sample."""
    n = len(data.sample_ids)
    if len(data.groups) > MAX_GROUPS:
        raise DataFormatError(f"the data set has {len(data.groups)} groupings; at most {MAX_GROUPS} are allowed")
    for name, labels in data.groups.items():
        if not isinstance(name, str) or not _GROUP_NAME.match(name):
            raise DataFormatError(f"group name {str(name)[:60]!r} must start with a letter and hold only letters, "
                                  "digits, '_' or '-'")
        labels = np.asarray(labels)
        if labels.shape != (n,) or labels.dtype.kind not in "US":
            raise DataFormatError(f"group.{name} must be ({n},) strings, one label per sample, got "
                                  f"{labels.shape} {labels.dtype}")
        empty = np.char.str_len(labels.astype(str)) == 0
        if empty.any():
            raise DataFormatError(f"group.{name} is empty for sample {str(data.sample_ids[int(np.argmax(empty))])!r}; "
                                  "give every sample a label")
