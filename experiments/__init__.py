"""Experiments on top of precal: the training recipes (``recipes/*.json``, for ``precal train
--config``), the drivers that run and store evidence (``inner_fold``, ``error_analysis``), the
store they keep it in (``results_store``: a few tables per experiment under ``results/``), and the
report generators that rebuild the result tables from what is stored (``evidence``, ``gate_report``,
``error_analysis``, ``inner_fold``, ``robustness_report``, ``ablation_report``). Run one as
``python -m experiments.NAME``; the shell scripts in ``scripts/`` train the runs they read."""
