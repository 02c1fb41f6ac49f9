"""The Streamlit plumbing the pages share: cached loading, background work, the context and sidebar,
widgets, and the two input renderers (Plotly for the explorer, Vega-Lite for the lab)."""
