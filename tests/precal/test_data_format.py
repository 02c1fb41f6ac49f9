"""The on-disk data format, preprocessing, collate and augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from precal.data.dataset import MultimodalDataset, Preprocessor, resample_sequence
from precal.data.schema import DatasetSchema, ModalitySchema, SchemaError
from precal.data.storage import DataFormatError, MultimodalData, build_ragged, load_dataset, save_dataset
from precal.training.augment import modality_dropout, noise_augment, recombine_augment, swap_augment


def make_data(n: int = 6, absent: tuple[int, ...] = (2,)) -> MultimodalData:
    rng = np.random.default_rng(0)
    schema = DatasetSchema("toy", (ModalitySchema("acc", "time_series", (3,), rate_hz=50.0),
                                   ModalitySchema("cam", "frame_sequence", (4, 5), scale=2.0, offset=1.0),
                                   ModalitySchema("meta", "vector", (2,))),
                           class_names=("x", "y"))
    acc = [rng.normal(size=(5 + i, 3)).astype(np.float32) for i in range(n)]
    cam = [None if i in absent else rng.integers(0, 255, size=(2 + i % 3, 4, 5)).astype(np.uint8) for i in range(n)]
    meta = [rng.normal(size=(1, 2)).astype(np.float32) for _ in range(n)]
    return MultimodalData(
        schema, np.array([f"s{i}" for i in range(n)]), np.array([i % 2 for i in range(n)], dtype=np.int64),
        {"acc": build_ragged(acc, (3,), np.float32), "cam": build_ragged(cam, (4, 5), np.uint8),
         "meta": build_ragged(meta, (2,), np.float32)},
        {"train": np.array([0, 1, 2, 3]), "test": np.array([4, 5])},
    )


def test_round_trip_and_dequantisation(tmp_path: Path) -> None:
    data = make_data()
    save_dataset(data, tmp_path / "toy")
    back = load_dataset(tmp_path / "toy")
    assert back.schema == data.schema
    assert list(back.sample_ids) == list(data.sample_ids)
    for m in data.modalities:
        assert np.array_equal(back.modalities[m].values, data.modalities[m].values)
    raw = data.modalities["cam"].raw(0)
    assert np.allclose(back.sequence("cam", 0), raw.astype(np.float32) * 2.0 + 1.0)
    assert not back.is_present("cam", 2) and back.sequence("cam", 2).shape == (0, 4, 5)


def test_save_is_deterministic(tmp_path: Path) -> None:
    save_dataset(make_data(), tmp_path / "a")
    save_dataset(make_data(), tmp_path / "b")
    for f in ("dataset.json", "data.npz"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_nan_is_refused_with_the_sample_named(tmp_path: Path) -> None:
    data = make_data()
    data.modalities["acc"].values[data.modalities["acc"].offsets[3] + 1, 0] = np.nan
    with pytest.raises(DataFormatError, match="'acc'.*NaN.*'s3'"):
        save_dataset(data, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("breakage, message", [
    (lambda d: d.modalities["acc"].offsets.__setitem__(2, 999), "acc.offsets"),
    (lambda d: d.splits.__setitem__("test", np.array([3, 4])), "both split"),
    (lambda d: d.splits.__setitem__("test", np.array([40])), "outside"),
    (lambda d: setattr(d, "labels", np.array([0, 1, 5, 0, 1, 0])), "labels must lie"),
    (lambda d: d.modalities.__setitem__("lidar", d.modalities["acc"]), "unknown modality 'lidar'"),
])
def test_structural_errors_are_named(tmp_path: Path, breakage, message: str) -> None:
    data = make_data()
    breakage(data)
    with pytest.raises(DataFormatError, match=message):
        save_dataset(data, tmp_path / "bad")


def test_load_errors(tmp_path: Path) -> None:
    save_dataset(make_data(), tmp_path / "toy")
    with pytest.raises(DataFormatError, match="does not exist"):
        load_dataset(tmp_path / "missing")
    npz = tmp_path / "toy" / "data.npz"
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(DataFormatError, match="cannot be read"):
        load_dataset(tmp_path / "toy")
    save_dataset(make_data(), tmp_path / "toy2")
    header = json.loads((tmp_path / "toy2" / "dataset.json").read_text())
    header["schema"]["modalities"][0]["kind"] = "hologram"
    (tmp_path / "toy2" / "dataset.json").write_text(json.dumps(header))
    with pytest.raises(SchemaError, match="hologram"):
        load_dataset(tmp_path / "toy2")
    (tmp_path / "toy2" / "dataset.json").write_text("{")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        load_dataset(tmp_path / "toy2")


def test_resample_keeps_end_points_and_picks_real_frames() -> None:
    seq = np.arange(10, dtype=np.float32)[:, None]
    out = resample_sequence(seq, 4, "time_series")
    assert out.shape == (4, 1) and out[0, 0] == 0 and out[-1, 0] == 9
    frames = np.arange(7, dtype=np.float32)[:, None, None] * np.ones((1, 2, 2), np.float32)
    picked = resample_sequence(frames, 3, "frame_sequence")
    assert set(picked[:, 0, 0].tolist()) <= set(range(7)) and picked[-1, 0, 0] == 6


def test_preprocessor_uses_train_statistics_only() -> None:
    data = make_data()
    data.modalities["acc"].values[data.modalities["acc"].offsets[4]:] += 1000.0  # test split shifted
    pre = Preprocessor().fit(data, data.split("train"))
    assert np.all(np.abs(pre.mean["acc"]) < 10)
    back = Preprocessor.from_json(json.loads(json.dumps(pre.to_json())))
    assert np.allclose(back.mean["acc"], pre.mean["acc"]) and np.allclose(back.std["cam"], pre.std["cam"])
    assert pre.mean["cam"].shape == (1,)  # one scalar for frames


def test_collate_masks_padding_and_presence() -> None:
    data = make_data()
    ds = MultimodalDataset(data, [1, 2, 3], Preprocessor())
    batch = ds.full_batch()
    assert batch.inputs["acc"].shape == (3, 8, 3)
    assert batch.padding_mask["acc"].sum(dim=1).tolist() == [6, 7, 8]
    assert batch.present["cam"].tolist() == [True, False, True]
    assert not batch.padding_mask["cam"][1].any()
    assert batch.inputs["meta"].shape == (3, 2) and "meta" not in batch.padding_mask
    assert batch.labels.tolist() == [1, 0, 1] and batch.indices.tolist() == [1, 2, 3]


def test_modality_dropout_never_removes_the_last_modality_and_is_seeded() -> None:
    data = make_data(n=6, absent=())
    batch = MultimodalDataset(data, range(6), Preprocessor()).full_batch()
    a = modality_dropout(batch, 1.0, torch.Generator().manual_seed(1))
    b = modality_dropout(batch, 1.0, torch.Generator().manual_seed(1))
    present = torch.stack([a.presence(m) for m in a.modalities], dim=1)
    assert (present.sum(dim=1) == 2).all()  # exactly one of three dropped per sample at p=1
    for m in a.modalities:
        assert torch.equal(a.presence(m), b.presence(m))
        dropped = ~a.presence(m)
        assert (a.inputs[m][dropped] == 0).all()
    single = batch.restrict(["acc"])
    assert modality_dropout(single, 1.0, torch.Generator().manual_seed(1)) is single


def test_noise_augment_touches_only_real_steps() -> None:
    data = make_data(n=6, absent=())
    batch = MultimodalDataset(data, range(6), Preprocessor()).full_batch()
    out = noise_augment(batch, 1.0, torch.Generator().manual_seed(0))
    pad = ~batch.padding_mask["acc"]
    assert torch.equal(out.inputs["acc"][pad], batch.inputs["acc"][pad])
    changed = sum(not torch.equal(out.inputs[m], batch.inputs[m]) for m in batch.modalities)
    assert changed >= 1


def test_swap_augment_takes_the_modality_from_a_different_class_and_keeps_the_label() -> None:
    data = make_data(n=6, absent=())
    batch = MultimodalDataset(data, range(6), Preprocessor()).full_batch()
    out, swapped = swap_augment(batch, 1.0, torch.Generator().manual_seed(3))
    again, swapped_again = swap_augment(batch, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(swapped, swapped_again)
    assert swapped.shape == (6, 3) and (swapped.sum(dim=1) == 1).all()  # p=1: one modality per sample
    assert torch.equal(out.labels, batch.labels)
    for i, m in enumerate(batch.modalities):
        assert torch.equal(out.inputs[m], again.inputs[m])
        for row in range(6):
            x = out.inputs[m][row]
            if not swapped[row, i]:
                assert torch.equal(x, batch.inputs[m][row])
                continue
            donors = [k for k in range(6) if torch.equal(batch.inputs[m][k], x)]
            assert donors and all(batch.labels[k] != batch.labels[row] for k in donors)
            if m in batch.padding_mask:  # the donor's padding comes along with its values
                assert torch.equal(out.padding_mask[m][row], batch.padding_mask[m][donors[0]])
    untouched, none = swap_augment(batch, 0.0, torch.Generator().manual_seed(3))
    assert untouched is batch and not none.any()


def test_recombine_augment_takes_the_modality_from_another_sample_of_the_same_class() -> None:
    data = make_data(n=8, absent=())
    batch = MultimodalDataset(data, range(8), Preprocessor()).full_batch()
    out = recombine_augment(batch, 1.0, torch.Generator().manual_seed(4))
    again = recombine_augment(batch, 1.0, torch.Generator().manual_seed(4))
    assert torch.equal(out.labels, batch.labels)
    replaced = 0
    for m in batch.modalities:
        assert torch.equal(out.inputs[m], again.inputs[m])  # seeded
        for row in range(8):
            x = out.inputs[m][row]
            if torch.equal(x, batch.inputs[m][row]):
                continue
            replaced += 1
            donors = [k for k in range(8) if k != row and torch.equal(batch.inputs[m][k], x)]
            assert donors and all(batch.labels[k] == batch.labels[row] for k in donors)
            if m in batch.padding_mask:
                assert torch.equal(out.padding_mask[m][row], batch.padding_mask[m][donors[0]])
    assert replaced == 8  # p=1 and every class has a partner: one modality per sample
    assert recombine_augment(batch, 0.0, torch.Generator().manual_seed(4)) is batch
    single = batch.restrict(["acc"])
    assert recombine_augment(single, 1.0, torch.Generator().manual_seed(4)) is single


def test_recombine_augment_never_fills_an_absent_modality() -> None:
    data = make_data(n=8)
    batch = MultimodalDataset(data, range(8), Preprocessor()).full_batch()
    out = recombine_augment(batch, 1.0, torch.Generator().manual_seed(5))
    for m in batch.modalities:
        assert torch.equal(out.presence(m), batch.presence(m))
        assert (out.inputs[m][~batch.presence(m)] == 0).all()


def test_groups_round_trip_and_are_validated(tmp_path: Path) -> None:
    data = make_data()
    data.groups = {"subject": np.array(["a", "a", "b", "b", "c", "c"]), "session": np.array(["1", "2"] * 3)}
    save_dataset(data, tmp_path / "g")
    back = load_dataset(tmp_path / "g")
    assert set(back.groups) == {"subject", "session"}
    assert back.groups["subject"].tolist() == ["a", "a", "b", "b", "c", "c"]
    assert back.group_of(3) == {"subject": "b", "session": "2"}
    for groups, message in (({"subject": np.array(["a"] * 5)}, r"group.subject must be \(6,\) strings"),
                            ({"subject": np.arange(6)}, r"group.subject must be \(6,\) strings"),
                            ({"bad name": np.array(["a"] * 6)}, "group name 'bad name'"),
                            ({"subject": np.array(["a", "", "b", "b", "c", "c"])}, "empty for sample 's1'")):
        data.groups = groups
        with pytest.raises(DataFormatError, match=message):
            save_dataset(data, tmp_path / "bad")
        assert not (tmp_path / "bad").exists()


def test_group_arrays_of_numbers_in_a_file_are_refused(tmp_path: Path) -> None:
    import zipfile

    save_dataset(make_data(), tmp_path / "g")
    with zipfile.ZipFile(tmp_path / "g" / "data.npz", "a") as zf, zf.open("group.subject.npy", "w") as fh:
        np.lib.format.write_array(fh, np.arange(6))
    with pytest.raises(DataFormatError, match="group.subject must hold strings"):
        load_dataset(tmp_path / "g")


def test_a_vector_modality_from_an_n_by_f_array_is_explained() -> None:
    rows = np.zeros((4, 3), np.float32)
    with pytest.raises(DataFormatError, match=r"sample 0 has shape \(3,\).*pass each sample as a \(1, 3\) array, "
                                              r"e.g. rows\[:, None\]"):
        build_ragged(rows, (3,), np.float32)
    rag = build_ragged(rows[:, None], (3,), np.float32)
    assert rag.values.shape == (4, 3) and rag.offsets.tolist() == [0, 1, 2, 3, 4]


def test_every_example_of_the_data_format_page_runs(tmp_path: Path, monkeypatch) -> None:
    """docs/data-format.md promises runnable examples, one per kind: each writes a data set that
    loads back with the kinds it shows."""
    import re

    page = (Path(__file__).resolve().parents[2] / "docs" / "data-format.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) == 4
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "docs/data-format.md", "exec"), {})
    kinds = {m.kind for name in ("gestures", "depth_only", "clips", "opinions")
             for m in load_dataset(tmp_path / name).schema.modalities}
    assert kinds == {"time_series", "frame_sequence", "vector", "token_sequence"}
    clips = load_dataset(tmp_path / "clips")
    assert not clips.is_present("audio", 3) and clips.sequence("video", 0).shape == (1, 16)
    assert load_dataset(tmp_path / "opinions").groups["speaker"][4] == "spk1"
