"""What the uncalibrated column of a pair can show, by name: the options of the sidebar's choice.

Standard library only: the sidebar is drawn from a stored first paint before torch is imported
(:mod:`precal.dashboard.backend.first_paint`), with the same options as from the loaded models.
"""

REFERENCE_TRAINED = "trained baseline"
"""The separately trained uncalibrated model of the pair."""
REFERENCE_SWITCHED_OFF = "calibrator switched off"
"""The calibrated model with its gates fixed at 1 (same weights)."""
OTHER_PREFIX = "another uncalibrated checkpoint: "
"""Another uncalibrated checkpoint of the same data set, paired by choice (its name follows)."""
