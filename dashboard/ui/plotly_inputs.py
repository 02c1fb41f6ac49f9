"""The explorer's drawing of one modality of one sample in physical units (Plotly): frames,
skeleton, inertial sensor, lines, feature heatmap or vector, by :func:`~precal.dashboard.backend.inputs.input_view_kind`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import streamlit as st

from precal.dashboard.backend.inputs import frame_range, frame_strip, input_view_kind, time_axis
from precal.dashboard.charts import figures as charts
from precal.dashboard.ui.context import Context
from precal.dashboard.ui.widgets import PLOTLY_CONFIG
from precal.data.skeleton import skeleton_bones


def render_modality(ctx: Context, modality: str, values: np.ndarray, original_steps: Optional[int],
                    key: str, title_suffix: str = "", reference: Optional[np.ndarray] = None) -> None:
    """Draw one modality of one sample (physical units): frames, skeleton, IMU, MFCC heatmap, vector.

    ``reference``: the clean input, drawn beside/under ``values`` for comparison."""
    if reference is not None and len(reference) == 0:
        reference = None
    schema = ctx.schema
    spec = schema.modality(modality)
    extra = schema.extra
    if len(values) == 0:
        st.info(f"{modality} is absent for this sample (marked missing).")
        return
    kind = input_view_kind(spec, extra)
    t, t_label = time_axis(len(values), spec, original_steps)
    title = f"{modality}{title_suffix}"
    unit = spec.unit or "value"
    if kind == "frames":
        strip = frame_strip(spec, values, reference, title)
        fig = charts.frames_strip(strip.frames, t[strip.picks], strip.title, strip.colour_title,
                                  "Viridis" if strip.colours == "viridis" else "gray", frame_range(spec, values),
                                  reference=strip.reference)
        st.plotly_chart(fig, config=PLOTLY_CONFIG, key=f"{key}_{modality}_frames")
    elif kind == "skeleton":
        names = list(extra.get("joint_names", []))
        bones = skeleton_bones(names)
        fig = charts.skeleton_animation(values, t, bones, names,
                                        f"{title}: stick figure (x–y plane, drag the slider or press play)",
                                        unit=spec.unit or "m")
        st.plotly_chart(fig, config=PLOTLY_CONFIG, key=f"{key}_{modality}_skeleton")
    elif kind == "imu":
        cols = ctx.schema.feature_names(modality)
        ref = reference.reshape(len(reference), -1) if reference is not None else None
        st.plotly_chart(charts.imu_figure(t, values.reshape(len(values), -1), cols, f"{title}: inertial sensor",
                                          time_label=t_label, reference=ref), config=PLOTLY_CONFIG,
                        key=f"{key}_{modality}_imu")
    elif kind == "lines":
        cols = ctx.schema.feature_names(modality)
        ref = reference.reshape(len(reference), -1) if reference is not None else None
        st.plotly_chart(charts.lines_figure(t, values.reshape(len(values), -1), cols, title,
                                            f"{modality} ({unit})", t_label, reference=ref), config=PLOTLY_CONFIG,
                        key=f"{key}_{modality}_lines")
    elif kind == "heatmap":
        flat = values.reshape(len(values), -1)
        rows = ctx.schema.feature_names(modality)
        label = "MFCC / energy coefficient" if "MFCC" in spec.description else "feature"
        colour = spec.unit or ("coefficient value" if "MFCC" in spec.description else "value")
        ref = reference.reshape(len(reference), -1) if reference is not None else None
        st.plotly_chart(charts.feature_heatmap(t, flat, rows, f"{title}: features over time",
                                               colour, t_label, label, reference=ref), config=PLOTLY_CONFIG,
                        key=f"{key}_{modality}_heat")
    else:
        st.plotly_chart(charts.vector_figure(values.reshape(-1), ctx.schema.feature_names(modality), title, unit),
                        config=PLOTLY_CONFIG, key=f"{key}_{modality}_vec")
    if spec.description:
        st.caption(spec.description)
