"""Replace a generated section of the README between two HTML-comment markers."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def replace_section(name: str, body: str, readme: Path = README) -> None:
    """Write ``body`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` (appended if absent)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    section = f"{begin}\n\n{body}\n\n{end}"
    text = readme.read_text()
    if text.count(begin) > 1 or text.count(end) > 1:  # a stale copy would silently stay behind
        raise ValueError(f"{readme} holds the section {name!r} more than once; keep one copy of its markers")
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text += "\n" + section + "\n"
    readme.write_text(text)
