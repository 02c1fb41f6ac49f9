"""precal: pre-fusion calibration for multimodal models.

The calibrator compares each modality with the others at the summary level, turns support and
conflict cues into instance- and dimension-wise gates, and applies them to the original features
before fusion.
"""

from precal.calibration import CalibrationReport, ModalityFeatureSpec, PreFusionCalibrator

__version__ = "0.1.0"

__all__ = ["CalibrationReport", "ModalityFeatureSpec", "PreFusionCalibrator", "__version__"]
