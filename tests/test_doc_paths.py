"""Every file of the repository that the README and the docs name exists: a path in a doc is an
instruction (run this, read that), and files move when the code is reorganised."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

ROOT = Path(__file__).resolve().parents[1]
TOP_FOLDERS = ("precal", "dashboard", "tests", "experiments", "scripts", "benchmarks", "results", "docs",
               "examples", "sample_data", "checkpoints")
PATH = re.compile(r"(?<![\w/.-])((?:" + "|".join(TOP_FOLDERS) + r")/[\w./*<>{}$-]*[\w*>}])")
PLACEHOLDER = set("<>*{}$")
"""A path with one of these is a pattern or a template (``results/runs/<run>``), not a file."""


def named_paths(doc: Path) -> List[Tuple[str, Path]]:
    """(path as written, candidates) for each repository path the doc names: relative to the
    repository, or to the doc's folder as a Markdown link is."""
    found = []
    for match in PATH.finditer(doc.read_text(encoding="utf-8")):
        written = match.group(1).split("::")[0]
        if not PLACEHOLDER & set(written):
            found.append((written, doc.parent / written))
    return found


def test_every_path_named_in_the_docs_exists() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "examples").rglob("*.md"))]
    missing = [f"{doc.relative_to(ROOT)}: {written}" for doc in docs for written, beside in named_paths(doc)
               if not (ROOT / written).exists() and not beside.exists()]
    assert not missing, "paths named in the docs that do not exist:\n" + "\n".join(missing)
