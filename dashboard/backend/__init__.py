"""Everything the dashboard computes, with no Streamlit in it (so it is unit-tested like the rest).

The pages in ``views/`` only lay out widgets and charts; every number they show comes from here or
from the library this builds on (:mod:`precal.inference`, :mod:`precal.explain`,
:mod:`precal.projection`, :mod:`precal.robustness`). The same forward pass that predicts also
produces the calibration report the pages draw (no second code path for the UI). One module per
concern: ``pairs`` (checkpoints side by side), ``data`` (a split as batches), ``running`` (forward
passes and their disk cache), ``samples``, ``inputs``, ``lab``, ``overview``, ``embeddings``,
``robustness``, ``uploads``, ``own_models`` (your own model: ``--model``) and ``formatting``.

Vocabulary used throughout:

- a **pair** (:class:`~precal.dashboard.backend.pairs.ModelPair`) groups the calibrated
  (``..._calon``) and uncalibrated (``..._caloff``) checkpoints of one data set and backbone;
  either may be missing;
- a **view** (:class:`~precal.dashboard.backend.pairs.ModelView`) is one model as shown in a column:
  a checkpoint plus the calibrator switch (``calibration``) and its ``role``. If a pair has no
  trained baseline, the calibrated checkpoint run with its calibrator switched off stands in as the
  uncalibrated model (same weights, gates fixed at 1);
- a **split batch** is a whole split preprocessed exactly as the checkpoint's training data was
  (:func:`precal.evaluation.dataset_for`); single samples are rows of it, so a corrupted sample in the
  lab is corrupted exactly as in a batched robustness sweep (randomness is keyed by sample index).
"""
