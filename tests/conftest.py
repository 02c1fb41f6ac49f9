"""Shared test settings.

The tests use tiny tensors: intra-op parallelism only adds overhead there, and on a busy 2-core
machine two OpenMP threads per process thrash (measured: a training step 30x slower than with one).
"""

import torch

torch.set_num_threads(1)
