"""The app's pages: each page's script, relative to the app (what ``st.Page`` and
``st.switch_page`` take). Standard library only: the app's frame reads it before torch is imported."""

PAGES = {
    "start": "views/start.py",
    "overview": "views/overview.py",
    "explorer": "views/explorer.py",
    "lab": "views/lab.py",
    "embeddings": "views/embeddings.py",
    "slices": "views/slices.py",
    "calibration": "views/calibration.py",
    "robustness": "views/robustness.py",
    "training": "views/training.py",
}
