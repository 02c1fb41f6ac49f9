"""The view in the URL: read once when a session opens a link, written after every run.

A shared link (``/lab?pair=…&sample=…&c.depth=dead_pixels:5``) is read at the session's first run
and kept as *pending* values; the sidebar and each page take theirs when they draw the widgets they
belong to (a value that does not fit, e.g. a sample of another split, is dropped and the widget
keeps its default). After each run, the page's current state is written back with
``st.query_params``, so the address bar always holds the view on screen. The mapping between
parameters and values lives in :mod:`precal.dashboard.backend.url_state`.
"""

from __future__ import annotations

from typing import Dict, Mapping, NoReturn, Optional

import streamlit as st

from precal.dashboard.backend.url_state import PAGE_PARAMS, SIDEBAR_PARAMS, decode_value, encode_value

PENDING = "_url_pending"
BOOL_PARAMS = frozenset({"lines"})
INT_PARAMS = frozenset({"cs"})
"""Parameters of widgets whose values are booleans or integers (the rest are strings)."""


def read_link_once() -> None:
    """At a session's first run, keep the URL's parameters to restore (a shared link)."""
    if "_url_read" in st.session_state:
        return
    st.session_state["_url_read"] = True
    st.session_state[PENDING] = {k: str(v) for k, v in st.query_params.to_dict().items()}


def pending() -> Dict[str, str]:
    """The link's values not yet taken by the widget they belong to."""
    return st.session_state.setdefault(PENDING, {})


def take(name: str) -> Optional[str]:
    """A pending value, removed (a widget takes it once; later the user's choice wins)."""
    return pending().pop(name, None)


def restore_page(page: str) -> None:
    """Put the link's values of this page's widgets into their session keys, before they are drawn."""
    spec = PAGE_PARAMS.get(page)
    if spec is None:
        return
    for name, key in spec.keys.items():
        raw = take(name)
        if raw is None:
            continue
        like = True if name in BOOL_PARAMS else 0 if name in INT_PARAMS else st.session_state.get(key, raw)
        st.session_state[key] = decode_value(raw, like)
    write(page)  # the sidebar's state at once: the address is right even if the page stops early


def stop(page: str) -> NoReturn:
    """``st.stop()`` after writing this page's state to the address bar. After ``st.stop()`` nothing
    more reaches the browser (app.py's final write included), so a page that stops early (no row
    selected, nothing to show) must write its URL first or a copied link loses the view."""
    write(page)
    st.stop()


def page_values(page: str) -> Dict[str, str]:
    """This page's widget values as URL parameters (those present in the session)."""
    out: Dict[str, str] = {}
    spec = PAGE_PARAMS.get(page)
    if spec is None:
        return out
    for name, key in spec.keys.items():
        if key in st.session_state:
            v = encode_value(st.session_state[key])
            if v is not None and v != "":
                out[name] = v
    return out


def sidebar_values() -> Dict[str, str]:
    """Which models, split and sample: every page carries them."""
    out: Dict[str, str] = {}
    if st.session_state.get("chosen_compare_mode") == "compare":
        out["cmp"] = "1"
        for name in ("a", "b"):
            v = st.session_state.get(f"chosen_cmp_{name}")
            if v:
                out[name] = str(v)
    else:
        for name, key in (("pair", "chosen_pair_key"), ("ref", "chosen_reference")):
            v = st.session_state.get(key)
            if v:
                out[name] = str(v)
    for name, key in (("split", "chosen_split"), ("sample", "sample_id")):
        v = st.session_state.get(key)
        if v:
            out[name] = str(v)
    return out


def write(page: str, extra: Optional[Mapping[str, str]] = None) -> None:
    """Make the address bar show this view: the sidebar's state, the page's widgets and ``extra``
    (the lab's controls). Values of a link that were never taken (the page was not opened yet) are
    kept, so a link is never cut short by the first page's run. Written only when changed."""
    if extra is not None:
        st.session_state[f"_params_{page}"] = dict(extra)
    extra = st.session_state.get(f"_params_{page}", {})
    values = {**pending(), **sidebar_values(), **page_values(page), **dict(extra or {})}
    values = {k: v for k, v in values.items() if k in SIDEBAR_PARAMS or k in _page_names(page, extra) or k in pending()}
    if {k: str(v) for k, v in st.query_params.to_dict().items()} != values:
        st.query_params.from_dict(values)


def _page_names(page: str, extra: Optional[Mapping[str, str]]) -> set:
    spec = PAGE_PARAMS.get(page)
    return set(spec.keys if spec else ()) | set(extra or ())
