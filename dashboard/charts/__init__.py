"""Figures of the pages: Plotly (``figures``) and Vega-Lite (``lab``, ``lab_inputs``, ``overview``); layout only, no model maths."""
