"""The lab's drawing of one modality (Vega-Lite): one chart per modality whose specification never
changes with its corruption, so that a change only feeds the chart new data.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import streamlit as st

from precal.dashboard.backend.inputs import (frame_picks, frame_range, frame_strip, input_view_kind,
                                             model_input_unit, time_axis)
from precal.dashboard.charts import lab_inputs
from precal.dashboard.ui.context import Context
from precal.data.skeleton import skeleton_bones


def _light_input_spec(ctx: Context, modality: str, kind: str, values: np.ndarray, t: np.ndarray, t_label: str,
                      title: str, reference: Optional[np.ndarray], unit: str) -> dict:
    """The lab's drawing of one modality (lab_inputs: Vega-Lite, cheap to redraw on every change)."""
    spec = ctx.schema.modality(modality)
    extra = ctx.schema.extra
    if kind == "frames":
        strip = frame_strip(spec, values, reference, title)
        # colour range from the clean input: it stays put while the corrupted row changes
        lo, hi = frame_range(spec, reference if reference is not None else values)
        return lab_inputs.frames_chart(strip.frames, t[strip.picks], strip.reference, lo, hi, strip.title,
                                       strip.colour_title, strip.colours)
    if kind == "skeleton":
        names = list(extra.get("joint_names", []))
        return lab_inputs.skeleton_chart(values, t, frame_picks(len(values), 8), skeleton_bones(names),
                                         reference, f"{title}: poses over time (x–y plane; grey: clean)", unit)
    cols = ctx.schema.feature_names(modality)
    flat = values.reshape(len(values), -1)
    ref = reference.reshape(len(reference), -1) if reference is not None else None
    if kind == "imu":
        return lab_inputs.series_chart(t, flat, cols, ref, f"{title}: inertial sensor",
                                       [("acceleration (g)", range(0, 3)), ("angular velocity (deg/s)", range(3, 6))],
                                       t_label)
    if kind == "lines":
        return lab_inputs.series_chart(t, flat, cols, ref, title, [(f"{modality} ({unit})", range(len(cols)))], t_label)
    if kind == "heatmap":
        label = "MFCC / energy coefficient" if "MFCC" in spec.description else "feature"
        colour = spec.unit or ("coefficient value" if "MFCC" in spec.description else "value")
        return lab_inputs.heatmap_chart(t, flat, cols, ref, f"{title}: features over time", colour, t_label, label)
    return lab_inputs.vector_chart(values.reshape(-1), cols, reference, title, unit)


def render_lab_input(ctx: Context, modality: str, values: np.ndarray, clean: np.ndarray,
                     original_steps: Optional[int], key: str, unit: str) -> None:
    """The lab's drawing of one modality: the clean input and ``values`` (what the model sees now).

    Always one chart whose specification depends only on the modality, never on its corruption:
    a removed input (``values`` empty) is drawn as NaN, i.e. nothing over the clean input. The lab
    redraws this on every change, and a chart whose specification is unchanged is only fed new data
    (far cheaper in the browser than a new chart). ``unit``: the unit of the values as the model
    sees them (``model_input_unit``)."""
    spec = ctx.schema.modality(modality)
    if len(clean) == 0:  # absent from the sample itself: nothing to compare against
        st.info(f"{modality} is absent for this sample (marked missing in the data).")
        return
    if len(values) == 0:
        values = np.full_like(clean, np.nan, dtype=np.float32)
    kind = input_view_kind(spec, ctx.schema.extra)
    t, t_label = time_axis(len(values), spec, original_steps)
    st.vega_lite_chart(spec=_light_input_spec(ctx, modality, kind, values, t, t_label, f"{modality} (model input)",
                                              clean, unit), key=f"{key}_{modality}_input")
