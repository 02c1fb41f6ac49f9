"""Convert the raw UTD-MHAD files into a precal data set (inertial + skeleton + depth, 27 actions).

Input layout (see ``shared/data/SOURCES.md``)::

    src/Inertial/a<action>_s<subject>_t<trial>_inertial.mat   key d_iner, (T, 6) float64
    src/Skeleton/a<action>_s<subject>_t<trial>_skeleton.mat   key d_skel, (20, 3, T) float64
    src/Skeleton/Skeleton_joint_order.txt                     the 20 joint names, in order
    src/depth_30x40.npz   frames (N, 30, 40) uint16 mm, offsets (S + 1,), keys (S,) like "a4_s1_t1"

Why the checks are strict: a converter is the one place where a wrong key, a transposed array or a
truncated file can still be caught with the file's name in the message. Past this point the data is
a block of numbers and the same mistake shows up as a mysteriously bad accuracy. Every input is
read and checked *before* :func:`~precal.data.storage.save_dataset` runs (which itself writes
atomically), so a failed conversion leaves nothing in ``out``.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
import scipy.io

from precal.data.schema import DatasetSchema, ModalitySchema
from precal.data.storage import DataFormatError, MultimodalData, build_ragged, save_dataset

ACTION_NAMES: Tuple[str, ...] = (
    "right arm swipe to the left", "swipe to the right", "right hand wave",
    "two hand front clap", "right arm throw", "cross arms in the chest", "basketball shooting",
    "draw x", "draw circle (clockwise)", "draw circle (counter clockwise)", "draw triangle",
    "bowling", "front boxing", "baseball swing from right", "tennis forehand swing", "arm curl",
    "tennis serve", "two hand push", "knock on door", "hand catch", "pick up and throw", "jogging",
    "walking", "sit to stand", "stand to sit", "forward lunge", "squat",
)
"""Class ``i`` is action ``i + 1``; names exactly as the source repository lists them."""

TEST_SUBJECTS: Tuple[int, ...] = (2, 4, 6, 8)
VAL_TRIAL = 4
NUM_JOINTS = 20
DEPTH_STEP = (30, 40)
DEPTH_SCALE_MM = 16
"""Depth is stored as uint8 ``q`` with ``q * 16`` = millimetres (range 0..4080 mm; the data's
maximum is 3593 mm). Rounding error is at most 8 mm, below the Kinect v1's own depth step at the
subjects' 2.2-3.2 m (about 2.85e-3 * Z**2 m, i.e. 14-29 mm), and it shrinks the shipped depth from
13.3 MB (uint16) to 7.2 MB compressed, bringing this data set under its ~15 MB budget."""
INERTIAL_COLUMNS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")

SPLIT_PROTOCOL = (
    "Cross-subject, the protocol of the UTD-MHAD paper: test = subjects 2, 4, 6, 8 (all trials); "
    "train = subjects 1, 3, 5, 7, trials 1-3; val = subjects 1, 3, 5, 7, trial 4. Validation is "
    "trial 4 of each training subject, so subjects never cross into test; it is used only for "
    "model selection."
)

CITATION = (
    "C. Chen, R. Jafari, N. Kehtarnavaz, \"UTD-MHAD: A multimodal dataset for human action "
    "recognition utilizing a depth camera and a wearable inertial sensor\", IEEE International "
    "Conference on Image Processing (ICIP), 2015."
)

DESCRIPTION = (
    "UTD Multimodal Human Action Dataset: 27 actions x 8 subjects x 4 trials (861 of 864 present; "
    "a8_s1_t4, a23_s6_t4, a27_s8_t4 are missing in the official release). Inertial: one 3-axis "
    "accelerometer (g) + 3-axis gyroscope (deg/s), right wrist for actions 1-21 and right thigh for "
    "22-27 (placement per the paper); readings saturate at +-8 g and about +-1000 deg/s. Skeleton: "
    "20 Kinect v1 joints, xyz camera coordinates in metres. Depth: Kinect depth reduced by an 8x8 "
    "block mean to 30x40, millimetres (stored in 16 mm steps), 0 = no reading. Rates are the nominal 50 Hz (inertial) and "
    "30 Hz (Kinect); the inertial/skeleton frame-count ratio per sample is 2.4-4.5 (median 2.6) "
    "rather than 50/30, so do not align the streams by nominal rate; align by whole-recording span."
)

_MAT_NAME = re.compile(r"^a(\d+)_s(\d+)_t(\d+)_(inertial|skeleton)\.mat$")
_JOINT_LINE = re.compile(r"^\s*(\d+)\.\s*([A-Za-z_]+)\s*;?\s*$")


@dataclass(frozen=True, order=True)
class SampleKey:
    """One recording. Ordering is numeric (a2 before a10), which fixes the sample order on disk."""

    action: int
    subject: int
    trial: int

    @property
    def name(self) -> str:
        return f"a{self.action}_s{self.subject}_t{self.trial}"

    @property
    def split(self) -> str:
        if self.subject in TEST_SUBJECTS:
            return "test"
        return "val" if self.trial == VAL_TRIAL else "train"


def convert_utd_mhad(src: Path | str, out: Path | str) -> Path:
    """Read, check and write UTD-MHAD as a precal data set in ``out``; returns ``out``.

    Raises :class:`DataFormatError` naming the offending file for any missing or malformed input,
    before anything is written.
    """
    src, out = Path(src), Path(out)
    inertial_dir, skeleton_dir, depth_path = _layout(src)
    joint_names = read_joint_names(skeleton_dir / "Skeleton_joint_order.txt")
    depth = read_frame_npz(depth_path, DEPTH_STEP, np.uint16)
    keys = _matched_keys(inertial_dir, skeleton_dir, depth_path, depth)
    inertial = [read_inertial(inertial_dir / f"{k.name}_inertial.mat") for k in keys]
    skeleton = [read_skeleton(skeleton_dir / f"{k.name}_skeleton.mat") for k in keys]
    frames = [quantize_depth(depth[k.name], depth_path) for k in keys]
    _check_kinect_lengths(keys, skeleton, frames, depth_path)
    data = _assemble(keys, inertial, skeleton, frames, joint_names)
    return save_dataset(data, out, inputs=[src])


# ----------------------------------------------------------------------------------------- inputs


def _layout(src: Path) -> Tuple[Path, Path, Path]:
    """The three inputs, each checked to exist so the error names the one that does not."""
    if not src.is_dir():
        raise DataFormatError(f"UTD-MHAD source folder {src} does not exist")
    inertial_dir, skeleton_dir, depth_path = src / "Inertial", src / "Skeleton", src / "depth_30x40.npz"
    for folder in (inertial_dir, skeleton_dir):
        if not folder.is_dir():
            raise DataFormatError(f"UTD-MHAD folder {folder} is missing")
    if not depth_path.is_file():
        raise DataFormatError(f"UTD-MHAD depth file {depth_path} is missing")
    return inertial_dir, skeleton_dir, depth_path


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn any parser failure into one DataFormatError naming ``path``.

    ``scipy.io.loadmat`` and ``np.load`` raise a zoo of exception types on damaged files
    (MatReadError, OSError, IndexError, ValueError, zlib.error, BadZipFile...), so catching broadly
    here is deliberate: the caller only needs "this file is broken, and why".
    """
    try:
        yield
    except DataFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - see docstring
        raise DataFormatError(f"{path} cannot be read ({type(exc).__name__}: {exc})") from exc


def read_joint_names(path: Path) -> List[str]:
    """The 20 joint names in file order (lines like ``3. spine;``)."""
    if not path.is_file():
        raise DataFormatError(f"UTD-MHAD joint order file {path} is missing")
    with reading(path):
        lines = path.read_text(errors="replace").splitlines()
    found = [m.groups() for m in map(_JOINT_LINE.match, lines) if m]
    names = [name for _, name in found]
    if [int(i) for i, _ in found] != list(range(1, NUM_JOINTS + 1)):
        raise DataFormatError(f"{path} must list joints 1..{NUM_JOINTS} in order, found {len(names)} entries")
    return names


def _load_mat_array(path: Path, key: str) -> np.ndarray:
    if not path.is_file():
        raise DataFormatError(f"{path} is missing")
    with reading(path):
        mat = scipy.io.loadmat(str(path))
    if key not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataFormatError(f"{path} has no variable {key!r} (found: {', '.join(found) or 'none'})")
    arr = np.asarray(mat[key])
    if not np.issubdtype(arr.dtype, np.number):
        raise DataFormatError(f"{path}: {key!r} is {arr.dtype}, expected numbers")
    return arr


def _finite_float16(arr: np.ndarray, path: Path) -> np.ndarray:
    """Check finiteness, then store as float16.

    float16 keeps 11 significant bits, so every stored value is within 2**-11 = 4.9e-4 of its
    magnitude (values far below 6e-5, i.e. subnormal, are within 3e-8 absolutely). Measured on the
    full data: inertial max abs error 0.25 deg/s against a 1000 deg/s range (2.5e-4 relative);
    skeleton max abs error 0.98 mm against a 4.05 m range (2.4e-4 relative), well below the
    centimetre-level noise of Kinect v1 joints. Halves the size of the shipped copy.
    """
    if not np.all(np.isfinite(arr)):
        raise DataFormatError(f"{path} contains NaN or infinite values")
    if np.abs(arr).max(initial=0.0) > np.finfo(np.float16).max:
        raise DataFormatError(f"{path} has values beyond the float16 range; they cannot be stored compactly")
    return arr.astype(np.float16)


def read_inertial(path: Path) -> np.ndarray:
    """(T, 6) float16: accelerometer xyz in g, gyroscope xyz in deg/s."""
    arr = _load_mat_array(path, "d_iner")
    if arr.ndim != 2 or arr.shape[1] != len(INERTIAL_COLUMNS) or arr.shape[0] < 1:
        raise DataFormatError(f"{path}: 'd_iner' has shape {arr.shape}, expected (T, 6)")
    return _finite_float16(arr, path)


def read_skeleton(path: Path) -> np.ndarray:
    """(T, 20, 3) float16 metres; the raw (20, 3, T) is transposed so time comes first."""
    arr = _load_mat_array(path, "d_skel")
    if arr.ndim != 3 or arr.shape[:2] != (NUM_JOINTS, 3) or arr.shape[2] < 1:
        raise DataFormatError(f"{path}: 'd_skel' has shape {arr.shape}, expected (20, 3, T)")
    return _finite_float16(arr.transpose(2, 0, 1), path)


def read_frame_npz(path: Path, step: Tuple[int, int], dtype: type) -> Dict[str, np.ndarray]:
    """A ``frames``/``offsets``/``keys`` npz (the shared derived-frames layout) as key -> (T, H, W).

    Shared with the AVLetters converter, whose lip frames use the same layout.
    """
    if not path.is_file():
        raise DataFormatError(f"{path} is missing")
    with reading(path), np.load(path, allow_pickle=False) as npz:
        missing = [k for k in ("frames", "offsets", "keys") if k not in npz.files]
        if missing:
            raise DataFormatError(f"{path} is missing arrays: {', '.join(missing)}")
        frames, offsets, keys = npz["frames"], npz["offsets"], npz["keys"]
    _check_frame_arrays(path, frames, offsets, keys, step, dtype)
    return {str(k): frames[offsets[i]: offsets[i + 1]] for i, k in enumerate(keys.tolist())}


def _check_frame_arrays(path: Path, frames: np.ndarray, offsets: np.ndarray, keys: np.ndarray,
                        step: Tuple[int, int], dtype: type) -> None:
    if frames.ndim != 3 or tuple(frames.shape[1:]) != tuple(step):
        raise DataFormatError(f"{path}: frames have shape {frames.shape}, expected (N, {step[0]}, {step[1]})")
    if frames.dtype != np.dtype(dtype):
        raise DataFormatError(f"{path}: frames are {frames.dtype}, expected {np.dtype(dtype)}")
    if keys.ndim != 1 or keys.dtype.kind != "U" or len(set(keys.tolist())) != len(keys):
        raise DataFormatError(f"{path}: keys must be a 1-d array of unique strings")
    if offsets.shape != (len(keys) + 1,) or not np.issubdtype(offsets.dtype, np.integer):
        raise DataFormatError(f"{path}: offsets have shape {offsets.shape}, expected ({len(keys) + 1},) integers")
    if offsets[0] != 0 or offsets[-1] != len(frames) or np.any(np.diff(offsets) <= 0):
        raise DataFormatError(
            f"{path}: offsets must start at 0, strictly increase and end at {len(frames)} (the frame count)"
        )


def quantize_depth(mm: np.ndarray, path: Path) -> np.ndarray:
    """uint16 millimetres -> uint8 steps of :data:`DEPTH_SCALE_MM`.

    Zero means "no reading", so any non-zero depth maps to at least 1: a valid reading never turns
    into background (real minimum non-zero block mean is 29 mm, at silhouette edges).
    """
    limit = 255 * DEPTH_SCALE_MM
    if mm.size and int(mm.max()) > limit:
        raise DataFormatError(f"{path}: depth {int(mm.max())} mm exceeds the {limit} mm storable as uint8")
    q = np.round(mm.astype(np.float32) / DEPTH_SCALE_MM).astype(np.uint8)
    q[(mm > 0) & (q == 0)] = 1
    return q


def _mat_keys(folder: Path, modality: str) -> Dict[SampleKey, Path]:
    """Every ``*.mat`` in a folder, parsed; an unexpected name is an error, not silently skipped."""
    found: Dict[SampleKey, Path] = {}
    for path in sorted(folder.glob("*.mat")):
        m = _MAT_NAME.match(path.name)
        if not m or m.group(4) != modality:
            raise DataFormatError(f"{path}: unexpected file name, expected a<action>_s<subject>_t<trial>_{modality}.mat")
        key = SampleKey(*(int(g) for g in m.groups()[:3]))
        if not 1 <= key.action <= len(ACTION_NAMES):
            raise DataFormatError(f"{path}: action {key.action} outside 1..{len(ACTION_NAMES)}")
        found[key] = path
    return found


def _matched_keys(inertial_dir: Path, skeleton_dir: Path, depth_path: Path,
                  depth: Dict[str, np.ndarray]) -> List[SampleKey]:
    """All samples, sorted; each must have all three modalities or the missing file is named."""
    inertial = _mat_keys(inertial_dir, "inertial")
    skeleton = _mat_keys(skeleton_dir, "skeleton")
    depth_keys: Dict[SampleKey, str] = {}
    for name in depth:
        m = _MAT_NAME.match(f"{name}_inertial.mat")
        if not m:
            raise DataFormatError(f"{depth_path}: key {name!r} is not of the form a<action>_s<subject>_t<trial>")
        depth_keys[SampleKey(*(int(g) for g in m.groups()[:3]))] = name
    keys = sorted(set(inertial) | set(skeleton) | set(depth_keys))
    if not keys:
        raise DataFormatError(f"{inertial_dir} holds no *_inertial.mat files")
    for k in keys:
        if k not in inertial:
            raise DataFormatError(f"{inertial_dir / (k.name + '_inertial.mat')} is missing (other modalities of {k.name} exist)")
        if k not in skeleton:
            raise DataFormatError(f"{skeleton_dir / (k.name + '_skeleton.mat')} is missing (other modalities of {k.name} exist)")
        if k not in depth_keys:
            raise DataFormatError(f"{depth_path} has no depth frames for sample {k.name!r}")
    return keys


def _check_kinect_lengths(keys: Sequence[SampleKey], skeleton: Sequence[np.ndarray],
                          frames: Sequence[np.ndarray], depth_path: Path) -> None:
    """Skeleton and depth come from the same Kinect stream, so their frame counts agree in the
    raw data; a mismatch means the depth npz's keys were mixed up."""
    for k, skel, dep in zip(keys, skeleton, frames):
        if len(skel) != len(dep):
            raise DataFormatError(
                f"{depth_path}: sample {k.name!r} has {len(dep)} depth frames but {len(skel)} skeleton frames"
            )


# ---------------------------------------------------------------------------------------- output


def _schema(joint_names: Sequence[str]) -> DatasetSchema:
    modalities = (
        ModalitySchema("inertial", "time_series", (6,), 50.0, "g (acc_x..z); deg/s (gyro_x..z)",
                       "wearable IMU: columns acc_x, acc_y, acc_z (g), gyro_x, gyro_y, gyro_z (deg/s)"),
        ModalitySchema("skeleton", "time_series", (NUM_JOINTS, 3), 30.0, "m",
                       "Kinect v1 joints x (x, y, z) camera coordinates; joint order in extra.joint_names"),
        ModalitySchema("depth", "frame_sequence", DEPTH_STEP, 30.0, "mm",
                       f"Kinect depth, 8x8 block mean of 240x320; stored as uint8 in {DEPTH_SCALE_MM} mm "
                       "steps (error <= 8 mm); 0 = no reading", scale=float(DEPTH_SCALE_MM)),
    )
    extra = {
        "joint_names": list(joint_names),
        "inertial_columns": list(INERTIAL_COLUMNS),
        "split_protocol": SPLIT_PROTOCOL,
    }
    return DatasetSchema("utd-mhad", modalities, "classification", ACTION_NAMES, DESCRIPTION, CITATION, extra)


def _assemble(keys: Sequence[SampleKey], inertial: Sequence[np.ndarray], skeleton: Sequence[np.ndarray],
              frames: Sequence[np.ndarray], joint_names: Sequence[str]) -> MultimodalData:
    splits = {name: np.array([i for i, k in enumerate(keys) if k.split == name], dtype=np.int64)
              for name in ("train", "val", "test")}
    return MultimodalData(
        schema=_schema(joint_names),
        sample_ids=np.array([k.name for k in keys]),
        labels=np.array([k.action - 1 for k in keys], dtype=np.int64),
        modalities={
            "inertial": build_ragged(inertial, (6,), np.float16),
            "skeleton": build_ragged(skeleton, (NUM_JOINTS, 3), np.float16),
            "depth": build_ragged(frames, DEPTH_STEP, np.uint8),
        },
        splits=splits,
        groups={"subject": np.array([f"s{k.subject}" for k in keys]), "trial": np.array([f"t{k.trial}" for k in keys])},
    )
