"""A cap for the dashboard's on-disk caches: least-recently-used files go first.

Why: predictions and projections are cached under ``.cache/precal/`` keyed by weights, data and
code; every retrained checkpoint, changed data set or code change adds new keys and the old ones
were never read again, so the folder only grew. A cache hit marks its file as used (its
modification time), and after every write the oldest files beyond a byte and a file budget are
deleted. Only files whose names match the cache's own pattern are ever counted or deleted: a file
a user put into the folder stays.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Optional, Pattern, Tuple

PREDICTIONS = re.compile(r"^predictions-[0-9a-f]{32}\.npz$")
PROJECTIONS = re.compile(r"^projection-[a-z]+-[0-9a-f]{40}\.npz$")
MAX_CACHE_BYTES = 512 * 1024 * 1024
"""Per cache folder (predictions of a split are a few MB; projections a few hundred kB)."""
MAX_CACHE_FILES = 2000


def mark_used(path: Path) -> None:
    """Record a cache hit: the file becomes the most recently used."""
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only cache still serves hits


def evict(folder: Path, pattern: Pattern[str], max_bytes: Optional[int] = None,
          max_files: Optional[int] = None) -> List[Path]:
    """Delete the least recently used cache files in ``folder`` (names matching ``pattern``) until
    at most ``max_bytes`` and ``max_files`` remain (default: :data:`MAX_CACHE_BYTES`,
    :data:`MAX_CACHE_FILES`); returns what was deleted."""
    max_bytes = MAX_CACHE_BYTES if max_bytes is None else max_bytes
    max_files = MAX_CACHE_FILES if max_files is None else max_files
    entries: List[Tuple[float, int, Path]] = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                if pattern.match(e.name) and e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    entries.append((st.st_mtime, st.st_size, Path(e.path)))
    except OSError:
        return []
    entries.sort(key=lambda t: t[0])
    total = sum(size for _, size, _ in entries)
    count = len(entries)
    removed: List[Path] = []
    for _, size, path in entries:
        if total <= max_bytes and count <= max_files:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        count -= 1
        removed.append(path)
    return removed
