"""Tests of the UTD-MHAD and AVLetters converters and of the shipped ``sample_data/``.

The converter tests run on a handful of REAL raw files copied into a temporary source folder (the
converters must work on the real layout, not on a mock of it), so they are skipped when the raw
data folder ``../shared/data`` is not there. The shipped-data tests need only ``sample_data/``.
"""

from __future__ import annotations

import collections
import json
import shutil
import struct
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import pytest
import scipy.io

from precal.data import avletters, utd_mhad
from precal.data.converters import CONVERTERS, convert
from precal.data.storage import DataFormatError, load_dataset

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"

# Chosen so every split gets samples and numeric ordering (a2 before a10) is exercised:
# train = odd subject, trials 1-3; val = odd subject, trial 4; test = even subject.
UTD_KEYS = {
    "a1_s1_t1": "train", "a10_s5_t2": "train", "a2_s3_t4": "val",
    "a27_s7_t4": "val", "a1_s2_t1": "test", "a23_s8_t3": "test",
}
UTD_ORDER = ["a1_s1_t1", "a1_s2_t1", "a2_s3_t4", "a10_s5_t2", "a23_s8_t3", "a27_s7_t4"]
# Letter A has 5 repetition-1/2 utterances -> round(5/5) = 1 goes to val; B has 2 -> 0.
# M1_Verity is the utterance with the odd MFCC/lip frame ratio (31 vs 23).
AVL_STEMS = ["A1_Anya", "A1_Kate", "A1_Steve", "A2_Bill", "A2_Yi", "A3_Anya",
             "B1_Faye", "B2_John", "B3_Yi", "M1_Verity"]

needs_raw = pytest.mark.skipif(not SHARED.is_dir(), reason=f"raw data folder {SHARED} not present")


# ------------------------------------------------------------------------------------- helpers


def _write_frame_npz(source: Path, dest: Path, keys: List[str]) -> None:
    """Sub-select ``keys`` from a frames/offsets/keys npz, in the given order."""
    with np.load(source) as npz:
        frames, offsets, all_keys = npz["frames"], npz["offsets"], npz["keys"].tolist()
    parts = [frames[offsets[all_keys.index(k)]: offsets[all_keys.index(k) + 1]] for k in keys]
    new_offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    np.savez(dest, frames=np.concatenate(parts), offsets=new_offsets, keys=np.array(keys))


def _frames_by_key(path: Path) -> Dict[str, np.ndarray]:
    with np.load(path) as npz:
        frames, offsets, keys = npz["frames"], npz["offsets"], npz["keys"].tolist()
    return {k: frames[offsets[i]: offsets[i + 1]] for i, k in enumerate(keys)}


def _read_htk(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    n, _, size, _ = struct.unpack(">iihh", raw[:12])
    return np.frombuffer(raw[12:], ">f4").reshape(n, size // 4).astype(np.float64)


def _assert_float16_close(stored: np.ndarray, raw: np.ndarray) -> None:
    """float16 rounding: within half an ulp, 2**-11 of the magnitude (plus subnormal spacing)."""
    np.testing.assert_allclose(stored.astype(np.float64), raw, rtol=2.0 ** -11, atol=1e-7)


def _assert_fails_cleanly(fn: Callable[[Path, Path], Path], src: Path, out: Path, names: str) -> None:
    """The conversion raises DataFormatError naming ``names`` and leaves nothing behind."""
    with pytest.raises(DataFormatError) as info:
        fn(src, out)
    assert names in str(info.value), str(info.value)
    assert not out.exists()
    if out.parent.exists():
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")], "temp folder left"


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def utd_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("utd_src")
    raw = SHARED / "utd_mhad"
    if not raw.is_dir():
        pytest.skip(f"raw data folder {raw} not present")
    (src / "Inertial").mkdir()
    (src / "Skeleton").mkdir()
    shutil.copy(raw / "Skeleton" / "Skeleton_joint_order.txt", src / "Skeleton")
    for key in UTD_KEYS:
        shutil.copy(raw / "Inertial" / f"{key}_inertial.mat", src / "Inertial")
        shutil.copy(raw / "Skeleton" / f"{key}_skeleton.mat", src / "Skeleton")
    _write_frame_npz(raw / "depth_30x40.npz", src / "depth_30x40.npz", sorted(UTD_KEYS))
    return src


@pytest.fixture(scope="module")
def avl_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("avl_src")
    raw = SHARED / "avletters"
    if not raw.is_dir():
        pytest.skip(f"raw data folder {raw} not present")
    mfcc = src / "Audio" / "mfcc" / "Clean"
    mfcc.mkdir(parents=True)
    for stem in AVL_STEMS:
        shutil.copy(raw / "Audio" / "mfcc" / "Clean" / f"{stem}.mfcc", mfcc)
    # Reversed order: the converter must not depend on the npz's key order.
    _write_frame_npz(raw / "lips_30x40.npz", src / "lips_30x40.npz", AVL_STEMS[::-1])
    return src


@pytest.fixture
def utd_src(utd_template: Path, tmp_path: Path) -> Path:
    """A private, damageable copy of the small UTD-MHAD source folder."""
    return Path(shutil.copytree(utd_template, tmp_path / "utd_src"))


@pytest.fixture
def avl_src(avl_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(avl_template, tmp_path / "avl_src"))


@pytest.fixture(scope="module")
def utd_converted(utd_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return utd_mhad.convert_utd_mhad(utd_template, tmp_path_factory.mktemp("utd_out") / "ds")


@pytest.fixture(scope="module")
def avl_converted(avl_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return avletters.convert_avletters(avl_template, tmp_path_factory.mktemp("avl_out") / "ds")


# ------------------------------------------------------------------------------------ UTD-MHAD


@needs_raw
def test_utd_structure_labels_and_splits(utd_converted: Path) -> None:
    data = load_dataset(utd_converted)
    assert data.sample_ids.tolist() == UTD_ORDER
    assert data.labels.tolist() == [int(k.split("_")[0][1:]) - 1 for k in UTD_ORDER]
    assert data.schema.num_classes == 27
    assert data.schema.class_names[0] == "right arm swipe to the left"
    assert data.schema.class_names[26] == "squat"
    assert data.schema.modality_names == ["inertial", "skeleton", "depth"]
    assert data.schema.extra["joint_names"][:2] == ["head", "shoulder_center"]
    assert len(data.schema.extra["joint_names"]) == 20
    assert "trial 4" in data.schema.extra["split_protocol"]
    assert "ICIP" in data.schema.citation
    for split, idx in data.splits.items():
        assert sorted(data.sample_ids[idx].tolist()) == sorted(k for k, s in UTD_KEYS.items() if s == split)
    expected = {"inertial": ((6,), np.float16), "skeleton": ((20, 3), np.float16), "depth": ((30, 40), np.uint8)}
    for name, (step, dtype) in expected.items():
        assert data.schema.modality(name).step_shape == step
        assert data.modalities[name].values.dtype == dtype
    assert data.schema.modality("depth").scale == 16.0
    subjects = [k.split("_")[1] for k in UTD_ORDER]
    assert data.groups["subject"].tolist() == subjects and data.groups["trial"].tolist() == [k.split("_")[2] for k in UTD_ORDER]


@needs_raw
def test_utd_values_round_trip(utd_converted: Path, utd_template: Path) -> None:
    data = load_dataset(utd_converted)
    depth = _frames_by_key(utd_template / "depth_30x40.npz")
    for i, key in enumerate(data.sample_ids.tolist()):
        iner = scipy.io.loadmat(str(utd_template / "Inertial" / f"{key}_inertial.mat"))["d_iner"]
        skel = scipy.io.loadmat(str(utd_template / "Skeleton" / f"{key}_skeleton.mat"))["d_skel"]
        _assert_float16_close(data.sequence("inertial", i), iner)
        stored_skel = data.sequence("skeleton", i)
        assert stored_skel.shape == (skel.shape[2], 20, 3)
        _assert_float16_close(stored_skel, skel.transpose(2, 0, 1))  # (20, 3, T) -> (T, 20, 3)
        stored_depth = data.sequence("depth", i)
        assert stored_depth.shape == depth[key].shape == (skel.shape[2], 30, 40)
        assert np.abs(stored_depth - depth[key].astype(np.float32)).max() <= 8.0
        assert np.array_equal(stored_depth == 0, depth[key] == 0), "'no reading' must stay exactly zero"


@needs_raw
def test_utd_deterministic(utd_template: Path, tmp_path: Path) -> None:
    a = utd_mhad.convert_utd_mhad(utd_template, tmp_path / "a")
    b = convert("utd-mhad", utd_template, tmp_path / "b")
    for name in ("data.npz", "dataset.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def _remove_skeleton(src: Path) -> str:
    (src / "Skeleton" / "a2_s3_t4_skeleton.mat").unlink()
    return "a2_s3_t4_skeleton.mat"


def _truncate_inertial(src: Path) -> str:
    path = src / "Inertial" / "a10_s5_t2_inertial.mat"
    path.write_bytes(path.read_bytes()[:300])
    return path.name


def _wrong_variable(src: Path) -> str:
    scipy.io.savemat(str(src / "Inertial" / "a1_s2_t1_inertial.mat"), {"x": np.zeros((50, 6))})
    return "a1_s2_t1_inertial.mat"


def _transposed_skeleton(src: Path) -> str:
    scipy.io.savemat(str(src / "Skeleton" / "a1_s1_t1_skeleton.mat"), {"d_skel": np.zeros((3, 20, 40))})
    return "a1_s1_t1_skeleton.mat"


def _nan_inertial(src: Path) -> str:
    iner = np.ones((60, 6))
    iner[5, 2] = np.nan
    scipy.io.savemat(str(src / "Inertial" / "a27_s7_t4_inertial.mat"), {"d_iner": iner})
    return "a27_s7_t4_inertial.mat"


def _depth_missing_key(src: Path) -> str:
    path = src / "depth_30x40.npz"
    kept = [k for k in sorted(UTD_KEYS) if k != "a23_s8_t3"]
    _write_frame_npz(path, src / "tmp.npz", kept)
    (src / "tmp.npz").replace(path)
    return "depth_30x40.npz"


def _depth_missing_array(src: Path) -> str:
    path = src / "depth_30x40.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in ("frames", "keys")}
    np.savez(path, **arrays)
    return "depth_30x40.npz"


def _remove_joint_order(src: Path) -> str:
    (src / "Skeleton" / "Skeleton_joint_order.txt").unlink()
    return "Skeleton_joint_order.txt"


@needs_raw
@pytest.mark.parametrize("damage", [_remove_skeleton, _truncate_inertial, _wrong_variable, _transposed_skeleton,
                                    _nan_inertial, _depth_missing_key, _depth_missing_array, _remove_joint_order])
def test_utd_bad_input_names_file_and_writes_nothing(utd_src: Path, tmp_path: Path,
                                                     damage: Callable[[Path], str]) -> None:
    _assert_fails_cleanly(utd_mhad.convert_utd_mhad, utd_src, tmp_path / "out" / "ds", damage(utd_src))


@needs_raw
def test_utd_missing_source_folder(tmp_path: Path) -> None:
    _assert_fails_cleanly(utd_mhad.convert_utd_mhad, tmp_path / "nope", tmp_path / "out", "nope")


@needs_raw
def test_failed_conversion_keeps_previous_output(utd_src: Path, tmp_path: Path) -> None:
    out = utd_mhad.convert_utd_mhad(utd_src, tmp_path / "ds")
    before = (out / "data.npz").read_bytes()
    _truncate_inertial(utd_src)
    with pytest.raises(DataFormatError):
        utd_mhad.convert_utd_mhad(utd_src, out)
    assert (out / "data.npz").read_bytes() == before


# ----------------------------------------------------------------------------------- AVLetters


@needs_raw
def test_avl_structure_labels_and_splits(avl_converted: Path) -> None:
    data = load_dataset(avl_converted)
    assert data.sample_ids.tolist() == sorted(AVL_STEMS)
    assert [data.schema.class_names[c] for c in data.labels] == [s[0] for s in sorted(AVL_STEMS)]
    assert data.schema.class_names == tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert data.schema.extra["speakers"] == sorted({s.split("_")[1] for s in AVL_STEMS})
    assert "default_rng(0)" in data.schema.extra["split_protocol"]
    ids = {name: set(data.sample_ids[idx].tolist()) for name, idx in data.splits.items()}
    assert ids["test"] == {"A3_Anya", "B3_Yi"}
    assert len(ids["val"]) == 1 and ids["val"] < {"A1_Anya", "A1_Kate", "A1_Steve", "A2_Bill", "A2_Yi"}
    assert ids["train"] == set(AVL_STEMS) - ids["test"] - ids["val"]
    assert data.modalities["audio"].values.dtype == np.float16
    assert data.modalities["lips"].values.dtype == np.uint8
    assert data.schema.modality("audio").rate_hz == 50.0 and data.schema.modality("lips").rate_hz == 25.0
    assert data.groups["speaker"].tolist() == [s.split("_")[1] for s in sorted(AVL_STEMS)]
    assert data.groups["repetition"].tolist() == [f"r{s[1]}" for s in sorted(AVL_STEMS)]


@needs_raw
def test_avl_values_round_trip(avl_converted: Path, avl_template: Path) -> None:
    data = load_dataset(avl_converted)
    lips = _frames_by_key(avl_template / "lips_30x40.npz")
    for i, stem in enumerate(data.sample_ids.tolist()):
        mfcc = _read_htk(avl_template / "Audio" / "mfcc" / "Clean" / f"{stem}.mfcc")
        assert data.sequence("audio", i).shape == mfcc.shape and mfcc.shape[1] == 26
        _assert_float16_close(data.sequence("audio", i), mfcc)
        assert np.array_equal(data.modalities["lips"].raw(i), lips[stem])


@needs_raw
def test_avl_deterministic(avl_template: Path, tmp_path: Path) -> None:
    a = avletters.convert_avletters(avl_template, tmp_path / "a")
    b = convert("avletters", avl_template, tmp_path / "b")
    for name in ("data.npz", "dataset.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def _mfcc(src: Path, stem: str) -> Path:
    return src / "Audio" / "mfcc" / "Clean" / f"{stem}.mfcc"


def _truncate_mfcc(src: Path) -> str:
    path = _mfcc(src, "B2_John")
    path.write_bytes(path.read_bytes()[:-7])
    return path.name


def _header_only_mfcc(src: Path) -> str:
    _mfcc(src, "A1_Kate").write_bytes(b"\x00\x00\x00")
    return "A1_Kate.mfcc"


def _wrong_kind_mfcc(src: Path) -> str:
    path = _mfcc(src, "A2_Yi")
    raw = bytearray(path.read_bytes())
    raw[10:12] = struct.pack(">h", 6)  # plain MFCC, no _E_D
    path.write_bytes(bytes(raw))
    return path.name


def _nan_mfcc(src: Path) -> str:
    path = _mfcc(src, "M1_Verity")
    raw = bytearray(path.read_bytes())
    raw[12 + 4 * 30: 12 + 4 * 31] = struct.pack(">f", float("nan"))
    path.write_bytes(bytes(raw))
    return path.name


def _remove_mfcc(src: Path) -> str:
    _mfcc(src, "A3_Anya").unlink()
    return "A3_Anya.mfcc"


def _lips_missing_key(src: Path) -> str:
    path = src / "lips_30x40.npz"
    _write_frame_npz(path, src / "tmp.npz", [s for s in AVL_STEMS if s != "B1_Faye"])
    (src / "tmp.npz").replace(path)
    return "lips_30x40.npz"


def _lips_wrong_shape(src: Path) -> str:
    path = src / "lips_30x40.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["frames"] = np.ascontiguousarray(arrays["frames"].transpose(0, 2, 1))
    np.savez(path, **arrays)
    return "lips_30x40.npz"


def _lips_garbage(src: Path) -> str:
    (src / "lips_30x40.npz").write_bytes(b"PK\x03\x04 not really a zip")
    return "lips_30x40.npz"


@needs_raw
@pytest.mark.parametrize("damage", [_truncate_mfcc, _header_only_mfcc, _wrong_kind_mfcc, _nan_mfcc, _remove_mfcc,
                                    _lips_missing_key, _lips_wrong_shape, _lips_garbage])
def test_avl_bad_input_names_file_and_writes_nothing(avl_src: Path, tmp_path: Path,
                                                     damage: Callable[[Path], str]) -> None:
    _assert_fails_cleanly(avletters.convert_avletters, avl_src, tmp_path / "out" / "ds", damage(avl_src))


# ---------------------------------------------------------------------------------- registry


def test_registry_and_unknown_name(tmp_path: Path) -> None:
    from precal.data.mmsa import convert_mmsa

    assert CONVERTERS == {"utd-mhad": utd_mhad.convert_utd_mhad, "avletters": avletters.convert_avletters,
                          "mmsa": convert_mmsa}
    with pytest.raises(ValueError, match="avletters, mmsa, utd-mhad"):
        convert("crema-d", tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- shipped sample_data


@pytest.fixture(scope="module")
def shipped_utd():
    return load_dataset(SAMPLE_DATA / "utd_mhad")


@pytest.fixture(scope="module")
def shipped_avl():
    return load_dataset(SAMPLE_DATA / "avletters")


def _assert_partition_without_nan(data) -> None:
    together = np.sort(np.concatenate(list(data.splits.values())))
    assert np.array_equal(together, np.arange(len(data))), "splits must be disjoint and cover every sample"
    for name, rag in data.modalities.items():
        assert np.issubdtype(rag.values.dtype, np.integer) or np.isfinite(rag.values).all(), name
        assert np.all(np.diff(rag.offsets) > 0), f"every sample must have {name}"


def test_shipped_utd_mhad(shipped_utd) -> None:
    data = shipped_utd
    assert len(data) == 861 and data.schema.num_classes == 27
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 324, "val": 107, "test": 430}
    _assert_partition_without_nan(data)
    for split, idx in data.splits.items():
        keys = [utd_mhad.SampleKey(*(int(p[1:]) for p in s.split("_"))) for s in data.sample_ids[idx]]
        assert {k.split for k in keys} == {split}
    assert collections.Counter(data.labels.tolist()) == {**{c: 32 for c in range(27)}, 7: 31, 22: 31, 26: 31}
    for sid in ("a8_s1_t4", "a23_s6_t4", "a27_s8_t4"):
        assert sid not in set(data.sample_ids.tolist())
    assert sorted(set(data.groups["subject"].tolist())) == [f"s{i}" for i in range(1, 9)]
    assert set(data.groups["subject"][data.splits["test"]].tolist()) == {"s2", "s4", "s6", "s8"}  # cross-subject


def test_shipped_avletters(shipped_avl) -> None:
    data = shipped_avl
    assert len(data) == 780 and data.schema.num_classes == 26
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 416, "val": 104, "test": 260}
    _assert_partition_without_nan(data)
    reps = np.array([int(s.split("_")[0][1:]) for s in data.sample_ids])
    assert set(reps[data.splits["test"]].tolist()) == {3}
    assert collections.Counter(data.labels[data.splits["val"]].tolist()) == {c: 4 for c in range(26)}
    assert len(data.schema.extra["speakers"]) == 10
    assert sorted(set(data.groups["speaker"].tolist())) == data.schema.extra["speakers"]
    assert set(data.groups["repetition"][data.splits["test"]].tolist()) == {"r3"}


def test_shipped_headers_match_current_converters() -> None:
    """Catches a stale sample_data/ after a converter change (the data must then be rebuilt)."""
    utd = json.loads((SAMPLE_DATA / "utd_mhad" / "dataset.json").read_text())["schema"]
    avl = json.loads((SAMPLE_DATA / "avletters" / "dataset.json").read_text())["schema"]
    assert utd == utd_mhad._schema(utd["extra"]["joint_names"]).to_json()
    assert avl == avletters._schema(avl["extra"]["speakers"]).to_json()


@needs_raw
def test_shipped_samples_match_raw(shipped_utd, shipped_avl) -> None:
    raw = SHARED / "utd_mhad"
    i = shipped_utd.index_of("a27_s8_t3")
    iner = scipy.io.loadmat(str(raw / "Inertial" / "a27_s8_t3_inertial.mat"))["d_iner"]
    _assert_float16_close(shipped_utd.sequence("inertial", i), iner)
    j = shipped_avl.index_of("Z3_Yi")
    _assert_float16_close(shipped_avl.sequence("audio", j), _read_htk(_mfcc(SHARED / "avletters", "Z3_Yi")))
