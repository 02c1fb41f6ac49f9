"""Input representation: the motion-energy frame trunk, skeleton centring and body-size scaling.

These are what make UTD-MHAD transfer across subjects, so their contracts matter: motion images
must see only motion (and its order in time), padding must change nothing, and centring must remove
where a subject stands while keeping how the body moves.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from precal.cli import main as cli_main
from precal.dashboard.backend.inputs import geometry_note, model_input_unit, root_point_name
from precal.data.batch import Batch
from precal.data.dataset import MultimodalDataset, Preprocessor, centre_on_root, scale_by_segment
from precal.data.schema import DatasetSchema, ModalitySchema
from precal.data.storage import MultimodalData, build_ragged
from precal.models import ModelConfig, MultimodalModel
from precal.models.encoders import FRAME_ENCODERS, FrameEncoder, MotionFrameEncoder, build_encoder, segment_weights
from precal.training.loop import TrainConfig, root_indices, segment_indices, train

UTD = Path(__file__).resolve().parents[2] / "sample_data" / "utd_mhad"


# ---------------------------------------------------------------------------------------------
# motion-energy trunk
# ---------------------------------------------------------------------------------------------


def test_segment_weights_average_each_samples_own_valid_steps():
    mask = torch.arange(8)[None, :] < torch.tensor([8, 4])[:, None]
    w = segment_weights(mask, 2, 8, 4, torch.device("cpu"))
    assert w.shape == (2, 8, 4)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(2, 4))  # every segment is an average
    assert (w[1, 4:] == 0).all()  # padded steps carry no weight
    # the short sample's 4 valid steps fall one per segment, in order
    torch.testing.assert_close(w[1, :4], torch.eye(4))


def test_a_hole_in_the_mask_is_skipped_not_counted():
    """Padding need not be a suffix (e.g. after a frame-drop corruption): a masked-out frame in the
    middle weighs nothing, and the real frames are averaged as if it were not there."""
    enc = MotionFrameEncoder(dim=8)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 6, 12, 16, generator=g)
    mask = torch.tensor([[True, False, True, True, True, True]])
    holed = x.clone()
    holed[0, 1] = 1e4
    images = enc.motion_images(holed, mask)
    torch.testing.assert_close(images[0, -1], x[0, [0, 2, 3, 4, 5]].mean(dim=0))
    assert images.abs().max() < 10  # nothing of the masked frame leaks into the motion channels
    w = segment_weights(mask, 1, 6, 5, torch.device("cpu"))
    assert (w[0, 1] == 0).all() and torch.equal(w[0, [0, 2, 3, 4, 5]], torch.eye(5))


def test_static_clip_has_no_motion_and_its_mean_frame_is_the_frame():
    enc = MotionFrameEncoder(dim=8)
    frame = torch.rand(1, 1, 12, 16)
    images = enc.motion_images(frame.expand(1, 6, 12, 16), None)
    assert images.shape == (1, enc.segments + 1, 12, 16)
    assert images[:, : enc.segments].abs().max() == 0
    torch.testing.assert_close(images[0, -1], frame[0, 0])


def test_motion_images_keep_when_something_moved():
    """A change between the last two of 9 frames shows in the last segment's channel only."""
    enc = MotionFrameEncoder(dim=8, segments=4)
    x = torch.zeros(1, 9, 12, 16)
    x[0, 8, 3:6, 4:8] = 1.0
    motion = enc.motion_images(x, None)[0, :4].abs().sum(dim=(1, 2))
    assert motion[3] > 0 and motion[:3].abs().max() == 0


def test_motion_trunk_ignores_padded_frames_and_one_frame_clips_stay_finite():
    enc = MotionFrameEncoder(dim=8).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 7, 12, 16, generator=g)
    mask = torch.arange(7)[None, :] < torch.tensor([7, 3, 1])[:, None]
    garbage = x.clone()
    garbage[~mask] = torch.randn(garbage[~mask].shape, generator=g) * 1e4
    with torch.no_grad():
        (y1, m1), (y2, m2) = enc(x, mask), enc(garbage, mask)
    assert y1.shape == (3, 8, 1, 3, 4) and m1.tolist() == [[True]] * 3
    torch.testing.assert_close(y2, y1)
    assert torch.equal(m2, m1)
    assert torch.isfinite(y1).all()


@pytest.mark.parametrize("name, cls", [("motion", MotionFrameEncoder), ("frames", FrameEncoder)])
def test_build_encoder_picks_the_frame_trunk(name, cls):
    assert isinstance(build_encoder(ModalitySchema("depth", "frame_sequence", (12, 16)), 8, 0.1, name), cls)


def test_unknown_frame_encoder_is_a_clear_error():
    with pytest.raises(ValueError, match="motion, frames"):
        build_encoder(ModalitySchema("depth", "frame_sequence", (12, 16)), 8, 0.1, "optical_flow")
    with pytest.raises(ValueError, match="optical_flow"):
        ModelConfig(frame_encoder="optical_flow")


def test_frame_differences_channel_shows_change_and_ignores_padding():
    enc = FrameEncoder(dim=8, differences=True).eval()
    x = torch.rand(2, 5, 12, 16)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    frames = enc.frame_inputs(x, mask)
    assert frames.shape == (2, 5, 2, 12, 16)
    torch.testing.assert_close(frames[:, :, 0], x)  # the frames themselves
    assert (frames[:, 0, 1] == 0).all()  # nothing before the first frame
    torch.testing.assert_close(frames[0, 1:, 1], x[0, 1:] - x[0, :-1])
    assert (frames[1, 3:, 1] == 0).all()  # padding contributes no change
    # a still clip has a blank difference channel, whatever it shows
    still = x[:, :1].expand(2, 5, 12, 16)
    assert (enc.frame_inputs(still, None)[:, :, 1] == 0).all()
    # padding changes nothing in the real steps' features
    with torch.no_grad():
        padded = x.clone()
        padded[1, 3:] = 7.0
        a, _ = enc(x, mask)
        b, _ = enc(padded, mask)
    torch.testing.assert_close(a[1, :, :3], b[1, :, :3])


def test_cli_frame_encoder_choices_are_the_models():
    from precal.cli import build_parser

    action = next(a for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions
                  if "--frame-encoder" in a.option_strings)
    assert tuple(action.choices) == FRAME_ENCODERS


def test_cli_input_options_reach_the_stored_config(tmp_path: Path):
    out = tmp_path / "ck"
    assert cli_main(["train", "--data", str(UTD), "--modalities", "inertial", "--length", "inertial=16",
                     "--epochs", "1", "--dim", "8", "--frame-encoder", "frames", "--cue-gradient", "off",
                     "--centre", "skeleton=hip_center", "--out", str(out), "--quiet"]) == 0
    stored = json.loads((out / "config.json").read_text())
    assert stored["model"]["frame_encoder"] == "frames" and stored["model"]["cue_gradient"] is False
    assert stored["training"]["centre"] == {"skeleton": "hip_center"}


def test_configs_written_before_the_motion_trunk_load_as_per_frame_trunk():
    """Checkpoints from before the option keep loading with the trunk they were trained with."""
    old = ModelConfig(backbone="conv").to_json()
    del old["frame_encoder"]
    assert ModelConfig.from_json(old).frame_encoder == "frames"
    assert ModelConfig.from_json(ModelConfig(backbone="conv").to_json()).frame_encoder == "motion"


@pytest.mark.parametrize("frame_encoder", FRAME_ENCODERS)
@pytest.mark.parametrize("backbone", ["sequence", "conv", "late"])
def test_both_frame_trunks_fit_every_backbone(backbone, frame_encoder):
    schema = DatasetSchema("toy", (ModalitySchema("acc", "time_series", (3,)),
                                   ModalitySchema("depth", "frame_sequence", (12, 16))), class_names=("a", "b"))
    model = MultimodalModel(schema, ModelConfig(backbone=backbone, dim=16, shared_dim=8, fusion_layers=1,
                                                heads=2, head_hidden=16, frame_encoder=frame_encoder)).eval()
    batch = Batch({"acc": torch.randn(2, 10, 3), "depth": torch.rand(2, 5, 12, 16)}, labels=torch.tensor([0, 1]))
    with torch.no_grad():
        out = model(batch)
    assert out.logits.shape == (2, 2) and torch.isfinite(out.logits).all()


# ---------------------------------------------------------------------------------------------
# skeleton centring
# ---------------------------------------------------------------------------------------------


def _points(rng: np.random.Generator, t: int) -> np.ndarray:
    return rng.normal(size=(t, 4, 3)).astype(np.float32)


def test_centring_puts_the_first_root_at_the_origin_and_keeps_body_motion():
    seq = _points(np.random.default_rng(0), 5)
    out = centre_on_root(seq, 2)
    np.testing.assert_allclose(out[0, 2], 0.0, atol=1e-7)
    # differences between steps (how the body moves) are unchanged
    np.testing.assert_allclose(np.diff(out, axis=0), np.diff(seq, axis=0), atol=1e-6)
    assert centre_on_root(seq[:0], 2).shape == (0, 4, 3)


def _point_data(offsets: np.ndarray) -> MultimodalData:
    rng = np.random.default_rng(1)
    skel = [_points(rng, 6) + offsets[i] for i in range(len(offsets))]
    schema = DatasetSchema("toy", (ModalitySchema("skel", "time_series", (4, 3)),
                                   ModalitySchema("acc", "time_series", (2,))),
                           class_names=("a", "b"), extra={"joint_names": ["head", "neck", "hip", "foot"]})
    acc = [rng.normal(size=(6, 2)).astype(np.float32) for _ in offsets]
    return MultimodalData(schema, np.array([f"s{i}" for i in range(len(offsets))]),
                          np.arange(len(offsets)) % 2,
                          {"skel": build_ragged(skel, (4, 3), np.float32), "acc": build_ragged(acc, (2,), np.float32)},
                          {"train": np.arange(len(offsets))})


def test_centred_preprocessing_is_blind_to_where_the_subject_stands():
    near = _point_data(np.zeros((4, 1, 1, 3), np.float32))
    far = _point_data(np.random.default_rng(5).normal(scale=3.0, size=(4, 1, 1, 3)).astype(np.float32))
    batches = []
    for data in (near, far):
        pre = Preprocessor(centre={"skel": 2}).fit(data, data.split("train"))
        batches.append(MultimodalDataset(data, range(4), pre).full_batch())
    torch.testing.assert_close(batches[1].inputs["skel"], batches[0].inputs["skel"], rtol=1e-4, atol=1e-4)
    # without centring the position is visible to the model
    raw = [MultimodalDataset(d, range(4), Preprocessor().fit(d, d.split("train"))).full_batch() for d in (near, far)]
    assert not torch.allclose(raw[0].inputs["skel"], raw[1].inputs["skel"], atol=1e-2)


def test_preprocessor_json_round_trip_keeps_centring():
    data = _point_data(np.zeros((4, 1, 1, 3), np.float32))
    pre = Preprocessor(centre={"skel": 2}).fit(data, data.split("train"))
    back = Preprocessor.from_json(json.loads(json.dumps(pre.to_json())))
    assert back.centre == {"skel": 2}
    assert Preprocessor.from_json({"lengths": {}}).centre == {}  # stored before centring existed


def test_root_indices_resolve_names_and_explain_mistakes():
    schema = _point_data(np.zeros((2, 1, 1, 3), np.float32)).schema
    assert root_indices(schema, {"skel": "hip"}) == {"skel": 2}
    with pytest.raises(ValueError, match="sonar"):
        root_indices(schema, {"sonar": "hip"})
    with pytest.raises(ValueError, match="only point sequences"):
        root_indices(schema, {"acc": "hip"})
    with pytest.raises(ValueError, match="head, neck, hip, foot"):
        root_indices(schema, {"skel": "pelvis"})


def test_cli_centre_errors_are_one_line(tmp_path: Path, capsys):
    assert cli_main(["train", "--data", str(UTD), "--centre", "skeleton", "--out", str(tmp_path / "x")]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    assert cli_main(["train", "--data", str(UTD), "--centre", "skeleton=pelvis", "--epochs", "1", "--quiet",
                     "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "pelvis" in err and "hip_center" in err and not (tmp_path / "x").exists()


def test_training_with_centring_stores_it_in_the_checkpoint(tmp_path: Path):
    cfg = TrainConfig(data=str(UTD), modalities=["skeleton"], lengths={"skeleton": 16}, epochs=1, dim=8,
                      centre={"skeleton": "hip_center"}, backbone="late", calibration=False)
    result = train(cfg, out=tmp_path / "ck", progress=False)
    stored = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert stored["preprocessing"]["centre"] == {"skeleton": 3}
    assert stored["training"]["centre"] == {"skeleton": "hip_center"}
    assert result.preprocessor.centre == {"skeleton": 3}


def _body_sizes(sizes) -> MultimodalData:
    """The same movement (one body, one motion) performed by bodies of different sizes, standing
    at different places: scaled about a fixed point, then moved."""
    base = _point_data(np.zeros((1, 1, 1, 3), np.float32)).sequence("skel", 0)
    shifts = np.random.default_rng(9).normal(scale=2.0, size=(len(sizes), 1, 1, 3)).astype(np.float32)
    skel = [base * s + shifts[i] for i, s in enumerate(sizes)]
    schema = DatasetSchema("toy", (ModalitySchema("skel", "time_series", (4, 3)),),
                           class_names=("a", "b"), extra={"joint_names": ["head", "neck", "hip", "foot"]})
    return MultimodalData(schema, np.array([f"s{i}" for i in range(len(sizes))]), np.arange(len(sizes)) % 2,
                          {"skel": build_ragged(skel, (4, 3), np.float32)}, {"train": np.arange(len(sizes))})


def test_scaled_preprocessing_is_blind_to_body_size():
    data = _body_sizes([1.0, 0.8, 1.25, 1.1])
    pre = Preprocessor(centre={"skel": 2}, scale={"skel": (2, 1)}).fit(data, data.split("train"))
    x = MultimodalDataset(data, range(4), pre).full_batch().inputs["skel"]
    for i in range(1, 4):  # every body size gives the model the same input
        torch.testing.assert_close(x[i], x[0], rtol=1e-4, atol=1e-4)
    # centring alone keeps the size visible
    centred = Preprocessor(centre={"skel": 2}).fit(data, data.split("train"))
    y = MultimodalDataset(data, range(4), centred).full_batch().inputs["skel"]
    assert not torch.allclose(y[1], y[0], atol=1e-2)


def test_scale_by_segment_uses_the_first_step_and_survives_degenerate_segments():
    seq = np.random.default_rng(3).normal(size=(5, 4, 3)).astype(np.float32)
    out = scale_by_segment(seq, 0, 3)
    assert np.linalg.norm(out[0, 0] - out[0, 3]) == pytest.approx(1.0, rel=1e-5)
    # later steps keep their proportions to the first (the unit is fixed per clip)
    np.testing.assert_allclose(out[1:] / out[0, 0, 0], seq[1:] / seq[0, 0, 0], rtol=1e-4)
    flat = seq.copy()
    flat[0, 3] = flat[0, 0]  # a lost track: both points at one place
    np.testing.assert_array_equal(scale_by_segment(flat, 0, 3), flat)
    assert scale_by_segment(seq[:0], 0, 3).shape == (0, 4, 3)


def test_preprocessor_json_round_trip_keeps_scaling():
    pre = Preprocessor(centre={"skel": 2}, scale={"skel": (2, 1)})
    back = Preprocessor.from_json(json.loads(json.dumps(pre.to_json())))
    assert back.scale == {"skel": (2, 1)}
    assert Preprocessor.from_json({"lengths": {}}).scale == {}  # stored before scaling existed


def test_segment_indices_resolve_names_and_explain_mistakes():
    schema = _point_data(np.zeros((2, 1, 1, 3), np.float32)).schema
    assert segment_indices(schema, {"skel": "hip:neck"}) == {"skel": (2, 1)}
    for bad in ("hip", "hip:hip", ":neck"):
        with pytest.raises(ValueError, match="POINT:POINT"):
            segment_indices(schema, {"skel": bad})
    with pytest.raises(ValueError, match="head, neck, hip, foot"):
        segment_indices(schema, {"skel": "hip:pelvis"})
    with pytest.raises(ValueError, match="only point sequences"):
        segment_indices(schema, {"acc": "hip:neck"})


def test_training_with_scaling_stores_it_and_refuses_bad_segments(tmp_path: Path, capsys):
    assert cli_main(["train", "--data", str(UTD), "--scale", "skeleton=hip_center", "--epochs", "1", "--quiet",
                     "--out", str(tmp_path / "bad")]) == 2
    assert "POINT:POINT" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    cfg = TrainConfig(data=str(UTD), modalities=["skeleton"], lengths={"skeleton": 16}, epochs=1, dim=8,
                      centre={"skeleton": "hip_center"}, scale={"skeleton": "hip_center:shoulder_center"},
                      backbone="late", calibration=False)
    train(cfg, out=tmp_path / "ck", progress=False)
    stored = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert stored["preprocessing"]["scale"] == {"skeleton": [3, 1]}
    assert stored["training"]["scale"] == {"skeleton": "hip_center:shoulder_center"}
    from precal.describe import describe_checkpoint

    info = describe_checkpoint(tmp_path / "ck")  # `precal info` names the option the run used
    assert "options: scale {'skeleton': 'hip_center:shoulder_center'}" in info
    assert "recombine_augment" not in info  # off: not listed


def test_dashboard_names_the_root_point_of_a_centred_modality():

    schema = _point_data(np.zeros((2, 1, 1, 3), np.float32)).schema
    assert root_point_name(schema, Preprocessor(centre={"skel": 2}), "skel") == "hip"
    assert root_point_name(schema, Preprocessor(centre={"skel": 7}), "skel") == "point 7"


def test_dashboard_says_where_the_origin_is_and_what_the_unit_is():

    schema = _point_data(np.zeros((2, 1, 1, 3), np.float32)).schema
    assert geometry_note(schema, Preprocessor(), "skel") == ""
    centred = geometry_note(schema, Preprocessor(centre={"skel": 2}), "skel")
    assert "hip" in centred and "units" not in centred
    both = geometry_note(schema, Preprocessor(centre={"skel": 2}, scale={"skel": (2, 1)}), "skel")
    assert "body units, the first frame's hip–neck distance, rather than metres" in both
    # the lab's axes follow: the recorded unit, or the segment the model measures in
    assert model_input_unit(schema, Preprocessor(centre={"skel": 2}), "skel") == "value"  # toy: no unit
    assert model_input_unit(schema, Preprocessor(scale={"skel": (2, 1)}), "skel") == "body units"


# ---------------------------------------------------------------------------------------------
# joint-graph trunk for point sequences
# ---------------------------------------------------------------------------------------------


def test_joint_graph_trunk_matches_the_series_trunk_in_steps_and_ignores_padding():
    from precal.models.encoders import JointGraphEncoder, SeriesEncoder

    enc = JointGraphEncoder(joints=4, coords=3, dim=8, bones=[(0, 1), (1, 2), (2, 3)]).eval()
    x = torch.randn(3, 13, 4, 3)
    mask = torch.arange(13)[None, :] < torch.tensor([13, 9, 5])[:, None]
    x = x * mask[..., None, None]
    garbage = x.clone()
    garbage[~mask] = 1e3  # whatever sits in the padding must not matter
    with torch.no_grad():
        (y, m), (y2, m2) = enc(x, mask), enc(garbage, mask)
        ys, ms = SeriesEncoder(12, 8).eval()(x, mask)
    assert y.shape == ys.shape == (3, 8, 4) and torch.equal(m, ms)  # same steps as the series trunk
    torch.testing.assert_close(y2, y)
    assert torch.equal(m2, m)
    assert (y[~m.unsqueeze(1).expand_as(y)] == 0).all()  # padded steps stay zero
    # a sample's features do not depend on the padding its batch has
    with torch.no_grad():
        alone, _ = enc(x[2:3, :5], mask[2:3, :5])
    torch.testing.assert_close(alone, y[2:3, :, :alone.shape[-1]], rtol=1e-4, atol=1e-5)


def test_joint_graph_adjacency_starts_as_the_bones():
    from precal.models.encoders import JointGraphEncoder

    adj = JointGraphEncoder(joints=4, coords=3, dim=8, bones=[(0, 1), (1, 2), (5, 6)]).adjacency.detach()
    assert (adj > 0).tolist() == [[True, True, False, False], [True, True, True, False],
                                  [False, True, True, False], [False, False, False, True]]  # (5, 6) is not ours
    torch.testing.assert_close(adj.sum(dim=1), torch.ones(4))  # each joint averages its neighbourhood


def test_point_encoder_option_picks_the_trunk_and_refuses_unknown_names():
    from precal.models.encoders import JointGraphEncoder, SeriesEncoder

    skel = ModalitySchema("skeleton", "time_series", (4, 3))
    assert isinstance(build_encoder(skel, 8, 0.1, point_encoder="joints"), JointGraphEncoder)
    assert isinstance(build_encoder(skel, 8, 0.1), SeriesEncoder)
    # streams whose steps are not points keep the series trunk
    assert isinstance(build_encoder(ModalitySchema("acc", "time_series", (6,)), 8, 0.1, point_encoder="joints"),
                      SeriesEncoder)
    with pytest.raises(ValueError, match="series, joints"):
        ModelConfig(point_encoder="gcn")
    old = ModelConfig().to_json()
    del old["point_encoder"]  # configs written before the option load with the series trunk
    assert ModelConfig.from_json(old).point_encoder == "series"


@pytest.mark.parametrize("backbone", ["sequence", "conv", "late"])
def test_joint_graph_trunk_trains_on_real_skeletons(tmp_path: Path, backbone):
    """One epoch on UTD-MHAD skeletons with every backbone: the checkpoint records the trunk and
    loads back with it (strict weight loading: the shapes must match)."""
    from precal.checkpoint import load_checkpoint

    cfg = TrainConfig(data=str(UTD), modalities=["skeleton", "inertial"], lengths={"skeleton": 16, "inertial": 32},
                      epochs=1, dim=8, centre={"skeleton": "hip_center"}, point_encoder="joints",
                      backbone=backbone, calibration=True)
    result = train(cfg, out=tmp_path / "ck", progress=False)
    stored = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert stored["model"]["point_encoder"] == "joints"
    ckpt = load_checkpoint(tmp_path / "ck")
    assert type(ckpt.model.encoders["skeleton"]).__name__ == "JointGraphEncoder"
    assert 0.0 <= result.metrics["test"]["accuracy"] <= 1.0
