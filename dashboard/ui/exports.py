"""Download buttons whose file is made only when clicked.

A report or an SVG costs tens of milliseconds; the lab redraws on every control change, so its
exports are built on demand (Streamlit calls ``make`` when the button is clicked, on another
thread). The makers of the current run are also kept in the session (``_exports``, by key), so tests
read exactly the file a click would give.
"""

from __future__ import annotations

from typing import Callable, Mapping, Union
from urllib.parse import urlencode, urlsplit

import pandas as pd
import streamlit as st

from precal.dashboard.backend.report import csv_bytes

Maker = Callable[[], Union[str, bytes]]


def download(label: str, make: Maker, file_name: str, mime: str, key: str, where=None, help: str = "") -> None:
    """A download button for ``make()``'s output; the click does not rerun the page."""
    st.session_state.setdefault("_exports", {})[key] = make
    (where or st).download_button(label, data=make, file_name=file_name, mime=mime, key=key, on_click="ignore",
                                  icon=":material/download:", help=help or None)


def download_csv(frame: pd.DataFrame, file_name: str, key: str, label: str = "CSV", where=None) -> None:
    """A table as a CSV file."""
    table = frame.copy()
    download(label, lambda: csv_bytes(table), file_name, "text/csv", key, where)


def download_svg(make: Callable[[], str], file_name: str, key: str, label: str = "SVG", where=None) -> None:
    """A chart as an SVG file (drawn by :mod:`precal.dashboard.backend.svg`)."""
    download(label, make, file_name, "image/svg+xml", key, where)


def safe_name(text: str) -> str:
    """A file name part from ids and labels (letters, digits, dot, dash, underscore)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in str(text))[:80]


def view_link(page: str, params: Mapping[str, str]) -> str:
    """The address of a view for a report, absolute when the server's address is known: a report is
    opened from a file, where ``/lab?…`` leads nowhere. The address is the one this page was served
    from (``st.context.url``, any path prefix kept); without it the link stays relative and the
    report prints its parameters instead (:func:`precal.dashboard.backend.report.link_facts`)."""
    query = urlencode({k: str(v) for k, v in params.items()})
    base = _served_from()
    path = f"{base}/{page}" if base else f"/{page}"
    return f"{path}?{query}" if query else path


def _served_from() -> str:
    """``scheme://host:port[/prefix]`` of the page being served, or "" if Streamlit does not say."""
    try:
        url = st.context.url
    except Exception:  # noqa: BLE001 (no browser context: tests, bare mode)
        return ""
    if not url:
        return ""
    parts = urlsplit(str(url))
    if not parts.scheme or not parts.netloc:
        return ""
    prefix = parts.path.rstrip("/").rsplit("/", 1)[0]
    return f"{parts.scheme}://{parts.netloc}{prefix}"
