"""MMSA pickle import: layout round trip, padding removal, -inf handling, trust and safety."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np
import pytest

from precal.data.mmsa import UntrustedPickleError, load_mmsa_pickle, unique_ids
from precal.data.storage import DataFormatError, load_dataset, save_dataset


# MMSA MOSI shapes are text (N, 50, 768), audio (N, 375, 5), vision (N, 500, 20); T is kept small here.
T_TEXT, T_AUDIO, T_VISION = 7, 12, 10
F_TEXT, F_AUDIO, F_VISION = 768, 5, 20
SPLIT_SIZES = {"train": 6, "valid": 3, "test": 4}


def _padded(rng: np.random.Generator, lengths: np.ndarray, t: int, f: int) -> np.ndarray:
    """Right-padded (N, T, F) features: real steps are non-zero, padding is exactly zero."""
    out = np.zeros((len(lengths), t, f), dtype=np.float32)
    for i, n in enumerate(lengths):
        out[i, :n] = rng.normal(size=(n, f)).astype(np.float32) + 0.1
    return out


def make_split(rng: np.random.Generator, n: int, prefix: str) -> Dict[str, Any]:
    """One split in the MMSA layout, including keys the loader must ignore."""
    text_len = rng.integers(1, T_TEXT + 1, size=n)
    audio_len = rng.integers(1, T_AUDIO + 1, size=n)
    vision_len = rng.integers(1, T_VISION + 1, size=n)
    labels = np.round(rng.uniform(-3, 3, size=n), 1)
    labels[0] = 0.0  # exact neutral labels occur in MOSI
    labels[-1] = -3.0
    return {
        "raw_text": [f"utterance {prefix} {i}" for i in range(n)],
        "text": _padded(rng, text_len, T_TEXT, F_TEXT),
        "text_bert": rng.integers(0, 2000, size=(n, 3, T_TEXT)).astype(np.float64),
        "audio": _padded(rng, audio_len, T_AUDIO, F_AUDIO),
        "vision": _padded(rng, vision_len, T_VISION, F_VISION),
        "audio_lengths": audio_len.tolist(),  # MMSA stores plain lists here
        "vision_lengths": vision_len.astype(np.int64),
        "regression_labels": labels.astype(np.float32),
        "classification_labels": (labels > 0).astype(np.float32),
        "id": np.array([f"{prefix}vid{i}$_${i % 3}" for i in range(n)]),
        "_text_len": text_len,  # test bookkeeping only; the loader ignores unknown keys
    }


def make_layout(seed: int = 0) -> Dict[str, Dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return {split: make_split(rng, n, split[:2]) for split, n in SPLIT_SIZES.items()}


def write(path: Path, obj: Any, protocol: int = pickle.HIGHEST_PROTOCOL) -> Path:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    return path


@pytest.fixture
def layout_file(tmp_path: Path) -> Tuple[Path, Dict[str, Dict[str, Any]]]:
    layout = make_layout()
    return write(tmp_path / "unaligned_50.pkl", layout), layout


# --------------------------------------------------------------------------------------------
# round trip


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_round_trip_matches_the_unpadded_source(tmp_path: Path, protocol: int) -> None:
    layout = make_layout(seed=protocol)
    data = load_mmsa_pickle(write(tmp_path / "aligned_50.pkl", layout, protocol), trusted=True)
    assert data.schema.name == "mmsa-aligned_50"
    assert data.schema.task == "regression"
    assert [(m.name, m.kind, m.step_shape) for m in data.schema.modalities] == [
        ("text", "token_sequence", (F_TEXT,)), ("audio", "token_sequence", (F_AUDIO,)),
        ("vision", "token_sequence", (F_VISION,))]
    i = 0
    for split_key, split_name in (("train", "train"), ("valid", "val"), ("test", "test")):
        block = layout[split_key]
        idx = data.split(split_name)
        assert len(idx) == SPLIT_SIZES[split_key]
        for j, pos in enumerate(idx):
            assert pos == i
            lengths = {"text": block["_text_len"][j], "audio": block["audio_lengths"][j],
                       "vision": block["vision_lengths"][j]}
            for m, n in lengths.items():
                assert data.modalities[m].length(pos) == n
                np.testing.assert_array_equal(data.sequence(m, pos), block[m][j, :n])
            assert data.labels[pos] == block["regression_labels"][j]
            assert data.sample_ids[pos] == block["id"][j]
            i += 1
    assert data.labels.dtype == np.float32
    assert np.sum(data.labels == 0.0) >= 3  # exact zeros survive


def test_save_then_load_dataset(tmp_path: Path, layout_file) -> None:
    path, _ = layout_file
    data = load_mmsa_pickle(path, trusted=True)
    back = load_dataset(save_dataset(data, tmp_path / "mosi"))
    assert back.schema == data.schema
    np.testing.assert_array_equal(back.labels, data.labels)
    np.testing.assert_array_equal(back.sample_ids, data.sample_ids)
    assert {k: v.tolist() for k, v in back.splits.items()} == {k: v.tolist() for k, v in data.splits.items()}
    for m in ("text", "audio", "vision"):
        np.testing.assert_array_equal(back.modalities[m].offsets, data.modalities[m].offsets)
        np.testing.assert_array_equal(back.modalities[m].values, data.modalities[m].values)


def test_text_lengths_key_wins_over_zero_detection(tmp_path: Path) -> None:
    layout = make_layout()
    layout["train"]["text_lengths"] = np.ones(SPLIT_SIZES["train"], dtype=np.int64)
    data = load_mmsa_pickle(write(tmp_path / "x.pkl", layout), trusted=True)
    assert all(data.modalities["text"].length(i) == 1 for i in data.split("train"))
    assert data.schema.extra["length_source"]["text"] == "text_lengths"


def test_left_padding_and_inner_zero_rows_without_lengths(tmp_path: Path) -> None:
    layout = make_layout()
    text = layout["train"]["text"]
    text[0] = 0.0
    text[0, 3:6] = 1.0  # left and right padding around 3 real steps
    text[0, 4] = 0.0    # a genuine all-zero step inside the utterance is kept
    text[1] = 0.0       # nothing left: the modality is absent for this sample
    data = load_mmsa_pickle(write(tmp_path / "x.pkl", layout), trusted=True)
    np.testing.assert_array_equal(data.sequence("text", 0), text[0, 3:6])
    assert not data.is_present("text", 1)


def test_zero_length_audio_is_absent(tmp_path: Path) -> None:
    layout = make_layout()
    layout["test"]["audio_lengths"][2] = 0
    data = load_mmsa_pickle(write(tmp_path / "x.pkl", layout), trusted=True)
    assert not data.is_present("audio", int(data.split("test")[2]))


def test_duplicate_ids_are_made_unique(tmp_path: Path) -> None:
    layout = make_layout()
    layout["valid"]["id"][:] = layout["train"]["id"][0]
    layout["train"]["id"][1] = layout["train"]["id"][0] + "#2"  # an id that looks like a suffix
    data = load_mmsa_pickle(write(tmp_path / "x.pkl", layout), trusted=True)
    assert len(set(data.sample_ids.tolist())) == len(data)
    first = layout["train"]["id"][0]
    assert data.sample_ids[0] == first and data.sample_ids[1] == first + "#2"
    assert data.sample_ids[data.split("val")].tolist() == [first + "#3", first + "#4", first + "#5"]
    assert unique_ids(["a", "a", "b", "a"]) == ["a", "a#2", "b", "a#3"]


def test_pickle_from_numpy1_with_object_ids_loads(tmp_path: Path) -> None:
    """MMSA's files were written by numpy 1.x, which names ``numpy.core.multiarray``; ids may be an
    object array. Protocol 2 spells globals as text, so the old module name can be substituted."""
    layout = make_layout()
    for split in layout.values():
        split["id"] = split["id"].astype(object)
    blob = pickle.dumps(layout, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in blob
    path = tmp_path / "old.pkl"
    path.write_bytes(blob)
    data = load_mmsa_pickle(path, trusted=True)
    assert data.sample_ids[0] == layout["train"]["id"][0]
    np.testing.assert_array_equal(data.sequence("vision", 0),
                                  layout["train"]["vision"][0, :layout["train"]["vision_lengths"][0]])


# --------------------------------------------------------------------------------------------
# non-finite values


def test_non_finite_audio_and_vision_are_set_to_zero(tmp_path: Path) -> None:
    layout = make_layout()
    layout["train"]["audio"][0, 0, 1] = -np.inf  # MOSI COVAREP has -inf
    layout["train"]["audio"][0, 0, 2] = -np.inf
    layout["test"]["vision"][1, 0, 0] = np.nan
    data = load_mmsa_pickle(write(tmp_path / "x.pkl", layout), trusted=True)
    audio = data.sequence("audio", 0)
    assert audio[0, 1] == 0.0 and audio[0, 2] == 0.0
    np.testing.assert_array_equal(audio[0, 3:], layout["train"]["audio"][0, 0, 3:])
    assert data.sequence("vision", int(data.split("test")[1]))[0, 0] == 0.0
    assert data.schema.extra["nonfinite_features_set_to_zero"] == {"audio": 2, "vision": 1}
    assert all(np.isfinite(r.values).all() for r in data.modalities.values())


def test_all_minus_inf_row_is_data_not_padding(tmp_path: Path) -> None:
    layout = make_layout()
    for split in layout.values():  # no lengths key: padding is found by zero detection
        split.pop("vision_lengths", None)
    layout["train"]["vision"][0, :] = 0.0
    layout["train"]["vision"][0, 0] = -np.inf
    data = load_mmsa_pickle(write(tmp_path / "x.pkl", layout), trusted=True)
    assert data.modalities["vision"].length(0) == 1
    np.testing.assert_array_equal(data.sequence("vision", 0), np.zeros((1, F_VISION)))


def test_nan_label_is_an_error(tmp_path: Path) -> None:
    layout = make_layout()
    layout["valid"]["regression_labels"][1] = np.nan
    with pytest.raises(DataFormatError, match=r"valid.*label.*vavid1"):
        load_mmsa_pickle(write(tmp_path / "x.pkl", layout), trusted=True)


def test_non_finite_text_is_an_error(tmp_path: Path) -> None:
    layout = make_layout()
    layout["train"]["text"][0, 0, 0] = np.inf
    with pytest.raises(DataFormatError, match="'text' contains 1 NaN or infinite"):
        load_mmsa_pickle(write(tmp_path / "x.pkl", layout), trusted=True)


# --------------------------------------------------------------------------------------------
# trust and safety


def test_refuses_without_trust(layout_file) -> None:
    path, _ = layout_file
    with pytest.raises(UntrustedPickleError) as info:
        load_mmsa_pickle(path)
    message = str(info.value)
    assert "run arbitrary code" in message and "--trust-pickle" in message and "trusted=True" in message
    assert isinstance(info.value, DataFormatError)


class _Evil:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.target}",))


@pytest.mark.parametrize("where", ["top", "inside"])
def test_malicious_pickle_is_refused_even_when_trusted(tmp_path: Path, where: str) -> None:
    target = tmp_path / "pwned.txt"
    if where == "top":
        payload: Any = _Evil(target)
    else:
        payload = make_layout()
        payload["valid"]["audio"] = _Evil(target)
    path = write(tmp_path / "evil.pkl", payload)
    with pytest.raises(DataFormatError, match=r"system.*not allowed"):
        load_mmsa_pickle(path, trusted=True)
    assert not target.exists()


def test_other_globals_are_refused(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    path = write(tmp_path / "x.pkl", {"train": Payload()})
    with pytest.raises(DataFormatError, match="builtins.eval"):
        load_mmsa_pickle(path, trusted=True)


def test_truncated_pickle_is_a_format_error(tmp_path: Path, layout_file) -> None:
    path, _ = layout_file
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataFormatError, match="cannot be read"):
        load_mmsa_pickle(cut, trusted=True)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="does not exist"):
        load_mmsa_pickle(tmp_path / "nope.pkl", trusted=True)


# --------------------------------------------------------------------------------------------
# layout errors


def _load_modified(tmp_path: Path, change) -> None:
    layout = make_layout()
    change(layout)
    load_mmsa_pickle(write(tmp_path / "x.pkl", layout), trusted=True)


def test_missing_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"split 'valid' is missing the key 'audio'"):
        _load_modified(tmp_path, lambda d: d["valid"].pop("audio"))


def test_missing_split_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"split 'test' is missing; found: train, valid"):
        _load_modified(tmp_path, lambda d: d.pop("test"))


def test_mismatched_sample_counts(tmp_path: Path) -> None:
    def drop_label(d):
        d["train"]["regression_labels"] = d["train"]["regression_labels"][:-1]

    with pytest.raises(DataFormatError, match=r"disagree.*regression_labels=5"):
        _load_modified(tmp_path, drop_label)


def test_wrong_dims(tmp_path: Path) -> None:
    def flatten_audio(d):
        d["train"]["audio"] = d["train"]["audio"].reshape(SPLIT_SIZES["train"], -1)

    with pytest.raises(DataFormatError, match=r"'audio' must be \(N, T, F\)"):
        _load_modified(tmp_path, flatten_audio)


def test_feature_size_must_agree_across_splits(tmp_path: Path) -> None:
    def narrow(d):
        d["test"]["vision"] = d["test"]["vision"][:, :, :10]

    with pytest.raises(DataFormatError, match=r"'vision' has a different feature size"):
        _load_modified(tmp_path, narrow)


def test_lengths_beyond_padded_length(tmp_path: Path) -> None:
    def too_long(d):
        d["train"]["vision_lengths"][0] = T_VISION + 1

    with pytest.raises(DataFormatError, match=r"'vision_lengths' must be whole numbers in 0..10"):
        _load_modified(tmp_path, too_long)


def test_precal_convert_mmsa_needs_trust_and_then_writes_a_data_set(tmp_path: Path, layout_file, capsys) -> None:
    """The MMSA converter is reachable from the command line, and only with --trust-pickle."""
    from precal.cli import main
    from precal.data.storage import load_dataset

    path, _ = layout_file
    assert main(["convert", "mmsa", str(path), str(tmp_path / "refused")]) == 2
    assert "--trust-pickle" in capsys.readouterr().err and not (tmp_path / "refused").exists()
    assert main(["convert", "mmsa", str(path), str(tmp_path / "mosi"), "--trust-pickle"]) == 0
    assert load_dataset(tmp_path / "mosi").schema.modality_names == load_mmsa_pickle(path, trusted=True).schema.modality_names
    assert main(["convert", "utd-mhad", str(tmp_path), str(tmp_path / "x"), "--trust-pickle"]) == 2
    assert "applies only" in capsys.readouterr().err
