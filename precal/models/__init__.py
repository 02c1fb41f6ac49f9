"""Encoders, fusion backbones and the model that joins them around the calibrator."""

from precal.models.model import BACKBONES, ModelConfig, ModelOutput, MultimodalModel

__all__ = ["BACKBONES", "ModelConfig", "ModelOutput", "MultimodalModel"]
