"""Issue 20, item 7 (and items 2-3 through the upload box): uploads and caches that stay bounded.

Uploads go to a private per-process folder that is removed at exit; corrupt archives (deflate,
LZMA, bzip2 streams, unknown methods) are one line and leave nothing behind; only a checkpoint's own
files are unpacked; an uploaded checkpoint cannot make the server probe its folders; the disk caches
evict their least recently used files. Backend functions are tested directly; the last test drives
the Streamlit app with ``AppTest`` as tests/test_dashboard_app.py does.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from precal import disk_cache
from precal.checkpoint import CheckpointError, load_checkpoint
from precal.dashboard.backend import uploads
from precal.dashboard.backend.pairs import ModelView
from precal.dashboard.backend.running import cached_predict, predict_view
from precal.dashboard.backend.uploads import UploadArea, is_uploaded, load_uploaded_checkpoint, upload_area
from precal.data.storage import load_dataset
from precal.evaluation import dataset_for, resolve_data_dir
from precal.models.model import CALIBRATED
from tests.corpus import (assert_unchanged, deadline, edit_json, one_line, snapshot, tiny_checkpoint,  # noqa: E402
                    tiny_dataset)


def _zip(folder: Path, method: int = zipfile.ZIP_DEFLATED, extra=()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"{folder.name}/{p.name}")
        for name, payload in extra:
            zf.writestr(name, payload)
    return buf.getvalue()


def _patch_member(payload: bytes, name: str, at: int, value: bytes) -> bytes:
    """Overwrite bytes of a member's compressed data, ``at`` bytes after its start."""
    data = bytearray(payload)
    info = zipfile.ZipFile(io.BytesIO(payload)).getinfo(name)
    off = info.header_offset
    n, m = struct.unpack("<HH", data[off + 26: off + 30])
    start = off + 30 + n + m + at
    data[start: start + len(value)] = value
    return bytes(data)


def _unknown_method(payload: bytes, name: str) -> bytes:
    """Declare compression method 99 (e.g. AES) for one member, in its local and central headers."""
    data = bytearray(payload)
    info = zipfile.ZipFile(io.BytesIO(payload)).getinfo(name)
    data[info.header_offset + 8: info.header_offset + 10] = struct.pack("<H", 99)
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        n = struct.unpack("<H", data[pos + 28: pos + 30])[0]
        if data[pos + 46: pos + 46 + n].decode() == name:
            data[pos + 10: pos + 12] = struct.pack("<H", 99)
        pos = data.find(b"PK\x01\x02", pos + 4)
    return bytes(data)


@pytest.fixture
def ck(tmp_path) -> Path:
    return tiny_checkpoint(tmp_path / "src" / "mine_calon", tiny_dataset(tmp_path / "src" / "data"))


CORRUPTIONS = {
    "deflate stream": lambda p, n: _patch_member(p, n, 0, b"\xff\xff\xff"),
    "LZMA options": lambda p, n: _patch_member(p, n, 4, b"\xff"),
    "LZMA stream": lambda p, n: _patch_member(p, n, 9, b"\xff" * 20),
    "bzip2 stream": lambda p, n: _patch_member(p, n, 0, b"XXXX"),
    "unknown method": _unknown_method,
}
METHODS = {"deflate stream": zipfile.ZIP_DEFLATED, "LZMA options": zipfile.ZIP_LZMA,
           "LZMA stream": zipfile.ZIP_LZMA, "bzip2 stream": zipfile.ZIP_BZIP2, "unknown method": zipfile.ZIP_STORED}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_corrupt_archive_is_one_line_and_leaves_nothing(tmp_path, ck, case):
    payload = CORRUPTIONS[case](_zip(ck, METHODS[case]), f"{ck.name}/config.json")
    dest = tmp_path / "uploads"
    dest.mkdir()
    with pytest.raises(CheckpointError) as err:
        load_uploaded_checkpoint(payload, dest)
    assert "cannot be unpacked" in one_line(str(err.value))
    assert list(dest.iterdir()) == []


def test_only_the_checkpoint_s_own_files_are_unpacked(tmp_path, ck):
    padding = [(f"{ck.name}/padding.bin", bytes(5_000_000)), ("elsewhere/evil.sh", "rm -rf ~"),
               (f"{ck.name}/notes/readme.txt", "hello")]
    ckpt = load_uploaded_checkpoint(_zip(ck, extra=padding), tmp_path / "uploads")
    unpacked = sorted(p.relative_to(tmp_path / "uploads").as_posix() for p in (tmp_path / "uploads").rglob("*")
                      if p.is_file())
    assert [u.split("/", 1)[1] for u in unpacked] == [f"{ck.name}/{n}" for n in
                                                      ("config.json", "history.json", "metrics.json",
                                                       "model.safetensors")]
    assert ckpt.fingerprint == load_checkpoint(ck).fingerprint


@pytest.mark.parametrize("change, field", [
    (lambda c: c["model"].update(fusion_layers=10 ** 9), "fusion_layers"),
    (lambda c: c["model"].update(dim=20000), "dim"),
    (lambda c: c["schema"].update(modalities="depth"), "schema.modalities"),
    (lambda c: c["model"].update(calibration="no"), "calibration"),
])
def test_a_hostile_uploaded_config_is_refused_fast_and_leaves_nothing(tmp_path, ck, change, field):
    edit_json(ck / "config.json", change)
    dest = tmp_path / "uploads"
    dest.mkdir()
    with deadline(30), pytest.raises(CheckpointError) as err:
        load_uploaded_checkpoint(_zip(ck), dest)
    assert field in one_line(str(err.value))
    assert list(dest.iterdir()) == []  # not even an empty upload-* folder


def test_the_upload_area_is_private_per_process_and_removable(tmp_path, ck, monkeypatch):
    area = UploadArea()
    other = UploadArea()
    monkeypatch.setattr(uploads, "_UPLOADS", area)
    ckpt = load_uploaded_checkpoint(_zip(ck))  # no folder given: the private area
    root = area.root
    assert root != other.root and Path(tempfile.gettempdir()).resolve() in root.resolve().parents
    assert stat.S_IMODE(root.stat().st_mode) & 0o077 == 0  # nobody else can list or read it
    assert is_uploaded(ckpt) and not is_uploaded(load_checkpoint(ck))
    area.remove()
    other.remove()
    assert not root.exists()


def test_the_upload_area_has_a_budget(tmp_path, ck, monkeypatch):
    payload = _zip(ck)
    dest = tmp_path / "uploads"
    load_uploaded_checkpoint(payload, dest)
    used = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    monkeypatch.setattr(uploads, "MAX_UPLOAD_AREA_BYTES", used + 10)  # room, but not for a second copy
    before = snapshot(dest)
    with pytest.raises(CheckpointError) as err:
        load_uploaded_checkpoint(payload, dest)
    assert "upload space" in one_line(str(err.value))
    assert_unchanged(before, snapshot(dest))
    monkeypatch.setattr(uploads, "MAX_UPLOAD_AREA_BYTES", used)
    with pytest.raises(CheckpointError, match="upload space"):
        load_uploaded_checkpoint(payload, dest)
    assert_unchanged(before, snapshot(dest))


@pytest.mark.slow
def test_the_upload_area_is_removed_when_the_process_exits(tmp_path, ck):
    code = ("import sys; from pathlib import Path; from precal.dashboard.backend import uploads as be; "
            "c = be.load_uploaded_checkpoint(Path(sys.argv[1]).read_bytes()); print(be.upload_area().root)")
    (tmp_path / "ck.zip").write_bytes(_zip(ck))
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ck.zip")], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=300, check=True)
    root = Path(out.stdout.strip().splitlines()[-1])
    assert root.name.startswith("precal-uploads-") and not root.exists()


def test_an_uploaded_checkpoint_never_probes_its_recorded_data_path(tmp_path):
    secret = tiny_dataset(tmp_path / "secret" / "data")
    uploaded = load_checkpoint(tiny_checkpoint(tmp_path / "up" / "a", secret))
    nowhere = load_checkpoint(tiny_checkpoint(tmp_path / "up" / "b", tmp_path / "does" / "not" / "exist"))
    server = tmp_path / "server"
    server.mkdir()
    messages = []
    for ckpt in (uploaded, nowhere):
        with pytest.raises(CheckpointError) as err:
            resolve_data_dir(ckpt, None, search=[server / "sample_data"], trust_recorded=False)
        messages.append(one_line(str(err.value)))
    assert messages[0] == messages[1]  # whether the recorded folder exists is not revealed
    assert "secret" not in messages[0] and "does" not in messages[0]
    assert resolve_data_dir(uploaded, None, search=[server / "sample_data"]) == secret  # a trusted checkpoint may use it
    served = tiny_dataset(server / "sample_data" / "corpus")  # the server's own data: used
    assert resolve_data_dir(uploaded, None, search=[server / "sample_data"], trust_recorded=False) == served
    configured = tiny_dataset(tmp_path / "configured" / "corpus")
    assert resolve_data_dir(uploaded, tmp_path / "configured", search=[server / "sample_data"], trust_recorded=False) == configured


# ------------------------------------------------------------------------------------ disk caches


def _cache_file(folder: Path, i: int, mtime: float, size: int = 100) -> Path:
    path = folder / f"predictions-{i:032x}.npz"
    path.write_bytes(bytes(size))
    os.utime(path, (mtime, mtime))
    return path


def test_eviction_removes_the_least_recently_used_cache_files_only(tmp_path):
    files = [_cache_file(tmp_path, i, 1000 + i) for i in range(5)]
    mine = [tmp_path / "notes.txt", tmp_path / "predictions-mine.npz"]
    for p in mine:
        p.write_text("keep")
        os.utime(p, (1, 1))
    disk_cache.mark_used(files[0])  # a hit: now the most recently used
    removed = disk_cache.evict(tmp_path, disk_cache.PREDICTIONS, max_files=3)
    assert sorted(removed) == sorted(files[1:3])
    assert all(p.exists() for p in [files[0], files[3], files[4], *mine])
    removed = disk_cache.evict(tmp_path, disk_cache.PREDICTIONS, max_bytes=150)
    assert [p.exists() for p in (files[0], files[3], files[4])] == [True, False, False]


def test_the_prediction_cache_is_capped_least_recently_used_first(tmp_path, monkeypatch):
    data_dir = tiny_dataset(tmp_path / "data")
    ckpt = load_checkpoint(tiny_checkpoint(tmp_path / "ck", data_dir))
    batch = dataset_for(ckpt, load_dataset(data_dir), "test").full_batch()
    view = ModelView(CALIBRATED, ckpt, True, "calibrated")
    cache = tmp_path / "cache"
    monkeypatch.setattr(disk_cache, "MAX_CACHE_FILES", 2)

    def predict_new(key: str, mtime: float = 0.0) -> Path:
        before = set(cache.glob("*")) if cache.exists() else set()
        cached_predict(view, batch, {"data": key}, cache)
        (new,) = set(cache.glob("*")) - before
        if mtime:
            os.utime(new, (mtime, mtime))
        return new

    a, b = predict_new("a", 100.0), predict_new("b", 200.0)
    hit = cached_predict(view, batch, {"data": "a"}, cache)  # a hit: a becomes the most recently used
    c = predict_new("c")
    assert set(cache.iterdir()) == {a, c}  # b, the least recently used, went
    assert np.array_equal(hit.logits, predict_view(view, batch).logits)


# ------------------------------------------------------------------------------ through the app


def test_the_app_shows_a_corrupt_or_hostile_upload_once_as_one_line(tmp_path, ck, monkeypatch):
    pytest.importorskip("streamlit.testing.v1")
    from streamlit.testing.v1 import AppTest

    from tests.dashboard.test_app import APP, TIMEOUT, _env, _restore

    area = UploadArea()
    monkeypatch.setattr(uploads, "_UPLOADS", area)
    unpacked = []
    extract = uploads.extract_checkpoint_zip
    monkeypatch.setattr(uploads, "extract_checkpoint_zip", lambda *a, **k: unpacked.append(1) or extract(*a, **k))
    corrupt = CORRUPTIONS["deflate stream"](_zip(ck), f"{ck.name}/config.json")
    edit_json(ck / "config.json", lambda c: c["model"].update(fusion_layers=10 ** 9))
    hostile = _zip(ck)
    old = _env([ck.parent / "nothing_here"])
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        for name, payload, expected in (("corrupt.zip", corrupt, "cannot be unpacked"),
                                        ("hostile.zip", hostile, "fusion_layers")):
            at.file_uploader[0].set_value((name, payload, "application/zip")).run()
            assert not at.exception, [e.value for e in at.exception]
            refused = [e.value for e in at.error if "upload refused" in e.value]
            assert len(refused) == 1 and expected in refused[0] and "\n" not in refused[0]
            tries = len(unpacked)
            assert tries >= 1
            at.run()  # a rerun shows the same answer without unpacking again
            assert not at.exception and len(unpacked) == tries
            assert [e.value for e in at.error if "upload refused" in e.value] == refused
            assert list(area.root.iterdir()) == []
    finally:
        _restore(old)
        area.remove()
