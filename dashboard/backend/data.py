"""A split of the data as full batches, preprocessed as each checkpoint of a pair was trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np

from precal.checkpoint import Checkpoint
from precal.dashboard.backend.pairs import ModelPair
from precal.data.batch import Batch
from precal.data.storage import MultimodalData
from precal.evaluation import dataset_for
from precal.robustness.engine import marked_corrupted


@dataclass
class SplitBatches:
    """One split preprocessed for each checkpoint of a pair (shared when preprocessing agrees)."""

    split: str
    indices: np.ndarray  # (N,) positions in the data set, row order of every batch
    batches: Dict[str, Batch]  # checkpoint path -> full split batch
    marked: Optional[np.ndarray] = None  # (N,) rows the data's recorded truth marks corrupted (None: no truth)

    def batch_for(self, ckpt: Checkpoint) -> Batch:
        return self.batches[str(ckpt.path)]

    @property
    def size(self) -> int:
        return int(len(self.indices))


def data_mtime(path: Path) -> int:
    """When a data folder's arrays last changed: part of every cache key of numbers computed from
    it (0 when unreadable, which no real folder has)."""
    try:
        return (Path(path) / "data.npz").stat().st_mtime_ns
    except OSError:
        return 0


def split_batches(pair: ModelPair, data: MultimodalData, split: str) -> SplitBatches:
    """The split as full batches, preprocessed as each checkpoint's training data was."""
    batches: Dict[str, Batch] = {}
    by_config: Dict[str, Batch] = {}
    for ckpt in pair.checkpoints:
        key = json.dumps([ckpt.preprocessor.to_json(), list(ckpt.model.modalities)], sort_keys=True)
        if key not in by_config:
            by_config[key] = dataset_for(ckpt, data, split).full_batch()
        batches[str(ckpt.path)] = by_config[key]
    first = next(iter(batches.values()))
    indices = first.indices.numpy() if first.indices is not None else np.asarray(data.split(split))
    return SplitBatches(split, indices, batches, marked_corrupted(data.truth, indices))


def row_of(splits: SplitBatches, index: int) -> int:
    """Row of data-set position ``index`` in the split batches."""
    hits = np.nonzero(splits.indices == index)[0]
    if len(hits) == 0:
        raise KeyError(f"sample {index} is not in split {splits.split!r}")
    return int(hits[0])


def varying_groups(groups: Mapping[str, np.ndarray], rows: np.ndarray) -> List[str]:
    """The data's groups that take more than one value on these rows: a colouring or a slice by a
    group with a single value on the split shows nothing."""
    return [name for name, values in groups.items() if len(np.unique(np.asarray(values)[rows].astype(str))) > 1]
