"""Small widgets the pages share: a prediction card, chart settings and colours."""

from __future__ import annotations

import html
from typing import Dict, Optional, Sequence

import streamlit as st

from precal.dashboard.backend.pairs import ModelView
from precal.dashboard.charts import figures as charts

PLOTLY_CONFIG = {"displayModeBar": False, "displaylogo": False}


ZOOM_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["toImage", "autoScale2d"]}


def prediction_card(title: str, predicted: str, correct: bool, probability: float, note: str = "",
                    heading: Optional[str] = None) -> None:
    """A prediction shown in full (st.metric truncates long class names), under an optional
    heading. One element: the lab redraws it on every change, and every element costs the browser
    a re-render."""
    badge = ":green-badge[correct]" if correct else ":red-badge[wrong]"
    st.markdown((f"##### {heading}\n\n" if heading else "")
                + f"<div style='font-size:0.85rem;color:#666'>{html.escape(title)}</div>\n"
                + f"<div style='font-size:1.6rem;font-weight:600;line-height:1.3;margin:0.2rem 0 0.4rem 0'>"
                  f"{html.escape(predicted)}</div>\n\n"
                + f"{badge} probability **{probability:.3f}**" + (f" · {note}" if note else ""),
                unsafe_allow_html=True)


def role_colour_map(views: Sequence[ModelView]) -> Dict[str, str]:
    return {v.label: charts.ROLE_COLOURS.get(v.role, "#2ca02c") for v in views}
