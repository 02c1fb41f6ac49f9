"""Checkpoints uploaded as zip archives: unpacked safely into a private folder of this server
process, then loaded like any other (nothing in them is executed or unpickled).
"""

from __future__ import annotations

import atexit
import io
import lzma
import re
import shutil
import stat
import struct
import tempfile
import threading
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import List, Optional, Tuple

from precal.checkpoint import CONFIG_FILE, WEIGHTS_FILE, Checkpoint, CheckpointError, load_checkpoint
from precal.dashboard.settings import MAX_UPLOAD_BYTES
from precal.errors import error_line

MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
"""What one upload may expand to (its declared sizes, and what is actually written)."""


MAX_UPLOAD_FILES = 32


MAX_UPLOAD_AREA_BYTES = 1024 * 1024 * 1024
"""What all uploads of one server process may occupy together (they are kept while it runs)."""


UPLOADED_FILES = re.compile(r"^(config\.json|model\.safetensors|metrics\.json|history\.json"
                            r"|eval_[A-Za-z0-9_+\-]+\.json)$")
"""The only files of an uploaded archive that are unpacked: a checkpoint's own (nothing else is read)."""


class UploadArea:
    """A private temporary folder for one server process's uploads, removed when it exits.

    Why not one fixed folder under the system temp dir: that was shared by every server and user
    of the machine, and kept every upload forever. This one is created with ``tempfile.mkdtemp``
    (readable by its owner only) on the first upload, and an ``atexit`` hook removes it."""

    def __init__(self, prefix: str = "precal-uploads-") -> None:
        self._prefix = prefix
        self._root: Optional[Path] = None
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        with self._lock:
            if self._root is None or not self._root.is_dir():
                self._root = Path(tempfile.mkdtemp(prefix=self._prefix))
                atexit.register(self.remove)
            return self._root

    def contains(self, path: Path | str) -> bool:
        """Whether ``path`` lies in this area (an uploaded checkpoint)."""
        if self._root is None:
            return False
        base = self._root.resolve()
        return base in Path(path).resolve().parents

    def remove(self) -> None:
        with self._lock:
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None


_UPLOADS = UploadArea()


def upload_area() -> UploadArea:
    """This server process's upload area (see :class:`UploadArea`)."""
    return _UPLOADS


def is_uploaded(ckpt: Checkpoint) -> bool:
    return _UPLOADS.contains(ckpt.path)


class UploadTooLarge(CheckpointError):
    """An archive that unpacks to more than it may."""


_UNPACK_ERRORS: Tuple[type, ...] = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, RuntimeError, EOFError,
                                    ValueError, NotImplementedError, zlib.error, lzma.LZMAError, struct.error)
"""What a corrupt archive raises while it is read (a broken deflate stream: zlib.error; LZMA:
LZMAError; bzip2: OSError; an unknown compression method: NotImplementedError)."""


def extract_checkpoint_zip(payload: bytes, dest_root: Path | str, max_bytes: int = MAX_UPLOAD_BYTES,
                           max_uncompressed: int = MAX_UNCOMPRESSED_BYTES) -> Path:
    """Safely unpack a zipped checkpoint folder into a fresh folder under ``dest_root``; return the
    folder holding ``config.json`` and ``model.safetensors``.

    Refused with a one-line :class:`CheckpointError`: archives over ``max_bytes`` (or over
    ``max_uncompressed`` once unpacked: zip bombs), non-zip data, corrupt compressed streams,
    absolute paths, ``..`` components, symlinks and other special files, too many entries, and
    archives without a checkpoint. Only the checkpoint's own files (:data:`UPLOADED_FILES`) are
    written; a refused archive leaves nothing behind. Nothing is executed or unpickled; the caller
    then loads the folder with ``load_checkpoint``.
    """
    if len(payload) > max_bytes:
        raise CheckpointError(f"the upload is {len(payload) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
    except _UNPACK_ERRORS as exc:
        raise CheckpointError("the upload is not a zip archive (zip the checkpoint folder)") from exc
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if len(infos) > MAX_UPLOAD_FILES:
            raise CheckpointError(f"the archive holds {len(infos)} files; a checkpoint has only a few")
        if sum(i.file_size for i in infos) > max_uncompressed:
            raise UploadTooLarge(f"the archive unpacks to more than {max_uncompressed / 1e6:.0f} MB")
        safe: List[Tuple[zipfile.ZipInfo, PurePosixPath]] = []
        for info in infos:
            name = info.filename.replace("\\", "/")
            path = PurePosixPath(name)
            if name.startswith("/") or path.is_absolute() or re.match(r"^[A-Za-z]:", name) \
                    or any(part in ("..", "") for part in path.parts):
                raise CheckpointError(f"the archive has an unsafe path {info.filename!r}")
            mode = (info.external_attr >> 16) & 0o170000
            if mode and not stat.S_ISREG(mode):
                raise CheckpointError(f"the archive entry {info.filename!r} is not a regular file")
            if path.parts[0] in ("__MACOSX",) or path.name.startswith("._"):
                continue
            safe.append((info, path))
        configs = [p for _, p in safe if p.name == CONFIG_FILE]
        if not configs:
            raise CheckpointError(f"the archive has no {CONFIG_FILE}: zip a checkpoint folder "
                                  f"({CONFIG_FILE} + {WEIGHTS_FILE})")
        top = min(configs, key=lambda p: len(p.parts)).parent
        wanted = [(i, p) for i, p in safe if p.parent == top and UPLOADED_FILES.match(p.name)]
        dest_root = Path(dest_root)
        dest_root.mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(prefix="upload-", dir=dest_root))
        base = dest.resolve()
        written = 0
        try:
            for info, path in wanted:
                target = (dest / Path(*path.parts)).resolve()
                if base not in target.parents:
                    raise CheckpointError(f"the archive has an unsafe path {info.filename!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as out:
                    while True:
                        chunk = src.read(1 << 20)
                        if not chunk:
                            break
                        written += len(chunk)
                        if written > max_uncompressed:
                            raise UploadTooLarge(f"the archive unpacks to more than {max_uncompressed / 1e6:.0f} MB")
                        out.write(chunk)
        except CheckpointError:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        except _UNPACK_ERRORS as exc:
            shutil.rmtree(dest, ignore_errors=True)
            raise CheckpointError(f"the archive cannot be unpacked (corrupt?): {info.filename}: "
                                  f"{error_line(exc)}") from exc
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    folder = dest / Path(*top.parts) if top.parts else dest
    return folder


def load_uploaded_checkpoint(payload: bytes, dest_root: Optional[Path | str] = None,
                             max_bytes: int = MAX_UPLOAD_BYTES) -> Checkpoint:
    """Unpack and load an uploaded checkpoint into ``dest_root`` (default: this process's private
    :func:`upload_area`); a refused upload leaves nothing behind, and all uploads together stay
    within :data:`MAX_UPLOAD_AREA_BYTES`."""
    root = Path(dest_root) if dest_root is not None else upload_area().root
    used = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink()) if root.is_dir() else 0
    left = MAX_UPLOAD_AREA_BYTES - used
    full = CheckpointError(f"the dashboard's upload space ({MAX_UPLOAD_AREA_BYTES / 1e6:.0f} MB for all uploads) "
                           f"has {max(left, 0) / 1e6:.1f} MB left; restart the dashboard to clear it")
    if left <= 0:
        raise full
    try:
        folder = extract_checkpoint_zip(payload, root, max_bytes=max_bytes,
                                        max_uncompressed=min(MAX_UNCOMPRESSED_BYTES, left))
    except UploadTooLarge:
        if left < MAX_UNCOMPRESSED_BYTES:
            raise full from None
        raise
    try:
        return load_checkpoint(folder)
    except BaseException:
        shutil.rmtree(root / folder.relative_to(root).parts[0], ignore_errors=True)  # the whole upload-* folder
        raise
