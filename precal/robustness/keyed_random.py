"""Sample-keyed randomness for the corruptions: a sample gets the same random numbers alone or inside
any batch (see :mod:`precal.robustness.corruptions` for why)."""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from typing import Tuple

import torch
from torch import Tensor


# --------------------------------------------------------------------------------------------------
# Sample-keyed randomness
# --------------------------------------------------------------------------------------------------

_OFFSETS = 1 << 18
"""Distinct window offsets per random stream: two samples share a window with chance 1/2**18."""
_CHUNK = 1 << 16
"""Tapes are built from fixed-size chunks so that a tape's content never depends on its length."""
_MASK32 = 0xFFFFFFFF


def _stable_key(*parts: object) -> int:
    """A 63-bit seed from any parts, identical across processes (unlike the salted ``hash``)."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _mul32(x: Tensor, c: int) -> Tensor:
    """``x * c mod 2**32`` for int64 tensors holding 32-bit values, without int64 overflow."""
    lo = x & 0xFFFF
    hi = x >> 16
    return (lo * c + (((hi * c) & 0xFFFF) << 16)) & _MASK32


def _hash32(x: Tensor) -> Tensor:
    """Chris Wellons' ``lowbias32`` integer hash on int64 tensors holding 32-bit values."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _sample_offsets(sample_ids: Tensor, key: int) -> Tensor:
    """(B,) window offsets in [0, _OFFSETS): a stable hash of (stream key, sample id)."""
    ids = sample_ids.to(torch.int64).cpu()
    x = _hash32((ids & _MASK32) ^ (key & _MASK32))
    x = _hash32(x ^ ((ids >> 32) & _MASK32) ^ ((key >> 32) & _MASK32))
    return x & (_OFFSETS - 1)


def _tape_chunk(key: int, chunk: int, normal: bool) -> Tensor:
    """One fixed-size chunk of a random tape, seeded from (stream key, chunk number) alone."""
    gen = torch.Generator()
    gen.manual_seed(_stable_key(key, chunk))
    make = torch.randn if normal else torch.rand
    return make(_CHUNK, generator=gen)


@lru_cache(maxsize=32)
def _tape(key: int, chunks: int, normal: bool) -> Tensor:
    """A random tape of ``chunks`` chunks (cached, about 1 MB each: the dashboard re-corrupts with
    the same seed often, and a sweep reuses each stream for all five severities). Never mutated."""
    return torch.cat([_tape_chunk(key, c, normal) for c in range(chunks)])


class KeyedRandom:
    """Random fields keyed by (seed, corruption, modality, purpose, sample id).

    ``uniform``/``normal`` return (B, *shape) float32 tensors on ``device`` in which row ``i`` is a
    function of ``sample_ids[i]`` only, and element order is row-major over ``shape`` (so a field
    with more leading time steps extends, rather than changes, a shorter one).
    """

    def __init__(self, seed: int, corruption: str, modality: str, sample_ids: Tensor,
                 device: torch.device) -> None:
        self.seed = int(seed)
        self.corruption = corruption
        self.modality = modality
        self.sample_ids = sample_ids
        self.device = device

    def uniform(self, purpose: str, shape: Tuple[int, ...] = ()) -> Tensor:
        """Uniform [0, 1) per sample and element."""
        return self._field(purpose, tuple(shape), normal=False)

    def normal(self, purpose: str, shape: Tuple[int, ...] = ()) -> Tensor:
        """Standard normal per sample and element."""
        return self._field(purpose, tuple(shape), normal=True)

    def _field(self, purpose: str, shape: Tuple[int, ...], normal: bool) -> Tensor:
        b = int(self.sample_ids.shape[0])
        n = math.prod(shape)
        if n == 0 or b == 0:
            return torch.zeros((b, *shape), device=self.device)
        key = _stable_key(self.seed, self.corruption, self.modality, purpose, normal)
        tape = _tape(key, -(-(_OFFSETS + n - 1) // _CHUNK), normal)
        windows = tape.unfold(0, n, 1)  # view: window j is tape[j : j + n]
        return windows[_sample_offsets(self.sample_ids, key)].reshape(b, *shape).to(self.device)
