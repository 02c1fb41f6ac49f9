"""Per-modality encoders: raw (normalised) inputs -> features in channel layout, with masks.

Every encoder returns channel-layout features — (B, D, T) for streams, (B, D, T, h, w) for frame
sequences, (B, D) for vectors — plus the padding mask downsampled to its time axis. The model then
converts to the layout its fusion backbone wants (tokens, channels or vectors); keeping one trunk
per kind means the sequence, convolutional and late backbones differ only where they should: in
fusion.

Frame sequences use per-frame 2-D convolutions followed by a temporal convolution: on a 2-core CPU
this trains an order of magnitude faster than a 3-D CNN at similar accuracy on 30x40 frames.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from precal.data.schema import ModalitySchema


def downsample_mask(mask: Optional[Tensor], stride: int, length: int) -> Optional[Tensor]:
    """A step of the output is valid if any input step it covers is valid."""
    if mask is None:
        return None
    if stride > 1:
        mask = F.max_pool1d(mask.float().unsqueeze(1), kernel_size=stride, stride=stride,
                            ceil_mode=True).squeeze(1) > 0
    return mask[:, :length]


def _conv_block(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm1d(channels), nn.GELU())


def _zero_padding(y: Tensor, mask: Optional[Tensor]) -> Tensor:
    """Zero padded steps of (B, C, T): bias, BatchNorm and GELU make them non-zero, and the next
    convolution would otherwise carry them into the last real steps."""
    return y if mask is None else y * mask[:, None, :].to(y.dtype)


class SeriesEncoder(nn.Module):
    """Streams (B, T, *step) -> (B, D, T'): two strided 1-D conv blocks and one refining block.

    Padded steps are re-zeroed after every block, so a sample's features do not depend on how much
    padding its batch has (exactly as if the sequence ended at its last real step).
    """

    def __init__(self, in_features: int, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.stride = 4
        self.blocks = nn.ModuleList([
            _conv_block(nn.Conv1d(in_features, dim, kernel_size=5, stride=2, padding=2), dim),
            _conv_block(nn.Conv1d(dim, dim, kernel_size=5, stride=2, padding=2), dim),
            nn.Sequential(nn.Dropout(dropout), *_conv_block(nn.Conv1d(dim, dim, kernel_size=3, padding=1), dim)),
        ])
        self.strides = (2, 2, 1)

    def forward(self, x: Tensor, mask: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        b, t = x.shape[:2]
        y = _zero_padding(x.reshape(b, t, -1).transpose(1, 2), mask)
        for block, stride in zip(self.blocks, self.strides):
            y = block(y)
            mask = downsample_mask(mask, stride, y.shape[-1])
            y = _zero_padding(y, mask)
        return y, mask


class FrameEncoder(nn.Module):
    """Frame sequences (B, T, H, W) -> (B, D, T, h, w): per-frame 2-D CNN, then temporal conv."""

    def __init__(self, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        c1, c2 = 8, 16  # small early layers: on CPU the full-resolution layers dominate time
        self.frame_net = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=3, stride=2, padding=1), nn.BatchNorm2d(c1), nn.GELU(),
            nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1), nn.BatchNorm2d(c2), nn.GELU(),
            nn.Conv2d(c2, dim, kernel_size=3, stride=2, padding=1), nn.BatchNorm2d(dim), nn.GELU(),
        )
        self.temporal = nn.Sequential(
            nn.Dropout(dropout),
            nn.Conv3d(dim, dim, kernel_size=(3, 1, 1), padding=(1, 0, 0)), nn.BatchNorm3d(dim), nn.GELU(),
        )

    def forward(self, x: Tensor, mask: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        b, t, h, w = x.shape
        y = self.frame_net(x.reshape(b * t, 1, h, w))  # (B*T, D, h', w')
        y = y.reshape(b, t, *y.shape[1:]).permute(0, 2, 1, 3, 4)  # (B, D, T, h', w')
        if mask is not None:  # padded frames must not leak into real ones through the temporal conv
            keep = mask[:, None, :, None, None].to(y.dtype)
            return self.temporal(y * keep) * keep, mask
        return self.temporal(y), mask


class VectorEncoder(nn.Module):
    """Vectors (B, F) -> (B, D)."""

    def __init__(self, in_features: int, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(dim, dim), nn.GELU())

    def forward(self, x: Tensor, mask: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        return self.net(x), None


def build_encoder(spec: ModalitySchema, dim: int, dropout: float) -> nn.Module:
    """The encoder trunk for a modality kind."""
    if spec.kind == "frame_sequence":
        return FrameEncoder(dim, dropout)
    if spec.kind == "vector":
        return VectorEncoder(spec.num_features, dim, dropout)
    return SeriesEncoder(spec.num_features, dim, dropout)
