"""Replace a generated section of the documentation between two HTML-comment markers.

A section lives in exactly one page: README.md or a page under docs/. The generators name the
section, not the page, so a write-up can move between pages without touching its generator.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DEFAULT_PAGE = ROOT / "docs" / "results" / "README.md"


def pages(root: Path = ROOT) -> List[Path]:
    """Every page a generated section may live in."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def find_page(name: str, root: Path = ROOT) -> Optional[Path]:
    """The page holding the section ``name``; an error if more than one does."""
    begin = f"<!-- {name}:begin -->"
    found = [p for p in pages(root) if p.is_file() and begin in p.read_text()]
    if len(found) > 1:
        raise ValueError(f"the section {name!r} is in {len(found)} pages ({', '.join(map(str, found))}); keep one")
    return found[0] if found else None


def replace_section(name: str, body: str, readme: Optional[Path] = None) -> Path:
    """Write ``body`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in the page that holds
    the markers (``readme`` if given); appended to the results index if no page holds them yet.
    Returns the page written."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    page = readme if readme is not None else (find_page(name) or DEFAULT_PAGE)
    section = f"{begin}\n\n{body}\n\n{end}"
    text = page.read_text() if page.exists() else ""
    if text.count(begin) > 1 or text.count(end) > 1:  # a stale copy would silently stay behind
        raise ValueError(f"{page} holds the section {name!r} more than once; keep one copy of its markers")
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text += "\n" + section + "\n"
    page.write_text(text)
    return page
