"""Data-parallel training across processes (``torchrun --nproc_per_node=N -m precal train ...``).

Why not ``DistributedDataParallel``: it must know before the backward pass which parameters a step
will use, and a calibrated model does not use a fixed set: with one modality the calibrator has no
peer, the auxiliary and gate losses only exist on some steps, and a user's own model may return
tensors the loss never reads. DDP then fails with "Expected to have finished reduction". Averaging
the gradients after ``backward`` has no such precondition: a parameter a rank did not use
contributes a zero gradient. The models trained here are small, so overlapping the reduction with
the backward pass (DDP's gain) does not matter.
"""

from __future__ import annotations

import os
from typing import Tuple

import torch
import torch.distributed as dist
from torch import nn


def process_group() -> Tuple[int, int]:
    """(rank, world size); initialises the gloo process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    if world > 1:
        return dist.get_rank(), world
    return 0, 1


def broadcast_state(model: nn.Module) -> None:
    """Every rank takes rank 0's parameters and buffers (its initial weights, BatchNorm statistics)."""
    if not dist.is_initialized():
        return
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)


def average_gradients(model: nn.Module, world: int) -> None:
    """The mean of every rank's gradient on every rank (a parameter a rank did not use counts as a
    zero gradient there), so that all ranks take the same optimiser step."""
    if world <= 1:
        return
    for param in model.parameters():
        if not param.requires_grad:
            continue
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
        param.grad.div_(world)


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()
