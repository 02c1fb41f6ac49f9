"""precal's dashboard: a Streamlit app over the library (``precal dashboard`` starts it).

This folder is installed with the package as ``precal.dashboard`` (``pyproject.toml`` maps it), so a
plain ``pip install`` runs the app; in a source checkout ``precal`` finds it here. ``app.py`` and
``views/`` are the app; ``backend/`` computes everything it shows and imports no Streamlit; ``ui/``
holds the Streamlit plumbing the pages share; ``charts/`` builds the figures; ``launcher.py``,
``server.py`` and ``worker.py`` start the server and its projection worker process.
"""
