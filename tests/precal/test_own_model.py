"""Issue 23: your own model in precal, through the command line. The example model of
examples/own_model/ is trained, evaluated and swept on a tiny data set (a time series, frames and a
vector); a checkpoint reloads only with the same --model and reproduces its metrics; every refusal
is one line with exit status 2 and writes nothing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from precal.checkpoint import CheckpointError, OwnModelRequired, load_checkpoint
from precal.cli import main
from precal.data.batch import Batch
from precal.data.storage import load_dataset
from precal.evaluation import evaluate
from precal.own_checkpoint import load_own_checkpoint, own_model_without_checkpoint
from precal.own_model import FactorySpec, OwnModelError, build_own_model, file_digest
from precal.robustness.corruptions import corruptions_for
from tests.corpus import SCHEMA, assert_unchanged, cli_error, snapshot, tiny_dataset
from tests.own_models import EXAMPLE, FACTORY, LOGITS_ONLY, write_factory

LENGTHS = ["--length", "acc=8", "--length", "cam=3"]
TRAIN = ["--epochs", "2", "--batch-size", "4", "--quiet", "--threads", "1", *LENGTHS]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The example model trained by ``precal train --model`` for two epochs (about a second)."""
    root = tmp_path_factory.mktemp("own")
    data = tiny_dataset(root / "data")
    out = root / "ck"
    assert main(["train", "--model", FACTORY, "--data", str(data), "--out", str(out), *TRAIN]) == 0
    return {"root": root, "data": data, "ck": out}


def _stdout_json(text: str) -> dict:
    return json.loads(text[text.index("{"): text.rindex("}") + 1])


def test_factory_spec_forms() -> None:
    assert FactorySpec.parse("my_model.py:build").is_file
    assert FactorySpec.parse("pkg.models:make").module == "pkg.models"
    assert FactorySpec.parse("/x/y/my_model.py:build").same_factory(FactorySpec.parse("my_model.py:build"))
    assert not FactorySpec.parse("a.py:build").same_factory(FactorySpec.parse("a.py:make"))
    for bad in ("my_model.py", "my_model.py:", ":build", "my model:build", "a.py:build-it"):
        with pytest.raises(OwnModelError, match="--model expects"):
            FactorySpec.parse(bad)


def test_adapter_takes_the_report_of_the_same_forward_pass(tmp_path) -> None:
    data = load_dataset(tiny_dataset(tmp_path / "data"))
    ckpt = own_model_without_checkpoint(FACTORY, data, tmp_path / "data")
    model = ckpt.model
    calls = []
    model.calibrator.register_forward_hook(lambda *_: calls.append(1))
    from precal.data.dataset import MultimodalDataset

    batch = MultimodalDataset(data, data.split("test"), ckpt.preprocessor, model.modalities).full_batch()
    out = model(batch)
    assert len(calls) == 1  # one forward pass, one calibrator call: the report is that call's
    assert out.logits.shape == (batch.size, 2) and out.report.alpha.shape == (batch.size, 3)
    assert out.fused.shape[0] == batch.size and model.features_given
    with model.calibration(False):
        off = model(batch)
    assert torch.allclose(off.report.alpha, torch.ones_like(off.report.alpha))
    assert model.calibrator.enabled  # switched back on after the view


def test_a_model_without_calibrator_or_with_wrong_logits_is_refused(tmp_path) -> None:
    no_cal = write_factory(tmp_path, "plain.py", "from torch import nn\ndef build(schema):\n    return nn.Linear(2, 2)\n")
    with pytest.raises(OwnModelError, match="holds no PreFusionCalibrator"):
        build_own_model(no_cal, SCHEMA)
    not_module = write_factory(tmp_path, "nothing.py", "def build(schema):\n    return 3\n")
    with pytest.raises(OwnModelError, match="returned int, not a torch.nn.Module"):
        build_own_model(not_module, SCHEMA)
    broken = write_factory(tmp_path, "broken.py", "raise RuntimeError('boom')\n")
    with pytest.raises(OwnModelError, match="importing .*broken.py failed: RuntimeError: boom"):
        build_own_model(broken, SCHEMA)


def test_train_records_the_factory_and_its_file(trained) -> None:
    config = json.loads((trained["ck"] / "config.json").read_text())
    assert "model" not in config
    assert config["own_model"]["factory"] == FACTORY
    assert config["own_model"]["sha256"] == file_digest(EXAMPLE)
    assert config["own_model"]["calibration"] is True
    assert config["training"]["model"] == FACTORY
    history = json.loads((trained["ck"] / "history.json").read_text())
    assert len(history) == 2 and set(history[0]["modalities"]) == {"acc", "cam", "meta"}
    assert "grad_norm" in history[0]["modalities"]["acc"]  # the example keeps its encoders in `encoders`


def test_checkpoint_reloads_with_the_same_model_and_reproduces_its_metrics(trained, capsys) -> None:
    stored = json.loads((trained["ck"] / "metrics.json").read_text())["test"]
    assert main(["evaluate", "--model", FACTORY, str(trained["ck"])]) == 0
    shown = _stdout_json(capsys.readouterr().out)
    written = json.loads((trained["ck"] / "eval_test.json").read_text())
    for key in ("accuracy", "macro_f1"):
        assert shown[key] == pytest.approx(stored[key]) and written[key] == pytest.approx(stored[key])


def test_loading_without_model_names_the_factory(trained, capsys) -> None:
    before = snapshot(trained["root"])
    assert main(["evaluate", str(trained["ck"])]) == 2
    line = cli_error(capsys, "evaluate")
    assert f"pass --model {FACTORY}" in line
    assert main(["robustness", str(trained["ck"]), "--out", str(trained["root"] / "t.csv")]) == 2
    assert f"pass --model {FACTORY}" in cli_error(capsys, "robustness")
    with pytest.raises(OwnModelRequired) as info:
        load_checkpoint(trained["ck"])
    assert info.value.factory == FACTORY
    assert main(["info", str(trained["ck"])]) == 0  # described from its JSON, no code run
    assert f"load it with --model {FACTORY}" in capsys.readouterr().out
    assert_unchanged(before, snapshot(trained["root"]))


def test_another_factory_is_refused_and_a_changed_file_noticed(trained, tmp_path, capsys) -> None:
    other = write_factory(tmp_path, "logits_only.py")
    assert main(["evaluate", "--model", other, str(trained["ck"])]) == 2
    assert f"was trained with --model {FACTORY}" in cli_error(capsys, "evaluate")
    # The same file name elsewhere, edited: still loads (the weights fit), with a one-line warning.
    edited = tmp_path / "copy" / "my_model.py"
    edited.parent.mkdir()
    edited.write_text(EXAMPLE.read_text() + "\n# a comment added after training\n")
    out = tmp_path / "m.json"
    assert main(["evaluate", "--model", f"{edited}:build", str(trained["ck"]), "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("precal evaluate: warning:") and "has changed since ck" in err[0]
    assert json.loads(out.read_text())["split"] == "test"
    # Edited so that the weights no longer fit: refused, naming the change.
    edited.write_text(EXAMPLE.read_text().replace("WIDTH = 48", "WIDTH = 40"))
    assert main(["evaluate", "--model", f"{edited}:build", str(trained["ck"]), "--out", str(out),
                 "--overwrite"]) == 2
    line = cli_error(capsys, "evaluate")
    assert "has changed since checkpoint ck was trained" in line and "no longer fit" in line


def test_evaluate_without_checkpoint_writes_nothing_unless_asked(trained, capsys) -> None:
    before = snapshot(trained["root"])
    assert main(["evaluate", "--model", FACTORY, "--data", str(trained["data"]), "--split", "val"]) == 0
    shown = _stdout_json(capsys.readouterr().out)
    assert {"accuracy", "macro_f1", "n", "split", "model"} <= set(shown) and shown["split"] == "val"
    assert_unchanged(before, snapshot(trained["root"]))
    weights = trained["ck"] / "model.safetensors"  # the checkpoint's weights are the module's own state dict
    out = trained["root"] / "own_eval.json"
    assert main(["evaluate", "--model", FACTORY, "--weights", str(weights), "--data", str(trained["data"]),
                 "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["weights"] == str(weights) and written["n"] == 6
    out.unlink()


@pytest.mark.parametrize("args, expected", [
    (["evaluate", "--weights", "w.safetensors", "--data", "d"], "--weights needs --model"),
    (["evaluate"], "name a CHECKPOINT, or your own model"),
    (["evaluate", "--model", "nope.py:build", "--data", "{data}"], "--model: no such file nope.py"),
    (["evaluate", "--model", "bad spec", "--data", "{data}"], "--model expects FILE.py:NAME"),
    (["evaluate", "--model", FACTORY, "--data", "{root}"], "is not a data set folder (it holds the data sets data"),
    (["evaluate", "--model", FACTORY, "--weights", "{root}/w.pt", "--data", "{data}"], "refuses to unpickle"),
    (["evaluate", "--model", FACTORY, "--weights", "{root}/none.safetensors", "--data", "{data}"],
     "--weights: no such file"),
    (["robustness", "--model", FACTORY, "--out", "{root}/r.csv"], "needs --data"),
    (["train", "--model", FACTORY, "--data", "{data}", "--out", "{root}/x", "--backbone", "conv"],
     "--backbone does not apply to --model"),
    (["train", "--model", FACTORY, "--data", "{data}", "--out", "{root}/x", "--unimodal-loss", "0.5"],
     "--unimodal-loss does not apply to --model"),
    (["train", "--config", str(EXAMPLE.parents[2] / "experiments" / "recipes" / "utd_mhad.json"), "--model", FACTORY,
      "--data", "{data}", "--out", "{root}/x"], "--velocity does not apply to --model"),
    (["train", "--config", "{root}/own_recipe.json", "--data", "{data}", "--out", "{root}/x"],
     "the setting 'model' is refused in a settings file"),
    (["dashboard", "--weights", "w.safetensors"], "--weights needs --model"),
    (["dashboard", "--model", FACTORY], "needs --data"),
])
def test_bad_model_options_are_one_line(trained, capsys, args, expected) -> None:
    root = trained["root"]
    (root / "w.pt").write_bytes(b"\x80\x04junk")
    (root / "own_recipe.json").write_text(json.dumps({"model": FACTORY, "epochs": 1}))
    before = snapshot(root)
    args = [a.format(root=root, data=trained["data"]) for a in args]
    assert main(args) == 2
    assert expected in cli_error(capsys, args[0])
    assert_unchanged(before, snapshot(root))


def test_calibration_off_trains_the_uncalibrated_model(trained) -> None:
    out = trained["root"] / "ck_off"
    assert main(["train", "--model", FACTORY, "--data", str(trained["data"]), "--out", str(out),
                 "--calibration", "off", *TRAIN]) == 0
    ckpt = load_own_checkpoint(out, FACTORY)
    assert ckpt.config.calibration is False and not ckpt.model.calibrator.enabled
    data = load_dataset(trained["data"])
    metrics = evaluate(ckpt, data, "test")
    assert metrics["accuracy"] == pytest.approx(json.loads((out / "metrics.json").read_text())["test"]["accuracy"])


def test_robustness_sweeps_both_roles_of_an_own_model(trained, capsys) -> None:
    out = trained["root"] / "sweep.csv"
    chosen = ["gaussian_noise", "occlusion", "swap", "remove_absent"]
    assert main(["robustness", "--model", FACTORY, str(trained["ck"]), "--out", str(out), "--severities", "1", "3",
                 "--corruptions", *chosen]) == 0
    table = pd.read_csv(out)
    plan = [(m.name, c.name) for m in SCHEMA.modalities for c in corruptions_for(m.kind) if c.name in chosen]
    for role in ("calibrated", "uncalibrated"):
        rows = table[table["role"] == role]
        assert set(zip(rows["modality"], rows["corruption"])) == set(plan)
        assert len(rows) == 3 * len(plan)  # severities 0, 1, 3
    assert (table["checkpoint"] == "ck").all()
    off = table[table["role"] == "uncalibrated"]
    assert np.allclose(off[[f"alpha_{m}" for m in ("acc", "cam", "meta")]].dropna(), 1.0)  # no gates when off
    summary = pd.read_csv(out.with_name("sweep.summary.csv"))
    assert set(summary["role"]) == {"calibrated", "uncalibrated"}
    # Without a checkpoint: the same engine on the data given.
    bare = trained["root"] / "bare.csv"
    assert main(["robustness", "--model", FACTORY, "--data", str(trained["data"]), "--out", str(bare),
                 "--severities", "1", "--corruptions", "swap"]) == 0
    bare_table = pd.read_csv(bare)
    assert set(bare_table["role"]) == {"calibrated", "uncalibrated"}
    assert set(bare_table["modality"]) == {"acc", "cam", "meta"}
    assert "wrote" in capsys.readouterr().out


def _script_train_command() -> list:
    """The ``precal train`` command of examples/own_model/train.sh, as arguments."""
    import shlex

    script = (EXAMPLE.parent / "train.sh").read_text().replace("\\\n", " ")
    line = next(x for x in script.splitlines() if "-m precal train" in x)
    words = shlex.split(line.replace('"$PY" -m precal ', "").replace('"$MODEL"', "MODEL").replace('"$OUT"', "OUT"))
    assert words[0] == "train" and words[words.index("--model") + 1] == "MODEL"
    assert 'MODEL=examples/own_model/my_model.py:build' in script
    return words


@pytest.mark.slow
def test_example_script_trains_on_sample_data(tmp_path) -> None:
    """examples/own_model/train.sh's own training command, for one epoch instead of 30: it trains on
    sample_data/utd_mhad and the checkpoint reloads and reproduces its test metrics."""
    words = _script_train_command()
    words[words.index("--epochs") + 1] = "1"
    root = EXAMPLE.parents[2]
    out = tmp_path / "ck"
    args = [{"MODEL": FACTORY, "OUT": str(out)}.get(w, w) for w in words]
    args = [str(root / a) if a.startswith("sample_data/") else a for a in args]
    assert main(args) == 0
    ckpt = load_own_checkpoint(out, FACTORY)
    assert ckpt.schema.modality_names == ["inertial", "skeleton", "depth"]
    again = evaluate(ckpt, load_dataset(root / "sample_data" / "utd_mhad"), "test")
    assert again["accuracy"] == pytest.approx(json.loads((out / "metrics.json").read_text())["test"]["accuracy"])


def test_untrained_model_is_the_same_every_time(tmp_path) -> None:
    data = load_dataset(tiny_dataset(tmp_path / "data"))
    a = own_model_without_checkpoint(FACTORY, data, tmp_path / "data")
    b = own_model_without_checkpoint(FACTORY, data, tmp_path / "data")
    assert a.fingerprint == b.fingerprint
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_checkpoint_of_precal_model_refuses_model_option(tmp_path, capsys) -> None:
    from tests.corpus import tiny_checkpoint

    ck = tiny_checkpoint(tmp_path / "ck")
    assert main(["evaluate", "--model", FACTORY, str(ck)]) == 2
    assert "is not an own model's checkpoint; open it without --model" in cli_error(capsys, "evaluate")
    with pytest.raises(CheckpointError):
        load_own_checkpoint(ck, FACTORY)


def test_batch_contract_of_the_forward(tmp_path) -> None:
    """What an own model's forward receives: (B, T, *step) sequences, (B, F) vectors, padding masks
    for sequences only, presence for every modality, absent rows zeroed."""
    seen = {}
    data = load_dataset(tiny_dataset(tmp_path / "data"))
    ckpt = own_model_without_checkpoint(FACTORY, data, tmp_path / "data")
    net = ckpt.model.net
    original = net.forward

    def spy(inputs, padding_mask=None, present=None):
        seen.update(inputs=inputs, padding=padding_mask, present=present)
        return original(inputs, padding_mask, present)

    net.forward = spy
    from precal.data.dataset import MultimodalDataset

    batch: Batch = MultimodalDataset(data, np.arange(4), ckpt.preprocessor, ckpt.model.modalities).full_batch()
    ckpt.model(batch)
    assert seen["inputs"]["acc"].dim() == 3 and seen["inputs"]["cam"].shape[2:] == (4, 5)
    assert seen["inputs"]["meta"].shape == (4, 2)
    assert set(seen["padding"]) == {"acc", "cam"} and set(seen["present"]) == {"acc", "cam", "meta"}
    assert not bool(seen["present"]["cam"][2]) and float(seen["inputs"]["cam"][2].abs().sum()) == 0.0


def test_a_factory_imports_what_lies_beside_it_and_modules_load_by_name(tmp_path, monkeypatch) -> None:
    """A researcher's model file imports its own helpers; a package module is named with dots."""
    import sys

    folder = tmp_path / "research"
    write_factory(folder, "layers_of_mine.py", "from torch import nn\nWIDTH = 8\n")
    source = LOGITS_ONLY.replace("import torch\n", "import torch\nfrom layers_of_mine import WIDTH\n", 1)
    spec = write_factory(folder, "uses_sibling.py", source)
    assert build_own_model(spec, SCHEMA).modalities == ["acc", "cam", "meta"]
    package = tmp_path / "work" / "labmodels"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "fusion.py").write_text(LOGITS_ONLY)
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setattr(sys, "path", list(sys.path))
    model = build_own_model("labmodels.fusion:build", SCHEMA)
    assert model.config.backbone == "labmodels.fusion:build" and model.source_sha256 == file_digest(package / "fusion.py")


def test_importing_a_model_file_writes_nothing_beside_it(tmp_path, monkeypatch) -> None:
    import sys

    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # Python would write __pycache__ here
    spec = write_factory(tmp_path / "mine")
    build_own_model(spec, SCHEMA)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["logits_only.py"]
    assert sys.dont_write_bytecode is False  # the caller's setting is back
