"""Start: the one-minute demo. What the calibrator does, the pair where its effect is clearest,
its headline figures from stored results, and a button into the lab on a prepared example.

Drawn by :mod:`precal.dashboard.ui.start_page`. A session's first run while the server still imports
torch draws the page's stored first paint (nothing heavy is imported then); every full run at the
default choices stores what it drew as that first paint."""

import streamlit as st

from precal.dashboard.ui.first_paint import drawn_first_paint
from precal.dashboard.ui.start_page import draw_closing, draw_example, draw_head, draw_intro

paint = drawn_first_paint()
if paint is not None:
    draw_intro(paint.start.modalities)
    draw_head(paint.start)
    draw_example(paint.start)
    draw_closing()
else:
    from dataclasses import replace

    from precal.dashboard.backend.demo import (example_modality, example_sentence, headline_source, headline_tiles,
                                               prepared_example, stored_effect, why_shown)
    from precal.dashboard.backend.first_paint import StartContent
    from precal.dashboard.ui.context import context, guard
    from precal.dashboard.ui.first_paint import remember_first_paint
    from precal.dashboard.ui.pages import PAGES

    ctx = context()
    pair = ctx.pair
    draw_intro(ctx.schema.modality_names)

    @st.cache_data(show_spinner="Finding a sample where a swap is caught…", max_entries=16)
    def _example(key: str, split: str, modality: str, _views, _splits, _predict):  # noqa: ARG001 (cache key)
        return prepared_example(_views, _splits, modality, predict=_predict)

    with guard("start"):
        effect = stored_effect(pair)
        chosen = why_shown(pair.key == ctx.default_pair, effect is not None)
        modality = example_modality(pair, effect)
        no_data = ctx.data is None or ctx.splits is None
        content = StartContent(
            modalities=tuple(ctx.schema.modality_names), showing=f"{pair.label}, {chosen}",
            tiles=headline_tiles(effect) if effect is not None else (),
            source=headline_source(effect) if effect is not None else "", example="",
            problem=(ctx.data_error or "no data loaded for this model") if no_data else "",
            needs_calibrated=ctx.gated() is None, button=f"Open the lab: {modality} swapped")
        draw_head(content)
        # the sentence says what this very example shows, so the example is found first
        ex = (_example(ctx.pair.cache_key, ctx.split, modality, ctx.views, ctx.splits, ctx.variant_predictions)
              if not no_data and ctx.gated() is not None else None)
        # without data there is no sample to promise: the problem alone is said
        content = replace(content, example="" if no_data else example_sentence(ex, modality, ctx.split))
        if draw_example(content):
            if ex is None:
                st.warning(f"No sample of this split has a {modality} that can be swapped.")
            else:
                st.session_state["sample_id"] = str(ctx.data.sample_ids[ex.index])
                st.session_state["lab_preset"] = {"swap": ex.modality}
                st.switch_page(PAGES["lab"])
        draw_closing()
        remember_first_paint(ctx, content)
