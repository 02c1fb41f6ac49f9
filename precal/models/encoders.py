"""Per-modality encoders: raw (normalised) inputs -> features in channel layout, with masks.

Every encoder returns channel-layout features — (B, D, T) for streams, (B, D, T, h, w) for frame
sequences, (B, D) for vectors — plus the padding mask downsampled to its time axis. The model then
converts to the layout its fusion backbone wants (tokens, channels or vectors); keeping one trunk
per kind means the sequence, convolutional and late backbones differ only where they should: in
fusion.

Frame sequences have two trunks. ``frames`` runs per-frame 2-D convolutions followed by a temporal
convolution (on a 2-core CPU an order of magnitude faster than a 3-D CNN); ``frame-diffs`` is the
same trunk with each frame's difference from the previous one as a second input channel. ``motion``, the default,
first summarises the clip into motion-energy images (mean absolute frame difference over a few
temporal segments, plus the mean frame) and runs one 2-D CNN on them: the depth-motion-map idea of
the UTD-MHAD literature. Where a subject stands and how far away they are then matters much less
than what moves, and on UTD-MHAD's cross-subject split this is what transfers (see the README).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from precal.models.config import FRAME_ENCODERS, POINT_ENCODERS

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


class JointGraphEncoder(nn.Module):
    """Point sequences (B, T, J, C), e.g. skeletons -> (B, D, T'): a small spatio-temporal graph network.

    Why: the series trunk sees a step as J*C unrelated numbers. Here every joint's coordinates go
    through the same embedding (plus a learned per-joint offset), information moves between joints
    along a learned adjacency that starts as the skeleton's bones, and the temporal convolutions are
    shared by all joints, so a movement pattern is learned once rather than once per joint. Three
    blocks with the series trunk's time strides (2, 2, 1), so both trunks give the same number of
    steps; padded steps are re-zeroed before every temporal convolution, as in the series trunk.
    """

    def __init__(self, joints: int, coords: int, dim: int, dropout: float = 0.1,
                 bones: Sequence[Tuple[int, int]] = (), width: int = 24) -> None:
        super().__init__()
        adjacency = torch.zeros(joints, joints)
        adjacency.diagonal().fill_(1.0)  # not torch.eye: see precal.calibration.off_diagonal
        for a, b in bones:
            if max(a, b) < joints:  # names of another modality's points are not this one's
                adjacency[a, b] = adjacency[b, a] = 1.0
        self.adjacency = nn.Parameter(adjacency / adjacency.sum(dim=1, keepdim=True))
        self.embed = nn.Linear(coords, width)
        self.joint_offset = nn.Parameter(torch.zeros(joints, width))
        widths = (width, width, 2 * width, 2 * width)
        self.strides = (2, 2, 1)
        self.mix = nn.ModuleList([nn.Linear(widths[i], widths[i + 1]) for i in range(3)])
        self.temporal = nn.ModuleList([
            nn.Sequential(nn.Conv2d(widths[i + 1], widths[i + 1], kernel_size=(5, 1), stride=(s, 1), padding=(2, 0)),
                          nn.BatchNorm2d(widths[i + 1]), nn.GELU())
            for i, s in enumerate(self.strides)])
        self.dropout = nn.Dropout(dropout)
        self.out = _conv_block(nn.Conv1d(joints * widths[-1], dim, kernel_size=1), dim)

    def forward(self, x: Tensor, mask: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        h = self.embed(x) + self.joint_offset  # (B, T, J, W)
        for mix, temporal, stride in zip(self.mix, self.temporal, self.strides):
            h = mix(torch.einsum("ij,btjc->btic", self.adjacency, h))
            if mask is not None:
                h = h * mask[:, :, None, None].to(h.dtype)
            y = temporal(h.permute(0, 3, 1, 2))  # (B, C, T', J)
            mask = downsample_mask(mask, stride, y.shape[2])
            h = y.permute(0, 2, 3, 1)
        b, t, j, c = h.shape
        y = self.out(self.dropout(h).reshape(b, t, j * c).transpose(1, 2))
        return _zero_padding(y, mask), mask


class FrameEncoder(nn.Module):
    """Frame sequences (B, T, H, W) -> (B, D, T, h, w): per-frame 2-D CNN, then temporal conv.

    With ``differences`` each frame enters with a second channel, its difference from the previous
    real frame (zero for the first): what moves (a mouth opening) then stands out from what only
    looks different (a speaker's face), while the first channel keeps the shape itself.
    """

    def __init__(self, dim: int, dropout: float = 0.1, differences: bool = False) -> None:
        super().__init__()
        self.differences = differences
        c1, c2 = 8, 16  # small early layers: on CPU the full-resolution layers dominate time
        self.frame_net = nn.Sequential(
            nn.Conv2d(2 if differences else 1, c1, kernel_size=3, stride=2, padding=1), nn.BatchNorm2d(c1), nn.GELU(),
            nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1), nn.BatchNorm2d(c2), nn.GELU(),
            nn.Conv2d(c2, dim, kernel_size=3, stride=2, padding=1), nn.BatchNorm2d(dim), nn.GELU(),
        )
        self.temporal = nn.Sequential(
            nn.Dropout(dropout),
            nn.Conv3d(dim, dim, kernel_size=(3, 1, 1), padding=(1, 0, 0)), nn.BatchNorm3d(dim), nn.GELU(),
        )

    def frame_inputs(self, x: Tensor, mask: Optional[Tensor]) -> Tensor:
        """(B, T, H, W) -> (B, T, C, H, W): the frames, and with ``differences`` their change since
        the previous frame (zero where either frame is padding)."""
        if not self.differences:
            return x.unsqueeze(2)
        diff = torch.zeros_like(x)
        diff[:, 1:] = x[:, 1:] - x[:, :-1]
        if mask is not None:
            both = torch.zeros_like(mask)
            both[:, 1:] = mask[:, 1:] & mask[:, :-1]
            diff = diff * both[:, :, None, None].to(x.dtype)
        return torch.stack([x, diff], dim=2)

    def forward(self, x: Tensor, mask: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        b, t, h, w = x.shape
        frames = self.frame_inputs(x, mask)
        y = self.frame_net(frames.reshape(b * t, frames.shape[2], h, w))  # (B*T, D, h', w')
        y = y.reshape(b, t, *y.shape[1:]).permute(0, 2, 1, 3, 4)  # (B, D, T, h', w')
        if mask is not None:  # padded frames must not leak into real ones through the temporal conv
            keep = mask[:, None, :, None, None].to(y.dtype)
            return self.temporal(y * keep) * keep, mask
        return self.temporal(y), mask


def segment_weights(mask: Optional[Tensor], batch: int, steps: int, segments: int, device: torch.device) -> Tensor:
    """(B, steps, segments) weights that average each sample's *valid* steps within each of
    ``segments`` equal parts of its own valid steps, so that padding (anywhere, not only at the end)
    changes nothing."""
    if mask is None:
        mask = torch.ones(batch, steps, dtype=torch.bool, device=device)
    lengths = mask.sum(dim=1, keepdim=True)
    rank = mask.long().cumsum(dim=1) - 1  # position of a valid step among the valid steps
    seg = torch.div(rank.clamp(min=0) * segments, lengths.clamp(min=1), rounding_mode="floor").clamp(max=segments - 1)
    onehot = F.one_hot(seg, segments).to(torch.float32) * mask[..., None]
    return onehot / onehot.sum(dim=1, keepdim=True).clamp(min=1.0)


class MotionFrameEncoder(nn.Module):
    """Frame sequences (B, T, H, W) -> (B, D, 1, h, w) from motion-energy images.

    The input image has ``segments`` channels of mean |frame difference| (one per temporal segment,
    in order, so the CNN still sees *when* something moved) and one channel of the mean frame. The
    time axis of the output has length 1: the whole clip is one summary.
    """

    def __init__(self, dim: int, dropout: float = 0.1, segments: int = 4) -> None:
        super().__init__()
        self.segments = segments
        c1, c2 = 32, 64
        self.net = nn.Sequential(
            nn.BatchNorm2d(segments + 1),  # learned standardisation: motion and depth differ in scale
            nn.Conv2d(segments + 1, c1, kernel_size=3, padding=1), nn.BatchNorm2d(c1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size=3, padding=1), nn.BatchNorm2d(c2), nn.GELU(), nn.MaxPool2d(2),
            nn.Dropout(dropout),
            nn.Conv2d(c2, dim, kernel_size=3, padding=1), nn.BatchNorm2d(dim), nn.GELU(),
        )

    def motion_images(self, x: Tensor, mask: Optional[Tensor]) -> Tensor:
        """(B, T, H, W) -> (B, segments + 1, H, W): segment motion energy and the mean frame."""
        b, t = x.shape[:2]
        frame_w = segment_weights(mask, b, t, 1, x.device)[..., 0]  # (B, T)
        mean_frame = torch.einsum("bt,bthw->bhw", frame_w.to(x.dtype), x)
        if t < 2:
            motion = torch.zeros(b, self.segments, *x.shape[2:], dtype=x.dtype, device=x.device)
        else:
            diff_mask = None if mask is None else mask[:, 1:] & mask[:, :-1]
            weights = segment_weights(diff_mask, b, t - 1, self.segments, x.device).to(x.dtype)
            motion = torch.einsum("bts,bthw->bshw", weights, (x[:, 1:] - x[:, :-1]).abs())
        return torch.cat([motion, mean_frame.unsqueeze(1)], dim=1)

    def forward(self, x: Tensor, mask: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        y = self.net(self.motion_images(x, mask)).unsqueeze(2)  # (B, D, 1, h, w)
        out_mask = None if mask is None else mask.any(dim=1, keepdim=True)
        return y, out_mask


class VectorEncoder(nn.Module):
    """Vectors (B, F) -> (B, D)."""

    def __init__(self, in_features: int, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(dim, dim), nn.GELU())

    def forward(self, x: Tensor, mask: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        return self.net(x), None




def build_encoder(spec: ModalitySchema, dim: int, dropout: float, frame_encoder: str = "motion",
                  point_encoder: str = "series", bones: Sequence[Tuple[int, int]] = ()) -> nn.Module:
    """The encoder trunk for a modality kind. ``point_encoder`` picks the trunk of point sequences
    (steps of shape (points, coords)); ``bones`` are their connected point pairs (joint graph)."""
    if spec.kind == "frame_sequence":
        if frame_encoder not in FRAME_ENCODERS:
            raise ValueError(f"unknown frame encoder {frame_encoder!r}; choose one of {', '.join(FRAME_ENCODERS)}")
        if frame_encoder == "motion":
            return MotionFrameEncoder(dim, dropout)
        return FrameEncoder(dim, dropout, differences=frame_encoder == "frame-diffs")
    if spec.kind == "vector":
        return VectorEncoder(spec.num_features, dim, dropout)
    if point_encoder not in POINT_ENCODERS:
        raise ValueError(f"unknown point encoder {point_encoder!r}; choose one of {', '.join(POINT_ENCODERS)}")
    if point_encoder == "joints" and len(spec.step_shape) == 2:
        joints, coords = spec.step_shape
        return JointGraphEncoder(joints, coords, dim, dropout, bones=bones)
    return SeriesEncoder(spec.num_features, dim, dropout)
