"""Start: the one-minute demo. What the calibrator does, the pair where its effect is clearest,
its headline figures from stored results, and a button into the lab on a prepared example."""

import streamlit as st

from precal.dashboard.backend.demo import (delta_style, demo_pair_key, example_sentence, headline_rows, points_text,
                                           prepared_example, stored_effect, example_modality)
from precal.dashboard.backend.formatting import fmt_pct
from precal.dashboard.ui.context import PAGES, context, guard

ctx = context()
pair = ctx.pair
st.title("Pre-fusion calibration in one minute")
st.markdown(
    "A multimodal model encodes each modality (here: "
    + ", ".join(f"**{m}**" for m in ctx.schema.modality_names)
    + ") and fuses the encodings to predict. The **calibrator** sits between encoders and fusion. For every "
      "sample it compares each modality with what the *other* modalities imply about it, and turns the "
      "agreement (**support**) and disagreement (**conflict**) into a gate **alpha** that scales that modality's "
      "features before fusion: below 1 damps a modality that disagrees with the rest, above 1 amplifies one that "
      "agrees, relative to a typical training sample. More support never lowers a gate and more conflict never "
      "raises it. The uncalibrated model is the same network trained the same way without the calibrator.")


@st.cache_data(show_spinner="Finding a sample where a swap is caught…", max_entries=16)
def _example(key: str, split: str, modality: str, _views, _splits, _predict):  # noqa: ARG001 (cache key)
    return prepared_example(_views, _splits, modality, predict=_predict)


with guard("start"):
    effect = stored_effect(pair)
    best = demo_pair_key(ctx.pairs)
    chosen = ("chosen because its stored results show the calibrator's effect most clearly (swap detection by "
              "the gates plus accuracy kept under corruption)" if pair.key == best and effect is not None
              else "chosen in the sidebar")
    st.markdown(f"**Showing:** {pair.label}, {chosen}.")
    if effect is not None:
        rows = headline_rows(effect)
        c1, c2, c3 = st.columns(3)
        clean_delta = effect.clean_calibrated - effect.clean_uncalibrated
        kept_delta = effect.kept_calibrated - effect.kept_uncalibrated
        colour, arrow = delta_style(clean_delta)
        c1.metric("clean test accuracy · calibrated", fmt_pct(effect.clean_calibrated),
                  f"{points_text(clean_delta)} vs uncalibrated ({fmt_pct(effect.clean_uncalibrated)})",
                  delta_color=colour, delta_arrow=arrow)
        colour, arrow = delta_style(kept_delta)
        c2.metric("accuracy kept under corruption · calibrated", fmt_pct(effect.kept_calibrated),
                  f"{points_text(kept_delta)} vs uncalibrated ({fmt_pct(effect.kept_uncalibrated)})",
                  delta_color=colour, delta_arrow=arrow,
                  help="Accuracy on corrupted inputs as a share of clean accuracy, averaged over every stored "
                       "corruption (noise, masking, dropped frames, removal, …), every modality and severities "
                       "1–5.")
        c3.metric(f"swap of {effect.swap_modality} detected by its gate", f"AUROC {effect.swap_auroc:.2f}",
                  f"mean over modalities {effect.swap_auroc_mean:.2f}; 0.50 = chance", delta_color="off", delta_arrow="off",
                  help="When a modality is replaced by the same modality of a sample of another class, how well "
                       "its gate (1 − alpha) tells swapped from clean samples. The uncalibrated model has no "
                       "gates: chance.")
        st.caption(f"From the stored sweep `{effect.table.rsplit('/', 2)[-2]}/robustness.csv` "
                   f"({effect.n} test samples).")
    else:
        st.info("This pair has no stored robustness sweep with both models (write one with `precal robustness "
                "… --out`), so there are no headline figures; the pages below work all the same.")

    st.subheader("See it on one sample")
    modality = example_modality(pair)
    ready = ctx.data is not None and ctx.splits is not None and ctx.gated() is not None
    # the sentence says what this very example shows, so the example is found first
    ex = (_example(ctx.pair.cache_key, ctx.split, modality, ctx.views, ctx.splits, ctx.variant_predictions)
          if ready else None)
    st.markdown(example_sentence(ex, modality, ctx.split))
    if ctx.data is None or ctx.splits is None:
        st.error(ctx.data_error or "no data loaded for this model", icon=":material/error:")
    elif ctx.gated() is None:
        st.caption("Needs a calibrated checkpoint.")
    elif st.button(f"Open the lab: {modality} swapped", type="primary", key="start_lab"):
        if ex is None:
            st.warning(f"No sample of this split has a {modality} that can be swapped.")
        else:
            st.session_state["sample_id"] = str(ctx.data.sample_ids[ex.index])
            st.session_state["lab_preset"] = {"swap": ex.modality}
            st.switch_page(PAGES["lab"])
    st.markdown("Then: **Sample explorer** says why each gate moved; **Robustness** shows accuracy against "
                "corruption severity for both models; **Embeddings** shows where calibration moves the samples.")
