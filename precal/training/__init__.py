"""Training: the run's settings (``config``), the loop with validation-based selection and a
per-epoch dynamics log (``loop``), their range checks (``checks``), augmentation (``augment``) and
weight averaging (``weight_average``)."""

from precal.training.config import TrainConfig
from precal.training.loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
