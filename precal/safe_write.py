"""Writes that cannot destroy what precal did not write.

Why: ``precal train --out DIR`` used to delete DIR whatever it held (a user's files, the working
directory, the data set it was training on). Now every output is written into a fresh temporary
sibling and renamed into place, and an existing target is replaced only when

- it is itself a precal checkpoint or data set, recognised by its own files (``config.json`` with
  format ``precal-checkpoint``; ``dataset.json`` with format ``precal-dataset``),
- it holds nothing else than the files precal writes there, and
- the caller asked for it (``overwrite=True``, ``--overwrite`` on the command line).

An output equal to or holding the working directory or an input folder is refused outright, as is
an output that is a symbolic link. Every refusal is one :class:`UnsafeWriteError` line that names
the folder and what to do instead.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, List, Optional

CHECKPOINT = "checkpoint"
DATASET = "data set"

_MARKERS = {CHECKPOINT: ("config.json", "precal-checkpoint"), DATASET: ("dataset.json", "precal-dataset")}
_OWNED_NAMES = {CHECKPOINT: {"config.json", "model.safetensors", "metrics.json", "history.json"},
                DATASET: {"dataset.json", "data.npz"}}
_EVAL_FILE = re.compile(r"^eval_[^/\\]+\.json$")
TABLE_COLUMNS = {"checkpoint", "modality", "corruption"}
"""Columns every table ``precal robustness`` writes starts with (the sweep and its summary)."""
_MARKER_BYTES = 8 * 1024 * 1024


class UnsafeWriteError(ValueError):
    """An output that would replace or delete something precal did not write."""


def is_precal_folder(path: Path, kind: str) -> bool:
    """Whether ``path`` holds precal's own marker file for ``kind`` (a checkpoint or a data set)."""
    name, fmt = _MARKERS[kind]
    marker = path / name
    try:
        if marker.is_symlink() or not marker.is_file() or marker.stat().st_size > _MARKER_BYTES:
            return False
        return json.loads(marker.read_text()).get("format") == fmt
    except (OSError, ValueError, AttributeError, RecursionError):
        return False


def is_precal_table(path: Path) -> bool:
    """Whether ``path`` is a table written by ``precal robustness`` (recognised by its columns)."""
    try:
        if path.is_symlink() or not path.is_file():
            return False
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            columns = set(pq.read_schema(path).names)
        else:
            with open(path, "rb") as fh:
                first = fh.readline(64 * 1024).decode("utf-8").strip()
            columns = set(first.split(","))
    except Exception:  # noqa: BLE001 (anything unreadable is simply not recognised as ours)
        return False
    return TABLE_COLUMNS <= columns and bool({"severity", "relative_robustness"} & columns)


def foreign_entries(path: Path, kind: str) -> List[str]:
    """Names in a precal folder that precal does not write there (sorted)."""
    out = []
    for entry in sorted(path.iterdir()):
        if not _owned(entry, kind):
            out.append(entry.name)
    return out


def _owned(entry: Path, kind: str) -> bool:
    if entry.is_symlink() or not entry.is_file():
        return False
    if entry.name in _OWNED_NAMES[kind]:
        return True
    if kind == CHECKPOINT:
        return bool(_EVAL_FILE.match(entry.name)) or (entry.suffix in (".csv", ".parquet") and is_precal_table(entry))
    return False


def _inside_or_equal(path: Path, other: Path) -> bool:
    return path == other or path in other.parents


def check_output_folder(target: Path | str, kind: str, overwrite: bool = False,
                        inputs: Iterable[Path | str] = (), option: str = "") -> Path:
    """Refuse an output folder whose replacement could destroy something precal did not write.

    Run before any work starts (so a 40-epoch run does not end in a refusal) and again just before
    the rename (the folder may have changed meanwhile). ``option`` is how the user named the
    folder (``--out``, ``OUT``), for the message. Returns ``target`` as a Path."""
    target = Path(target)
    label = f"{option} {target}" if option else f"output folder {target}"
    where = target.expanduser().resolve()
    cwd = Path.cwd().resolve()
    if _inside_or_equal(where, cwd):
        raise UnsafeWriteError(f"{label} is the working directory or holds it; precal writes a "
                               f"{kind} into a folder of its own: name a new folder")
    for given in inputs:
        source = Path(given).expanduser().resolve()
        if _inside_or_equal(where, source):
            raise UnsafeWriteError(f"{label} is or holds the input folder {given}; writing there "
                                   "would replace the input: name a new folder")
    if target.is_symlink():
        raise UnsafeWriteError(f"{label} is a symbolic link; precal does not write through links: "
                               "name a real folder")
    if not target.exists():
        return target
    if not target.is_dir():
        raise UnsafeWriteError(f"{label} exists and is a file, not a precal {kind}: name a new folder")
    if not any(target.iterdir()):
        return target
    if not is_precal_folder(target, kind):
        raise UnsafeWriteError(f"{label} is not empty and is not a precal {kind}; precal will not "
                               "replace it: name a new folder")
    foreign = foreign_entries(target, kind)
    if foreign:
        raise UnsafeWriteError(f"{label} holds {foreign[0]!r}, which precal did not write there; "
                               f"move it away or name a new folder")
    if not overwrite:
        raise UnsafeWriteError(f"{label} already holds a precal {kind}; pass --overwrite "
                               "(overwrite=True) to replace it")
    return target


def staging_folder(target: Path) -> Path:
    """A fresh, hidden temporary sibling of ``target`` to write into before :func:`publish_folder`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))


def publish_folder(staged: Path, target: Path, kind: str, overwrite: bool = False,
                   inputs: Iterable[Path | str] = (), option: str = "") -> Path:
    """Move the written ``staged`` folder to ``target``; an existing target (checked again) is moved
    aside first and only its precal-owned files are deleted. On failure ``staged`` is removed and
    the old target is back in place."""
    try:
        check_output_folder(target, kind, overwrite, inputs, option)
        aside: Optional[Path] = None
        if target.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, aside / target.name)
        try:
            os.replace(staged, target)
        except BaseException:
            if aside is not None:
                os.replace(aside / target.name, target)
                aside.rmdir()
            raise
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    if aside is not None:
        _remove_owned(aside / target.name, kind)
        _rmdir_quietly(aside)
    return target


def write_folder(target: Path | str, kind: str, write: Callable[[Path], None], overwrite: bool = False,
                 inputs: Iterable[Path | str] = (), option: str = "") -> Path:
    """Check ``target``, let ``write`` fill a staging folder, then publish it (see module docstring)."""
    target = check_output_folder(target, kind, overwrite, inputs, option)
    staged = staging_folder(target)
    try:
        write(staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return publish_folder(staged, target, kind, overwrite, inputs, option)


def write_folder_with(target: Path | str, kind: str, produce: Callable[[Path], Path], overwrite: bool = False,
                      inputs: Iterable[Path | str] = (), option: str = "") -> Path:
    """:func:`write_folder` for writers that create their output folder themselves (the converters,
    the synthetic generator): ``produce(path)`` writes a new folder at a path inside a staging
    folder, which is then published to ``target``."""
    target = check_output_folder(target, kind, overwrite, inputs, option)
    staging = staging_folder(target)
    try:
        produced = Path(produce(staging / target.name))
        publish_folder(produced, target, kind, overwrite, inputs, option)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # empty after a success
    return target


def _remove_owned(folder: Path, kind: str) -> None:
    """Delete the files precal wrote in a replaced folder; anything else (added meanwhile) stays."""
    for entry in folder.iterdir():
        if _owned(entry, kind):
            entry.unlink()
    _rmdir_quietly(folder)


def _rmdir_quietly(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def check_output_file(target: Path | str, overwrite: bool = False,
                      recognise: Callable[[Path], bool] = is_precal_table, what: str = "table",
                      option: str = "--out") -> Path:
    """Refuse an output file that is a folder, a link, something precal did not write, or precal's
    own output without ``overwrite``."""
    target = Path(target)
    if target.is_symlink():
        raise UnsafeWriteError(f"{option} {target} is a symbolic link; precal does not write through links")
    if target.is_dir():
        raise UnsafeWriteError(f"{option} {target} is a folder; name a file for the {what} (e.g. "
                               f"{target / 'robustness.csv'})")
    if target.exists():
        if not recognise(target):
            raise UnsafeWriteError(f"{option} {target} exists and is not a {what} precal wrote; precal will not "
                                   "replace it: name a new file")
        if not overwrite:
            raise UnsafeWriteError(f"{option} {target} already exists; pass --overwrite to replace it")
    return target


def write_file(target: Path, write: Callable[[Path], None]) -> Path:
    """Write through a temporary sibling and rename: a crash leaves the old file or the new one,
    and an existing link is replaced rather than written through."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"  # created by ``write``, usual mode
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
