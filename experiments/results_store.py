"""The compact store of experiment results: a few tables per experiment instead of a folder per run.

Why: the report generators need every run's config, metrics, training history, test predictions and
sweep tables, and the drivers used to keep them as one folder per run (``STORE/<run>/metrics.json``,
...): thousands of small indented JSON files. A store keeps the same content in one folder as

- ``runs.jsonl``: one line per run, ``{"run", "config", "metrics"}`` (its config.json and
  metrics.json as the run wrote them);
- ``history.jsonl``: one line per run and epoch, ``{"run", ...}`` (the epoch's record of history.json);
- ``predictions.csv``, ``swaps.csv``, ``sweeps.csv``: the run's test_predictions.csv, swap.csv (its
  swap sweep) and sweep.csv (a robustness sweep; in the ablation's layout a loose ``<run>.csv``), one
  table each with a leading ``run`` column and the union of the runs' columns.

Lines and rows are sorted by run and otherwise kept in the order the run wrote them; JSON is written
compactly with Python's shortest round-trip floats and the run's own key order, CSV cells as the text
the run wrote. Folding is therefore lossless but for two things no generator reads: a run's CSV
columns come back in the table's order, and a column the run left entirely empty is not told apart
from a column it did not have. Folding again changes nothing.

A run folder not folded yet (``STORE/<run>/`` holding any of the files above) is read as well and
wins over the tables part by part, as copying files into the folder did before the store. So a
driver may write a folder and fold it later, and ``compact`` merges new runs into the tables:

    python -m experiments.results_store compact STORE [--add RUN_FOLDER ...]

folds the run folders inside STORE (and the given ones from elsewhere, which are left in place),
checks that the tables read back to what it folded, then removes the folders it folded from STORE.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import pandas as pd

RUNS_TABLE, HISTORY_TABLE = "runs.jsonl", "history.jsonl"
JSON_FILES = {"config.json": "config", "metrics.json": "metrics", "history.json": "history"}
"""A run folder's JSON files -> the part of the run they hold."""
CSV_FILES = {"test_predictions.csv": "predictions", "swap.csv": "swap", "sweep.csv": "sweep"}
"""A run folder's CSV files -> the part of the run they hold."""
RUN_FILES = {**JSON_FILES, **CSV_FILES}
CSV_TABLES = {"predictions": "predictions.csv", "swap": "swaps.csv", "sweep": "sweeps.csv"}
"""A CSV part -> the store's table holding it for every run."""
LOOSE_SWEEPS = "*_seed*.csv"
"""Per-run sweep tables lying in the store itself (``<run>.csv``, as the ablation report wrote them)."""
RUN = "run"

Rows = Tuple[Tuple[str, ...], Tuple[Tuple[str, ...], ...]]
"""A CSV part as text: its header and its rows."""
Parts = Dict[str, Any]
"""A run's parts: config, metrics (JSON values), history (a list of epoch records), CSV parts (Rows)."""


class StoreError(ValueError):
    """A malformed store table or run file; the message is one line naming the file (and line)."""


@dataclass(frozen=True, eq=False)
class Run:
    """One run as the generators read it: what its folder held, the CSV parts as data frames."""

    name: str
    config: Optional[dict] = None
    metrics: Optional[dict] = None
    history: Optional[list] = None
    predictions: Optional[pd.DataFrame] = None
    swap: Optional[pd.DataFrame] = None
    sweep: Optional[pd.DataFrame] = None


def load(store: Path) -> List[Run]:
    """Every run of a store (its tables merged with run folders not folded yet), sorted by name."""
    merged = _merge(_read_tables(store), _read_folders(_pending(store)))
    return [_run(name, parts) for name, parts in sorted(merged.items())]


def compact(store: Path, add: Sequence[Path] = ()) -> List[str]:
    """Fold the run folders in ``store`` and the folders ``add`` into its tables; returns the runs
    folded. The folders inside ``store`` are removed once the tables read back to what was folded;
    the folders in ``add`` are left where they are (drivers write there, so a half-written run is
    never in the store). Compactions of one store wait for each other."""
    store.mkdir(parents=True, exist_ok=True)
    with _locked(store):
        pending = _pending(store)
        _refuse_unknown_files(pending)
        sources = pending + [_source(Path(p)) for p in add]
        if not sources:
            return []
        folded = _read_folders(sources)
        headers = {part: _table_header(store / table) for part, table in CSV_TABLES.items()}
        merged = _merge(_read_tables(store), folded)
        _write_tables(store, merged, headers)
        reread = _read_tables(store)
        if _canonical(reread) != _canonical(merged):
            raise StoreError(f"{store}: the tables written do not read back to the runs folded; nothing removed")
        for _, path in pending:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    return sorted(folded)


# -- reading -------------------------------------------------------------------------------------------


def _read_tables(store: Path) -> Dict[str, Parts]:
    runs: Dict[str, Parts] = {}
    for line_no, path, row in _json_lines(store / RUNS_TABLE):
        name = _run_name(row, path, line_no)
        if name in runs:
            raise StoreError(f"{path}:{line_no}: run {name!r} appears twice")
        unknown = set(row) - {RUN, "config", "metrics"}
        if unknown:
            raise StoreError(f"{path}:{line_no}: unknown field {sorted(unknown)[0]!r} (run, config, metrics)")
        runs[name] = {k: v for k, v in row.items() if k != RUN}
    for line_no, path, row in _json_lines(store / HISTORY_TABLE):
        name = _run_name(row, path, line_no)
        runs.setdefault(name, {}).setdefault("history", []).append({k: v for k, v in row.items() if k != RUN})
    for part, table in CSV_TABLES.items():
        path = store / table
        if not path.is_file():
            continue
        header, rows = _read_csv(path)
        if header[:1] != (RUN,):
            raise StoreError(f"{path}:1: the first column must be {RUN!r}")
        grouped: Dict[str, List[Tuple[str, ...]]] = {}
        for line_no, row in rows:
            if not row[0]:
                raise StoreError(f"{path}:{line_no}: no run name")
            grouped.setdefault(row[0], []).append(row[1:])
        for name, run_rows in grouped.items():
            runs.setdefault(name, {})[part] = (header[1:], tuple(run_rows))
    return runs


def _json_lines(path: Path) -> Iterator[Tuple[int, Path, dict]]:
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as lines:
        for line_no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise StoreError(f"{path}:{line_no}: not JSON ({error.msg}, column {error.colno})") from None
            if not isinstance(row, dict):
                raise StoreError(f"{path}:{line_no}: a line must be a JSON object")
            yield line_no, path, row


def _run_name(row: dict, path: Path, line_no: int) -> str:
    name = row.get(RUN)
    if not isinstance(name, str) or not name:
        raise StoreError(f"{path}:{line_no}: no {RUN!r} name")
    return name


def _read_csv(path: Path) -> Tuple[Tuple[str, ...], List[Tuple[int, Tuple[str, ...]]]]:
    """Header and (line number, row) of a CSV file, every row as wide as the header."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        try:
            header = tuple(next(reader))
        except StopIteration:
            raise StoreError(f"{path}:1: empty, no header") from None
        except csv.Error as error:
            raise StoreError(f"{path}:{reader.line_num}: {error}") from None
        rows = []
        try:
            for row in reader:
                if len(row) != len(header):
                    raise StoreError(f"{path}:{reader.line_num}: {len(row)} cells, the header has {len(header)}")
                rows.append((reader.line_num, tuple(row)))
        except csv.Error as error:
            raise StoreError(f"{path}:{reader.line_num}: {error}") from None
    return header, rows


def _pending(store: Path) -> List[Tuple[str, Path]]:
    """(run, path) of what lies in the store unfolded: run folders and loose sweep tables."""
    if not store.is_dir():
        return []
    found = [(p.name, p) for p in sorted(store.iterdir()) if p.is_dir() and not p.name.startswith(".")
             and any((p / f).is_file() for f in RUN_FILES)]
    found += [(p.stem, p) for p in sorted(store.glob(LOOSE_SWEEPS)) if p.is_file()]
    return found


def _source(path: Path) -> Tuple[str, Path]:
    if not path.is_dir():
        raise StoreError(f"{path}: not a run folder")
    return path.name, path


def _refuse_unknown_files(pending: Sequence[Tuple[str, Path]]) -> None:
    """A run folder holding anything else is not folded: removing it would lose that."""
    for _, path in pending:
        if path.is_dir():
            unknown = sorted(p.name for p in path.iterdir() if p.name not in RUN_FILES)
            if unknown:
                raise StoreError(f"{path}: holds {unknown[0]!r}, which the store does not keep; move it and "
                                 "compact again")


def _read_folders(sources: Sequence[Tuple[str, Path]]) -> Dict[str, Parts]:
    runs: Dict[str, Parts] = {}
    for name, path in sources:
        files = {path.name: "sweep"} if path.is_file() else RUN_FILES
        parts: Parts = {}
        for file_name, part in files.items():
            file = path if path.is_file() else path / file_name
            if file.is_file():
                parts[part] = _read_part(file, part)
        if name in runs:
            raise StoreError(f"{path}: run {name!r} is given twice")
        runs[name] = parts
    return runs


def _read_part(path: Path, part: str) -> Any:
    if part in CSV_TABLES:
        header, rows = _read_csv(path)
        if not rows:
            raise StoreError(f"{path}:2: no rows (a store keeps rows, so an empty table would be lost)")
        return header, tuple(row for _, row in rows)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StoreError(f"{path}:{error.lineno}: not JSON ({error.msg}, column {error.colno})") from None
    if part == "history" and not (isinstance(value, list)
                                  and all(isinstance(r, dict) and RUN not in r for r in value)):
        raise StoreError(f"{path}:1: a history must be a list of epoch records without a {RUN!r} field")
    return value


def _merge(tables: Dict[str, Parts], folders: Dict[str, Parts]) -> Dict[str, Parts]:
    merged = {name: dict(parts) for name, parts in tables.items()}
    for name, parts in folders.items():
        merged.setdefault(name, {}).update(parts)
    return merged


def _run(name: str, parts: Parts) -> Run:
    frames = {part: _frame(parts[part]) for part in CSV_TABLES if part in parts}
    return Run(name, parts.get("config"), parts.get("metrics"), parts.get("history"), **frames)


def _frame(rows: Rows) -> pd.DataFrame:
    """A CSV part as pandas reads its file (columns the run left entirely empty dropped)."""
    header, kept = _trim(rows)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(kept)
    text.seek(0)
    return pd.read_csv(text)


def _trim(rows: Rows) -> Rows:
    """Drop the columns empty in every row: in a table they are other runs' columns."""
    header, body = rows
    keep = [i for i in range(len(header)) if any(row[i] for row in body)]
    return tuple(header[i] for i in keep), tuple(tuple(row[i] for i in keep) for row in body)


def _canonical(runs: Dict[str, Parts]) -> Dict[str, Dict[str, str]]:
    """Runs as comparable text: NaN equals NaN, and a CSV part is its non-empty columns by name (a
    table orders the union of the runs' columns, not each run's own)."""
    def text(part: str, value: Any) -> str:
        if part in CSV_TABLES:
            header, body = _trim(value)
            value = sorted((c, [row[i] for row in body]) for i, c in enumerate(header))
        return json.dumps(value, ensure_ascii=False)

    return {name: {part: text(part, value) for part, value in parts.items()} for name, parts in runs.items()}


# -- writing -------------------------------------------------------------------------------------------


def _write_tables(store: Path, runs: Dict[str, Parts], headers: Dict[str, Tuple[str, ...]]) -> None:
    names = sorted(runs)
    lines = []
    for name in names:
        row = {RUN: name, **{k: runs[name][k] for k in ("config", "metrics") if k in runs[name]}}
        if len(row) > 1:
            lines.append(_json_line(row))
    _replace(store / RUNS_TABLE, "".join(lines))
    _replace(store / HISTORY_TABLE, "".join(_json_line({RUN: name, **record}) for name in names
                                            for record in runs[name].get("history", [])))
    for part, table in CSV_TABLES.items():
        _replace(store / table, _csv_text(part, names, runs, headers[part]))


def _json_line(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"


def _csv_text(part: str, names: List[str], runs: Dict[str, Parts], base: Tuple[str, ...]) -> str:
    """One table of a CSV part: the existing table's columns first, new columns where they first appear."""
    columns = list(base)
    for name in names:
        if part in runs[name]:
            columns += [c for c in runs[name][part][0] if c not in columns]
    if not any(part in runs[name] for name in names):
        return ""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([RUN, *columns])
    for name in names:
        if part in runs[name]:
            header, body = runs[name][part]
            at = {c: i for i, c in enumerate(header)}
            writer.writerows([name, *(row[at[c]] if c in at else "" for c in columns)] for row in body)
    return text.getvalue()


def _table_header(path: Path) -> Tuple[str, ...]:
    if not path.is_file():
        return ()
    with path.open(newline="", encoding="utf-8") as handle:
        return tuple(next(csv.reader(handle), ()))[1:]


def _replace(path: Path, text: str) -> None:
    """Write a table in one step (a reader sees the old or the new one); no rows, no table."""
    if not text:
        path.unlink(missing_ok=True)
        return
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(store: Path) -> Iterator[None]:
    """An exclusive lock on the store folder: two drivers folding at once would lose one's runs."""
    handle = os.open(store, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.results_store",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fold = commands.add_parser("compact", help="fold run folders into the store's tables")
    fold.add_argument("store", type=Path, help="the experiment folder, e.g. results/runs")
    fold.add_argument("--add", type=Path, nargs="+", default=[], metavar="RUN_FOLDER",
                      help="run folders from elsewhere to fold in (named after their run; left in place)")
    args = parser.parse_args(argv)
    try:
        folded = compact(args.store, args.add)
    except StoreError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"{args.store}: folded {len(folded)} run(s), {len(load(args.store))} in the store")


if __name__ == "__main__":
    main()
