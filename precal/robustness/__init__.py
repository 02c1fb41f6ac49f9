"""Robustness: seeded corruptions, one sweep engine and one table of its results.

``corruptions`` (with ``damage`` and ``keyed_random``) damages one modality of a batch;
``engine`` runs every modality x corruption x severity over a split for one or more models;
``table`` holds the table's schema and its MultiBench summaries; ``sweep`` is ``precal robustness``.
"""
