"""Tests for precal.corruptions: the contract the robustness sweep and the dashboard rely on.

Batches use realistic shapes (inertial (B,T,6), skeleton (B,T,20,3), depth frames (B,T,30,40),
token features (B,T,12), a vector (B,8)) with variable lengths, one absent sample per modality and
padded steps filled with a sentinel value, so that any write to padding is visible.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Dict, Iterator, List, Optional, Tuple

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from precal.data.batch import Batch
from precal.data.schema import MODALITY_KINDS
from precal.robustness.corruptions import (CORRUPTIONS, MAX_SEVERITY, Corruption, CorruptionResult, apply_corruption,
                                           corruptions_for, get_corruption, measured_snr_db)


KINDS: Dict[str, str] = {
    "imu": "time_series",
    "skeleton": "time_series",
    "depth": "frame_sequence",
    "text": "token_sequence",
    "meta": "vector",
}
STEP_SHAPES: Dict[str, Tuple[int, ...]] = {
    "imu": (6,), "skeleton": (20, 3), "depth": (30, 40), "text": (12,), "meta": (8,),
}
PAD_VALUE = 7.0
ABSENT_ROW = 1


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tensors here are tiny: on a busy machine intra-op threads cost more than they save."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CASES: List[Tuple[str, str, str]] = [
    (m, k, c.name) for m, k in KINDS.items() for c in corruptions_for(k)
]
CASE_IDS = [f"{m}-{c}" for m, _, c in CASES]
SEQUENCE_CASES = [case for case in CASES if case[1] != "vector"]
SEQUENCE_IDS = [f"{m}-{c}" for m, _, c in SEQUENCE_CASES]


@lru_cache(maxsize=None)
def make_batch(b: int = 10, t: int = 12, seed: int = 0, min_length: int = 1, num_classes: int = 3,
               absent: Tuple[int, ...] = (ABSENT_ROW,), indices: bool = True,
               dtype: torch.dtype = torch.float32) -> Batch:
    """Random normalised-looking data with variable lengths and sentinel padding.

    Cached (building the frames dominates small tests); callers must not modify the result, which
    is also what the purity tests check.
    """
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_length, t + 1, (b,), generator=g)
    lengths[0] = t  # at least one full-length sample
    mask = torch.arange(t)[None, :] < lengths[:, None]
    inputs, pad, present = {}, {}, {}
    for m, kind in KINDS.items():
        shape = STEP_SHAPES[m]
        if kind == "vector":
            inputs[m] = torch.randn(b, *shape, generator=g, dtype=dtype)
        else:
            x = torch.randn(b, t, *shape, generator=g, dtype=dtype)
            view = mask.reshape(b, t, *([1] * len(shape)))
            inputs[m] = torch.where(view, x, torch.full((), PAD_VALUE, dtype=dtype))
            pad[m] = mask.clone()
        p = torch.ones(b, dtype=torch.bool)
        p[[r for r in absent if r < b]] = False
        present[m] = p
    labels = torch.arange(b) % num_classes
    idx = torch.arange(b) + 100 if indices else None
    return Batch(inputs, pad, present, labels, idx)


def clone_batch(batch: Batch) -> Batch:
    def c(d: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in d.items()}

    return Batch(c(batch.inputs), c(batch.padding_mask), c(batch.present),
                 None if batch.labels is None else batch.labels.clone(),
                 None if batch.indices is None else batch.indices.clone())


def assert_batches_equal(a: Batch, b: Batch) -> None:
    assert a.inputs.keys() == b.inputs.keys()
    for k in a.inputs:
        assert torch.equal(a.inputs[k], b.inputs[k]), k
    for k in set(a.padding_mask) | set(b.padding_mask):
        assert torch.equal(a.padding_mask[k], b.padding_mask[k]), k
    for k in set(a.present) | set(b.present):
        assert torch.equal(a.presence(k), b.presence(k)), k
    assert (a.labels is None) == (b.labels is None)
    if a.labels is not None:
        assert torch.equal(a.labels, b.labels)


def corrupt(batch: Batch, case: Tuple[str, str, str], severity: int, seed: int = 0,
            pool: Optional[Batch] = None) -> CorruptionResult:
    m, kind, name = case
    return apply_corruption(batch, m, kind, name, severity, seed, pool=pool)


def real_mask(batch: Batch, m: str) -> torch.Tensor:
    """(B, T) or (B, 1) changeable steps: real steps of present samples."""
    present = batch.presence(m)
    if m in batch.padding_mask:
        return batch.padding_mask[m] & present[:, None]
    return present[:, None]


def view_like(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return mask.reshape(*mask.shape, *([1] * (x.dim() - mask.dim())))


def mse_real(clean: Batch, corrupted: Batch, m: str) -> float:
    """Mean squared change over the real elements of present samples."""
    mask = view_like(real_mask(clean, m), clean.inputs[m]).expand_as(clean.inputs[m])
    diff = (corrupted.inputs[m] - clean.inputs[m])[mask]
    return float(diff.double().pow(2).mean())


# --------------------------------------------------------------------------------------------------
# Registry and labels
# --------------------------------------------------------------------------------------------------


def test_registry_matches_the_documented_suite() -> None:
    names = {k: {c.name for c in corruptions_for(k)} for k in MODALITY_KINDS}
    removal = {"remove_zero", "remove_absent", "swap"}
    streams = {"gaussian_noise", "element_dropout", "temporal_mask", "temporal_shuffle"} | removal
    assert names["time_series"] == streams
    assert names["token_sequence"] == streams
    assert names["frame_sequence"] == {"gaussian_noise", "occlusion", "blur", "frame_drop",
                                       "dead_pixels"} | removal
    assert names["vector"] == {"gaussian_noise", "element_dropout", "feature_scaling"} | removal
    for name, c in CORRUPTIONS.items():
        assert c.name == name and get_corruption(name) is c
        assert len(c.levels) == MAX_SEVERITY
        assert c.title and c.unit and c.description.endswith(".")
        assert set(c.kinds) <= set(MODALITY_KINDS)


def test_level_labels_are_readable() -> None:
    assert get_corruption("gaussian_noise").level_label(3) == "severity 3: 5 dB SNR"
    assert get_corruption("gaussian_noise").level_label(0) == "clean"
    assert get_corruption("element_dropout").level_label(1) == "severity 1: 10% of values"
    assert get_corruption("blur").level_label(5) == "severity 5: 4 px blur sigma"
    assert get_corruption("remove_absent").level_label(2) == "severity 2: on"
    assert get_corruption("gaussian_noise").levels == (20.0, 10.0, 5.0, 0.0, -5.0)
    with pytest.raises(ValueError, match="0"):
        get_corruption("blur").level_label(6)


def test_corruption_rejects_wrong_number_of_levels() -> None:
    with pytest.raises(ValueError, match="5 levels"):
        Corruption("x", "X", "X.", ("vector",), (1.0, 2.0), "u", lambda inp, level: None)


# --------------------------------------------------------------------------------------------------
# Identity, determinism, purity
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_severity_zero_is_identity(case: Tuple[str, str, str]) -> None:
    batch = make_batch()
    result = corrupt(batch, case, 0)
    assert_batches_equal(result.batch, batch)
    assert not result.affected.any()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_same_seed_same_output_other_seed_differs(case: Tuple[str, str, str]) -> None:
    batch = make_batch(b=12)
    a = corrupt(batch, case, 3, seed=5)
    b = corrupt(batch, case, 3, seed=5)
    assert_batches_equal(a.batch, b.batch)
    assert torch.equal(a.affected, b.affected)
    other = corrupt(batch, case, 3, seed=6)
    m = case[0]
    if get_corruption(case[2]).random:
        assert not torch.equal(a.batch.inputs[m], other.batch.inputs[m])
    else:
        assert torch.equal(a.batch.inputs[m], other.batch.inputs[m])


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_inputs_are_never_mutated(case: Tuple[str, str, str]) -> None:
    batch = make_batch()
    before = clone_batch(batch)
    pool = make_batch(b=7, seed=3)
    pool_before = clone_batch(pool)
    for severity in range(MAX_SEVERITY + 1):
        corrupt(batch, case, severity)
        corrupt(batch, case, severity, pool=pool)
    assert_batches_equal(batch, before)
    assert_batches_equal(pool, pool_before)


# --------------------------------------------------------------------------------------------------
# Structure: shapes, dtypes, masks, padding, absent samples
# --------------------------------------------------------------------------------------------------


def check_structure(batch: Batch, result: CorruptionResult, case: Tuple[str, str, str]) -> None:
    m, kind, name = case
    out = result.batch
    x, y = batch.inputs[m], out.inputs[m]
    assert y.shape == x.shape and y.dtype == x.dtype
    assert result.affected.shape == (batch.size,) and result.affected.dtype == torch.bool
    for other in batch.modalities:  # other modalities are the very same tensors
        if other != m:
            assert out.inputs[other] is batch.inputs[other]
    assert out.labels is batch.labels and out.indices is batch.indices

    present = batch.presence(m)
    assert not result.affected[~present].any(), "absent samples are never affected"
    assert torch.equal(y[~present], x[~present]), "absent samples untouched"
    if name == "remove_absent":
        assert not out.presence(m).any()
        assert torch.equal(result.affected, present)
    else:
        assert torch.equal(out.presence(m), present)

    if kind == "vector":
        return
    if name == "swap":
        keep = ~result.affected
        assert torch.equal(out.padding_mask[m][keep], batch.padding_mask[m][keep])
        assert torch.equal(y[keep], x[keep]), "samples that were not swapped are untouched"
        return
    assert torch.equal(out.padding_mask[m], batch.padding_mask[m])
    padded = ~batch.padding_mask[m]
    assert torch.equal(y[padded], x[padded]), "padded steps untouched"
    if padded.any():
        assert bool((y[padded] == PAD_VALUE).all())
    has_real = batch.padding_mask[m].any(dim=1) & present
    if name != "remove_absent":
        assert torch.equal(result.affected, has_real)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_structure_is_preserved(case: Tuple[str, str, str]) -> None:
    batch = make_batch()
    for severity in range(1, MAX_SEVERITY + 1):
        check_structure(batch, corrupt(batch, case, severity), case)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_float64_inputs_stay_float64(case: Tuple[str, str, str]) -> None:
    batch = make_batch(dtype=torch.float64)
    result = corrupt(batch, case, 4)
    assert result.batch.inputs[case[0]].dtype == torch.float64
    check_structure(batch, result, case)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from(CASES),
    b=st.integers(1, 6),
    t=st.integers(1, 9),
    seed=st.integers(0, 2**31),
    severity=st.integers(1, MAX_SEVERITY),
    absent=st.lists(st.integers(0, 5), max_size=3),
    num_classes=st.integers(2, 4),
)
def test_structure_property(case: Tuple[str, str, str], b: int, t: int, seed: int, severity: int,
                            absent: List[int], num_classes: int) -> None:
    batch = make_batch(b=b, t=t, seed=seed % 1000, absent=tuple(absent), num_classes=num_classes)
    before = clone_batch(batch)
    m, kind, name = case
    pool = make_batch(b=6, t=t, seed=seed % 997 + 1, absent=(), num_classes=num_classes)
    result = corrupt(batch, case, severity, seed=seed, pool=pool if name == "swap" else None)
    check_structure(batch, result, case)
    assert_batches_equal(batch, before)
    again = corrupt(batch, case, severity, seed=seed, pool=pool if name == "swap" else None)
    assert_batches_equal(result.batch, again.batch)


# --------------------------------------------------------------------------------------------------
# Severity ordering
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_distortion_grows_with_severity(case: Tuple[str, str, str]) -> None:
    m, kind, name = case
    batch = make_batch(b=20, t=16, min_length=8, seed=1)
    results = [corrupt(batch, case, s, seed=2) for s in range(1, MAX_SEVERITY + 1)]
    mse = [mse_real(batch, r.batch, m) for r in results]
    if name in ("remove_zero", "remove_absent"):
        assert all(math.isclose(v, mse[0]) for v in mse) and mse[0] > 0.5  # on/off: same at 1..5
    elif name == "swap":
        swapped = [int(r.affected.sum()) for r in results]
        assert swapped == sorted(swapped) and swapped[-1] == int(batch.presence(m).sum())
        assert mse == sorted(mse)
    else:
        assert all(a < b for a, b in zip(mse, mse[1:])), mse


@pytest.mark.parametrize("case", [c for c in CASES if c[2] == "gaussian_noise"],
                         ids=[f"{c[0]}" for c in CASES if c[2] == "gaussian_noise"])
def test_noise_reaches_the_target_snr_per_sample(case: Tuple[str, str, str]) -> None:
    m = case[0]
    batch = make_batch(b=16, t=10, seed=4)
    rows = batch.presence(m)
    previous = None
    for severity in range(1, MAX_SEVERITY + 1):
        out = corrupt(batch, case, severity).batch
        snr = measured_snr_db(batch.inputs[m], out.inputs[m], batch.padding_mask.get(m))[rows]
        target = get_corruption("gaussian_noise").level(severity)
        assert torch.allclose(snr, torch.full_like(snr, target), atol=1e-3)
        if previous is not None:
            assert bool((snr < previous).all())
        previous = snr


@settings(max_examples=30, deadline=None)
@given(scale=st.floats(0.01, 100.0), t=st.integers(1, 20), severity=st.integers(1, 5),
       seed=st.integers(0, 10**6))
def test_noise_snr_is_scale_invariant(scale: float, t: int, severity: int, seed: int) -> None:
    batch = make_batch(b=4, t=t, seed=seed % 50, absent=())
    x = batch.inputs["imu"] * scale
    batch = batch.with_modality("imu", values=x)
    out = apply_corruption(batch, "imu", "time_series", "gaussian_noise", severity, seed).batch
    snr = measured_snr_db(x, out.inputs["imu"], batch.padding_mask["imu"])
    target = get_corruption("gaussian_noise").level(severity)
    assert torch.allclose(snr, torch.full_like(snr, target), atol=1e-2)


def test_measured_snr_db() -> None:
    clean = torch.ones(2, 3, 4)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    noisy = clean + 0.1
    noisy[1, 1:] = 99.0  # padding is ignored
    assert torch.allclose(measured_snr_db(clean, noisy, mask), torch.tensor([20.0, 20.0], dtype=torch.float64))
    assert torch.isinf(measured_snr_db(clean, clean.clone(), mask)).all()
    assert torch.allclose(measured_snr_db(torch.ones(2, 5), torch.ones(2, 5) * 1.1),
                          torch.full((2,), 20.0, dtype=torch.float64))


# --------------------------------------------------------------------------------------------------
# Specific semantics
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", list(KINDS))
def test_removal_semantics(m: str) -> None:
    batch = make_batch()
    kind = KINDS[m]
    real = view_like(real_mask(batch, m), batch.inputs[m]).expand_as(batch.inputs[m])
    zero = apply_corruption(batch, m, kind, "remove_zero", 1, 0)
    assert torch.equal(zero.batch.presence(m), batch.presence(m))
    assert bool((zero.batch.inputs[m][real] == 0).all())
    gone = apply_corruption(batch, m, kind, "remove_absent", 1, 0)
    assert not gone.batch.presence(m).any()
    assert bool((gone.batch.inputs[m][real] == 0).all())
    assert torch.equal(gone.affected, batch.presence(m))
    for other in batch.modalities:
        if other != m:
            assert torch.equal(gone.batch.presence(other), batch.presence(other))


def test_remove_absent_works_without_a_presence_entry() -> None:
    batch = clone_batch(make_batch())
    batch.present.pop("meta")
    out = apply_corruption(batch, "meta", "vector", "remove_absent", 3, 0).batch
    assert not out.presence("meta").any()
    assert "meta" not in batch.present


def test_temporal_mask_blanks_one_contiguous_block() -> None:
    batch = make_batch(b=8, t=20, min_length=10, absent=())
    out = apply_corruption(batch, "imu", "time_series", "temporal_mask", 3, 0).batch
    zero_steps = (out.inputs["imu"] == 0).all(dim=2)
    for row in range(8):
        steps = torch.nonzero(zero_steps[row]).squeeze(1)
        length = int(batch.padding_mask["imu"][row].sum())
        assert len(steps) == max(1, round(0.4 * length))
        assert int(steps[-1] - steps[0]) + 1 == len(steps)  # contiguous


def test_temporal_shuffle_keeps_the_values_of_each_sample() -> None:
    batch = make_batch(b=6, t=15, absent=())
    out = apply_corruption(batch, "skeleton", "time_series", "temporal_shuffle", 5, 0).batch
    x, y = batch.inputs["skeleton"], out.inputs["skeleton"]
    for row in range(6):
        length = int(batch.padding_mask["skeleton"][row].sum())
        before = sorted(map(tuple, x[row, :length].reshape(length, -1).tolist()))
        after = sorted(map(tuple, y[row, :length].reshape(length, -1).tolist()))
        assert before == after
        if length >= 2:  # severity 5 moves every real step
            assert not (x[row, :length] == y[row, :length]).reshape(length, -1).all(dim=1).any()


def test_temporal_shuffle_moves_steps_even_at_severity_one() -> None:
    batch = make_batch(b=12, t=6, min_length=2, absent=())
    out = apply_corruption(batch, "imu", "time_series", "temporal_shuffle", 1, 0).batch
    moved = (out.inputs["imu"] != batch.inputs["imu"]).any(dim=2).sum(dim=1)
    assert bool((moved == 2).all())  # 10% of <= 6 steps rounds to 0: still one swapped pair


def test_frame_drop_repeats_earlier_frames_and_keeps_the_first() -> None:
    batch = make_batch(b=6, t=16, min_length=6, absent=())
    out = apply_corruption(batch, "depth", "frame_sequence", "frame_drop", 4, 0).batch
    x, y = batch.inputs["depth"], out.inputs["depth"]
    for row in range(6):
        length = int(batch.padding_mask["depth"][row].sum())
        assert torch.equal(y[row, 0], x[row, 0])
        for t in range(1, length):
            assert torch.equal(y[row, t], x[row, t]) or torch.equal(y[row, t], y[row, t - 1])
        frozen = sum(not torch.equal(y[row, t], x[row, t]) for t in range(length))
        assert frozen == min(round(0.6 * length), length - 1)


def test_occlusion_and_dead_pixels_use_the_sample_extremes_in_every_frame() -> None:
    batch = make_batch(b=4, t=8, absent=())
    x = batch.inputs["depth"]
    real = view_like(batch.padding_mask["depth"], x).expand_as(x)
    occ = apply_corruption(batch, "depth", "frame_sequence", "occlusion", 3, 0).batch.inputs["depth"]
    dead = apply_corruption(batch, "depth", "frame_sequence", "dead_pixels", 4, 0).batch.inputs["depth"]
    for row in range(4):
        lo = x[row][real[row]].min()
        hi = x[row][real[row]].max()
        changed = (occ[row] != x[row])[0]
        assert bool((occ[row, 0][changed] == lo).all())
        side = round(0.3 * 30)
        assert int(((occ[row, 0] == lo).sum(dim=0) > 0).sum()) >= side - 1  # square patch columns
        stuck = (dead[row, 0] != x[row, 0])
        assert bool(((dead[row, 0][stuck] == lo) | (dead[row, 0][stuck] == hi)).all())
        length = int(batch.padding_mask["depth"][row].sum())
        for t in range(length):  # same positions and values in every real frame
            assert torch.equal(occ[row, t][changed], occ[row, 0][changed])
            assert torch.equal(dead[row, t][stuck], dead[row, 0][stuck])


def test_blur_preserves_the_mean_of_a_constant_frame() -> None:
    batch = make_batch(b=2, t=3, absent=())
    const = torch.full_like(batch.inputs["depth"], 2.5)
    batch = batch.with_modality("depth", values=const)
    out = apply_corruption(batch, "depth", "frame_sequence", "blur", 5, 0).batch
    assert torch.allclose(out.inputs["depth"], const, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# Swap
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", list(KINDS))
@pytest.mark.parametrize("external_pool", [False, True])
def test_swap_uses_different_class_donors_and_their_masks(m: str, external_pool: bool) -> None:
    batch = make_batch(b=20, seed=8)
    pool = make_batch(b=9, seed=9, absent=(2, 5)) if external_pool else batch
    result = apply_corruption(batch, m, KINDS[m], "swap", 3, 0, pool=pool if external_pool else None)
    donors = result.donor_rows
    assert donors is not None and torch.equal(result.affected, donors >= 0)
    assert 0 < int(result.affected.sum()) < int(batch.presence(m).sum())
    out = result.batch
    for row in torch.nonzero(result.affected).squeeze(1).tolist():
        d = int(donors[row])
        assert pool.labels[d] != batch.labels[row]
        assert bool(pool.presence(m)[d])
        assert torch.equal(out.inputs[m][row], pool.inputs[m][d])
        if m in batch.padding_mask:
            assert torch.equal(out.padding_mask[m][row], pool.padding_mask[m][d])
    assert not result.affected[~batch.presence(m)].any()


def test_swap_at_full_severity_swaps_every_present_sample() -> None:
    batch = make_batch(b=15)
    result = apply_corruption(batch, "imu", "time_series", "swap", 5, 3)
    assert torch.equal(result.affected, batch.presence("imu"))


def test_swap_with_regression_targets_changes_sign_or_median_side() -> None:
    batch = make_batch(b=16, absent=())
    signed = torch.linspace(-3, 3, 16)
    result = apply_corruption(Batch(batch.inputs, batch.padding_mask, batch.present, signed, batch.indices),
                              "text", "token_sequence", "swap", 5, 0)
    donors = result.donor_rows
    assert bool(((signed >= 0) != (signed[donors] >= 0)).all())
    positive = torch.linspace(1, 10, 16)
    result = apply_corruption(Batch(batch.inputs, batch.padding_mask, batch.present, positive, batch.indices),
                              "meta", "vector", "swap", 5, 0)
    median = positive.median()
    assert bool(((positive > median) != (positive[result.donor_rows] > median)).all())


def test_swap_errors_are_explained() -> None:
    batch = make_batch(num_classes=1)
    with pytest.raises(ValueError, match="different class"):
        apply_corruption(batch, "imu", "time_series", "swap", 5, 0)
    unlabelled = Batch(batch.inputs, batch.padding_mask, batch.present, None, batch.indices)
    with pytest.raises(ValueError, match="labels"):
        apply_corruption(unlabelled, "imu", "time_series", "swap", 2, 0)
    shorter = make_batch(t=5)
    with pytest.raises(ValueError, match="same length"):
        apply_corruption(make_batch(), "imu", "time_series", "swap", 2, 0, pool=shorter)


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("severity", [-1, 6, 2.5, True, "3", None])
def test_bad_severity_is_a_readable_value_error(severity: object) -> None:
    with pytest.raises(ValueError, match=r"0 \(clean\) to 5"):
        apply_corruption(make_batch(), "imu", "time_series", "gaussian_noise", severity, 0)  # type: ignore[arg-type]


def test_numpy_integer_severity_is_accepted() -> None:
    np = pytest.importorskip("numpy")
    batch = make_batch()
    a = apply_corruption(batch, "imu", "time_series", "gaussian_noise", np.int64(2), 0)
    b = apply_corruption(batch, "imu", "time_series", "gaussian_noise", 2, 0)
    assert_batches_equal(a.batch, b.batch)


def test_unknown_names_list_the_valid_options() -> None:
    batch = make_batch()
    with pytest.raises(ValueError) as err:
        apply_corruption(batch, "imu", "time_series", "gausian_noise", 1, 0)
    for c in corruptions_for("time_series"):
        assert c.name in str(err.value)
    with pytest.raises(ValueError, match="does not apply to time_series") as err:
        apply_corruption(batch, "imu", "time_series", "blur", 1, 0)
    assert "temporal_shuffle" in str(err.value) and "occlusion" not in str(err.value)
    with pytest.raises(ValueError, match="feature_scaling, remove_zero, remove_absent, swap"):
        apply_corruption(batch, "meta", "vector", "temporal_mask", 1, 0)
    with pytest.raises(KeyError, match="imu.*skeleton.*depth"):
        apply_corruption(batch, "audio", "time_series", "gaussian_noise", 1, 0)
    with pytest.raises(ValueError, match="frame_sequence"):
        apply_corruption(batch, "imu", "image", "gaussian_noise", 1, 0)
    with pytest.raises(ValueError, match="frame_sequence"):
        corruptions_for("images")
    with pytest.raises(ValueError, match="gaussian_noise"):
        get_corruption("nope")
    with pytest.raises(ValueError, match=r"\(B, T, H, W\)"):
        apply_corruption(batch, "imu", "frame_sequence", "blur", 1, 0)


def test_names_are_checked_even_at_severity_zero() -> None:
    with pytest.raises(ValueError):
        apply_corruption(make_batch(), "imu", "time_series", "blur", 0, 0)


# --------------------------------------------------------------------------------------------------
# Sample-keyed randomness: one sample alone == the same sample in a sweep
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_single_sample_matches_the_batch(case: Tuple[str, str, str]) -> None:
    m, kind, name = case
    batch = make_batch(b=12, seed=2)
    full = corrupt(batch, case, 4, seed=11)
    for row in (0, ABSENT_ROW, 7):
        alone = corrupt(batch.select([row]), case, 4, seed=11, pool=batch if name == "swap" else None)
        assert torch.equal(alone.batch.inputs[m][0], full.batch.inputs[m][row])
        assert bool(alone.affected[0]) == bool(full.affected[row])
        if m in batch.padding_mask:
            assert torch.equal(alone.batch.padding_mask[m][0], full.batch.padding_mask[m][row])


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_row_order_does_not_matter(case: Tuple[str, str, str]) -> None:
    m, _, name = case
    batch = make_batch(b=10, seed=3)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    pool = batch if name == "swap" else None
    a = corrupt(batch, case, 3, seed=1, pool=pool)
    b = corrupt(batch.select(perm), case, 3, seed=1, pool=pool)
    assert torch.equal(a.batch.inputs[m][perm], b.batch.inputs[m])
    assert torch.equal(a.affected[perm], b.affected)


@pytest.mark.parametrize("case", SEQUENCE_CASES, ids=SEQUENCE_IDS)
def test_extra_padding_does_not_change_the_real_steps(case: Tuple[str, str, str]) -> None:
    m, _, name = case
    batch = make_batch(b=8, t=10, seed=5)
    x = batch.inputs[m]
    extra = torch.full((x.shape[0], 4, *x.shape[2:]), PAD_VALUE)
    longer = batch.with_modality(m, values=torch.cat([x, extra], dim=1),
                                 padding_mask=torch.cat([batch.padding_mask[m],
                                                         torch.zeros(8, 4, dtype=torch.bool)], dim=1))
    a = corrupt(batch, case, 3, seed=4)
    b = corrupt(longer, case, 3, seed=4)
    assert torch.equal(b.batch.inputs[m][:, :10], a.batch.inputs[m])


def test_without_indices_rows_key_the_randomness() -> None:
    batch = make_batch(indices=False)
    a = apply_corruption(batch, "imu", "time_series", "element_dropout", 3, 0)
    b = apply_corruption(batch, "imu", "time_series", "element_dropout", 3, 0)
    assert_batches_equal(a.batch, b.batch)
    assert not torch.equal(a.batch.inputs["imu"], batch.inputs["imu"])


def test_different_samples_get_different_noise() -> None:
    batch = make_batch(b=40, t=8, absent=())
    x = torch.ones_like(batch.inputs["text"])
    batch = batch.with_modality("text", values=x)
    noise = apply_corruption(batch, "text", "token_sequence", "gaussian_noise", 2, 0).batch.inputs["text"] - x
    first_steps = noise[:, 0].reshape(40, -1)
    assert len({tuple(row.tolist()) for row in first_steps}) == 40
    corr = torch.corrcoef(first_steps)
    off_diagonal = corr[~torch.eye(40, dtype=torch.bool)]
    assert float(off_diagonal.abs().max()) < 0.9


# --------------------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("b,t", [(0, 5), (3, 0), (2, 1)])
def test_degenerate_shapes_and_missing_masks(b: int, t: int) -> None:
    """Empty batches, empty sequences, and batches that omit padding/presence entries."""
    batch = Batch({"imu": torch.randn(b, t, 4), "depth": torch.randn(b, t, 5, 6), "meta": torch.randn(b, 3)},
                  labels=torch.arange(b) % 2)
    kinds = {"imu": "time_series", "depth": "frame_sequence", "meta": "vector"}
    for m, kind in kinds.items():
        for c in corruptions_for(kind):
            result = apply_corruption(batch, m, kind, c.name, 5, 1)
            assert result.batch.inputs[m].shape == batch.inputs[m].shape
            assert result.affected.shape == (b,)


def test_higher_severity_damages_a_superset() -> None:
    batch = make_batch(b=8, t=12, absent=())
    x = batch.inputs["text"]
    previous = torch.zeros_like(x, dtype=torch.bool)
    for severity in range(1, MAX_SEVERITY + 1):
        out = apply_corruption(batch, "text", "token_sequence", "element_dropout", severity, 3).batch
        dropped = (out.inputs["text"] == 0) & (x != 0)
        assert bool((dropped | ~previous).all())
        previous = dropped


# --------------------------------------------------------------------------------------------------
# Vector modalities (pre-extracted features)
# --------------------------------------------------------------------------------------------------


def _vector_batch(b: int = 8, f: int = 64) -> Batch:
    g = torch.Generator().manual_seed(5)
    present = torch.ones(b, dtype=torch.bool)
    present[3] = False
    values = torch.randn(b, f, generator=g) * torch.linspace(0.5, 2.0, b)[:, None]
    values[3] = 0.0
    return Batch({"v": values}, present={"v": present}, labels=torch.arange(b) % 4, indices=torch.arange(b))


@pytest.mark.parametrize("name", ["gaussian_noise", "element_dropout", "feature_scaling"])
def test_vector_corruptions_change_present_vectors_more_with_severity(name: str) -> None:
    batch = _vector_batch()
    x = batch.inputs["v"]
    damage = []
    for severity in range(MAX_SEVERITY + 1):
        out = apply_corruption(batch, "v", "vector", name, severity, seed=1).batch.inputs["v"]
        assert out.shape == x.shape
        assert torch.equal(out[3], x[3])  # the absent sample is untouched
        damage.append(float((out - x).pow(2).mean()))
    assert damage[0] == 0.0
    assert all(a < b for a, b in zip(damage, damage[1:])), damage


def test_vector_noise_meets_its_snr_label_and_gain_errors_stay_within_their_bound() -> None:
    batch = _vector_batch(f=256)
    x = batch.inputs["v"]
    noisy = apply_corruption(batch, "v", "vector", "gaussian_noise", 3, seed=2).batch.inputs["v"]
    for row in (0, 5):  # exact per-sample scaling: the label (5 dB) is the realised SNR
        snr = 10 * torch.log10(x[row].pow(2).mean() / (noisy[row] - x[row]).pow(2).mean())
        assert float(snr) == pytest.approx(5.0, abs=1e-3)
    scaled = apply_corruption(batch, "v", "vector", "feature_scaling", 2, seed=2).batch.inputs["v"]
    ratio = (scaled[0] / x[0]).abs()
    assert float(ratio.min()) >= 0.75 - 1e-6 and float(ratio.max()) <= 1.25 + 1e-6  # 25% gain error
    assert float(ratio.max()) > 1.2 and float(ratio.min()) < 0.8  # and it uses the range
    assert get_corruption("feature_scaling").level_label(2) == "severity 2: 25% gain error"
