"""The start page and the sidebar as a new session first sees them, stored so that a server still
importing torch can draw them at once.

Why: the start page needs the models, and importing torch alone takes about 1.2 s on the 2-core
reference machine, longer than the browser needs to load the page; the first complete page came
after 3.3-4.2 s. What that page shows is a handful of strings (pair labels, headline figures, one
sentence about an example), so the start page stores them after a full run at the default choices
and a session opened while the server's head start is still running
(:mod:`precal.dashboard.head_start`) is drawn from them, by the same drawing code.

A stored first paint is used only for the very inputs it was made from: the app's and precal's
code, the app's arguments, every file of the checkpoint folders it opens (weights, configs, stored
sweeps) and of the data folder it showed. It holds no numbers a page computes from, and the first
interaction runs the page in full. Standard library only: it is read before torch is imported.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, List, Optional, Tuple

import precal
from precal.dashboard.settings import ROOT, DashboardArgs, cache_folder
from precal.limits import read_json
from precal.safe_write import write_file

FORMAT = 1
MAX_BYTES = 1_000_000
"""A first paint is a few kilobytes; a larger file is not one."""
KEEP = 8
"""Stored first paints kept (one per set of inputs: other arguments, other checkpoints)."""
MAX_STAMPED_FILES = 20_000
"""Beyond this many files under the checkpoint paths, no first paint: stamping them would cost more
than it saves."""
_NAME = re.compile(r"[0-9a-f]{32}\.json")
"""Names of the files this module writes (matched whole: ``fullmatch``)."""

DASHBOARD_DIR = Path(__file__).resolve().parents[1]


DELTA_COLORS = ("normal", "inverse", "off")
DELTA_ARROWS = ("auto", "up", "down", "off")
"""What ``st.metric`` accepts for ``delta_color`` and ``delta_arrow`` (a stored value is checked)."""


@dataclass(frozen=True)
class MetricTile:
    """One headline figure of the start page, as ``st.metric`` draws it."""

    label: str
    value: str
    delta: str
    delta_color: str
    delta_arrow: str
    help: str


@dataclass(frozen=True)
class StartContent:
    """Everything the start page writes, already in words.

    ``tiles`` empty: the pair has no stored sweep with both models. ``problem``: the data did not
    load (shown as an error); ``needs_calibrated``: no gated model to prepare an example on;
    ``button``: the label of the button into the lab ("" when there is none)."""

    modalities: Tuple[str, ...]
    showing: str
    tiles: Tuple[MetricTile, ...]
    source: str
    example: str
    problem: str
    needs_calibrated: bool
    button: str


@dataclass(frozen=True)
class SidebarShown:
    """The sidebar's choices as drawn for a pair at its defaults: options, labels and the choice.

    ``references`` has one entry when the sidebar draws no choice of reference; ``trained``: the
    splits the models trained on (a caption warns when one is chosen); ``files``: the lines of the
    files box; ``problems`` and ``notes``: the lines drawn above the page (checkpoints that did not
    load, remarks about an own model)."""

    pair_keys: Tuple[str, ...]
    pair_labels: Tuple[str, ...]
    pair: str
    references: Tuple[str, ...]
    reference: str
    splits: Tuple[str, ...]
    split_labels: Tuple[str, ...]
    split: str
    trained: Tuple[str, ...]
    files: Tuple[str, ...]
    problems: Tuple[str, ...]
    notes: Tuple[str, ...]


@dataclass(frozen=True)
class FirstPaint:
    """A new session's sidebar and start page; ``data_path``: the data folder they showed ("" for none)."""

    sidebar: SidebarShown
    start: StartContent
    data_path: str


# ---- what a first paint depends on ---------------------------------------------------------------


def _tree_stamp(path: Path, depth: int, budget: List[int]) -> List[Any]:
    """(relative name, size, modification time) of every file under ``path``, ``depth`` levels
    down (depth 1: the files in it); hidden entries (temporary files of a write in progress) are
    left out. Every entry looked at counts against ``budget``."""
    out: List[Any] = []
    try:
        if path.is_file():
            st = path.stat()
            return [[path.name, st.st_size, st.st_mtime_ns]]
        entries = sorted(path.iterdir()) if path.is_dir() else []
    except OSError:
        return [["?", 0, 0]]
    for entry in entries:
        if entry.name.startswith("."):
            continue
        budget[0] -= 1
        if budget[0] < 0:
            raise OverflowError("too many files to stamp")
        try:
            if entry.is_dir():
                if depth > 1:
                    out += [[f"{entry.name}/{name}", size, mtime] for name, size, mtime in
                            _tree_stamp(entry, depth - 1, budget)]
            else:
                st = entry.stat()
                out.append([entry.name, st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([entry.name, 0, 0])
    return out


def _names(path: Path) -> List[str]:
    """The names in a folder (sub-folders included), or [] when it is not one."""
    try:
        return sorted(p.name for p in path.iterdir())[:MAX_STAMPED_FILES] if path.is_dir() else []
    except OSError:
        return ["?"]


@functools.lru_cache(maxsize=1)
def _code_stamp() -> str:
    """The app's and the library's source files, once per process: a code change makes every stored
    first paint stale (the server does not reload its code while it runs)."""
    h = hashlib.sha256(precal.__version__.encode())
    for base in sorted({Path(precal.__file__).resolve().parent, DASHBOARD_DIR}):
        for py in sorted(base.rglob("*.py")):
            try:
                st = py.stat()
            except OSError:
                continue
            h.update(f"{py.relative_to(base)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def inputs_key(args: DashboardArgs) -> Optional[str]:
    """The key of a first paint for these arguments and these files, or None where there is none
    (your own model: its code runs only when a page runs in full)."""
    if args.model or args.weights:
        return None
    paths = [Path(p).expanduser().resolve() for p in args.checkpoints] or [ROOT / "checkpoints"]
    budget = [MAX_STAMPED_FILES]
    try:
        stamps = [[str(p), _tree_stamp(p, 2, budget)] for p in paths]
        # a stored sweep may also sit in the folder holding a checkpoint (the headline figures)
        stamps += [[str(p.parent), _tree_stamp(p.parent, 1, budget)] for p in paths if (p / "config.json").is_file()]
    except OverflowError:
        return None
    # where the data is looked for: a folder of data sets (--data) or sample_data/ may gain a better match
    looked_in = [Path(args.data).expanduser().resolve()] if args.data else []
    looked_in.append(ROOT / "sample_data")
    parts = {"format": FORMAT, "code": _code_stamp(), "data": args.data, "checkpoints": stamps,
             "data folders": [[str(p), _names(p)] for p in looked_in]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _data_stamp(data_path: str) -> List[Any]:
    return _tree_stamp(Path(data_path), 1, [MAX_STAMPED_FILES]) if data_path else []


# ---- stored -------------------------------------------------------------------------------------


def save(paint: FirstPaint, args: DashboardArgs, folder: Optional[Path] = None) -> Optional[Path]:
    """Store ``paint`` for these inputs (unchanged content is not rewritten); keeps the
    :data:`KEEP` newest. Returns the file, or None when these inputs have no first paint."""
    key = inputs_key(args)
    if key is None:
        return None
    folder = folder or cache_folder("first_paint")
    target = folder / f"{key}.json"
    try:
        record = {"format": FORMAT, "key": key, "data_stamp": _data_stamp(paint.data_path), "paint": asdict(paint)}
        text = json.dumps(record, sort_keys=True)
    except OverflowError:
        return None
    try:
        if target.is_file() and target.stat().st_size == len(text.encode()) and target.read_text() == text:
            return target
    except (OSError, UnicodeDecodeError):
        pass
    write_file(target, lambda tmp: tmp.write_text(text))
    _prune(folder)
    return target


def _prune(folder: Path) -> None:
    """Only files named as this module names them (it wrote them) are removed."""
    mine = []
    for p in folder.iterdir():
        try:
            if _NAME.fullmatch(p.name) and p.is_file():
                mine.append((p.stat().st_mtime_ns, p))
        except OSError:
            continue
    for _, p in sorted(mine, reverse=True)[KEEP:]:
        p.unlink(missing_ok=True)


def load(args: DashboardArgs, folder: Optional[Path] = None) -> Optional[FirstPaint]:
    """The stored first paint for these inputs, if there is one and its data folder is unchanged;
    None otherwise (also for any file that is not a first paint, or arguments that cannot be
    stamped: the full run then says what is wrong)."""
    try:
        key = inputs_key(args)
    except (OSError, ValueError, RuntimeError):
        return None
    if key is None:
        return None
    target = (folder or cache_folder("first_paint")) / f"{key}.json"
    if not target.is_file():
        return None
    try:
        record = read_json(target, "first paint", max_bytes=MAX_BYTES)
        if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("key") != key:
            return None
        paint = paint_from_json(record.get("paint"))
        if record.get("data_stamp") != _data_stamp(paint.data_path):
            return None
        return paint
    except (ValueError, TypeError, KeyError, OverflowError):
        return None


# ---- checked reading ----------------------------------------------------------------------------


def _value(raw: Any, kind: str) -> Any:
    if kind == "str" and isinstance(raw, str):
        return raw
    if kind == "bool" and isinstance(raw, bool):
        return raw
    if kind == "Tuple[str, ...]" and isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        return tuple(raw)
    if kind == "Tuple[MetricTile, ...]" and isinstance(raw, list):
        return tuple(_record(MetricTile, x) for x in raw)
    raise ValueError(f"not a {kind}: {type(raw).__name__}")


def _record(cls, raw: Any):
    if not isinstance(raw, dict):
        raise ValueError(f"{cls.__name__} must be an object")
    return cls(**{f.name: _value(raw[f.name], str(f.type)) for f in fields(cls)})


def paint_from_json(raw: Any) -> FirstPaint:
    """A :class:`FirstPaint` from its JSON form, every field checked (ValueError otherwise)."""
    if not isinstance(raw, dict):
        raise ValueError("a first paint must be an object")
    paint = FirstPaint(_record(SidebarShown, raw["sidebar"]), _record(StartContent, raw["start"]),
                       _value(raw["data_path"], "str"))
    if any(t.delta_color not in DELTA_COLORS or t.delta_arrow not in DELTA_ARROWS for t in paint.start.tiles):
        raise ValueError("a metric's delta style is not one st.metric draws")
    side = paint.sidebar
    if (len(side.pair_keys) != len(side.pair_labels) or side.pair not in side.pair_keys
            or len(side.splits) != len(side.split_labels) or (side.splits and side.split not in side.splits)
            or (side.reference not in side.references and (side.references or side.reference))):
        raise ValueError("inconsistent choices")
    return paint
