"""Whole-block pruning and user-supplied students (issue 6) on tiny real models."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from prune_models import CLASSES, ResidualCNN, TinyTransformer, fit, labelled_data
from torch import nn

from compressor.api import compress, load_source, run_build, write_bundle
from compressor.blocks import prune_blocks, removable_blocks
from compressor.data import SampleData
from compressor.errors import InvalidInputError, TechniqueNotApplicableError
from compressor.options import CompressOptions
from compressor.profiles import Precision
from compressor.pruning import count
from compressor.runtimes import OnnxRunner

pytestmark = pytest.mark.slow  # builds or serves real models: not part of make test-fast

MODELS = {"residual-cnn": (ResidualCNN, (3, 8, 8), "blocks"), "transformer": (TinyTransformer, (6, 8), "layers")}
QUICK = {"precisions": (Precision.FP32,), "max_accuracy_drop": 100, "latency_repeats": 5}


@functools.cache
def _trained(name: str):
    cls, shape, _ = MODELS[name]
    x, y = labelled_data(shape)
    return fit(cls(), x, y), SampleData({"x": x}, y), (torch.from_numpy(x[:1]),)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_block_pruning_removes_whole_blocks_and_the_model_still_exports(name, tmp_path):
    model, data, args = _trained(name)
    container = MODELS[name][2]
    assert removable_blocks(model, args) == [f"{container}.0", f"{container}.1"]  # not the Sequential, not sub-layers
    before = count(model, args)
    pruned, outcome = prune_blocks(model, args, 0.5, data)
    after = count(pruned, args)
    assert len(outcome["removed"]) == 1 and set(outcome["importance"]) == set(outcome["blocks"])
    kept = min(outcome["blocks"], key=lambda b: -outcome["importance"][b])
    assert outcome["removed"] != [kept]  # the block whose bypass changes the outputs most stays
    assert isinstance(pruned.get_submodule(outcome["removed"][0]), nn.Identity)
    assert after["params"] < 0.7 * before["params"] and after["macs"] < 0.7 * before["macs"], (before, after)
    assert count(model, args) == before  # the original is left alone
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(pruned, args, dynamo=True, opset_version=18).save(str(path))
    runner = OnnxRunner(path)
    x = data.inputs["x"][:1]
    expected = pruned(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(runner.run({runner.inputs[0].name: x})[0], expected, rtol=1e-4, atol=1e-4)


def test_block_pruning_refuses_a_plain_cnn_saying_why_and_what_to_do():
    from model import DigitsCNN  # the digits example's plain CNN: the architecture is what matters, not its training

    x = np.random.default_rng(0).standard_normal((16, 1, 8, 8)).astype(np.float32)
    match = r"block pruning cannot apply: the model has no residual block.*prune='structured'.*Python API"
    with pytest.raises(TechniqueNotApplicableError, match=match):
        prune_blocks(DigitsCNN().eval(), (torch.from_numpy(x[:1]),), 0.5, SampleData({"x": x}))


def test_block_pruning_options():
    assert CompressOptions(prune="blocks", sparsity=0.5).criterion == "l2"  # the default is not used for blocks
    with pytest.raises(ValueError, match="block pruning ranks residual blocks"):
        CompressOptions(prune="blocks", criterion="taylor")


def test_pipeline_adds_a_block_pruned_distilled_candidate(tmp_path):
    x, y = labelled_data((6, 8), count=160)
    model = fit(TinyTransformer(), x, y, epochs=8)
    source, data = load_source(model, (torch.from_numpy(x[:1]),), {"x": x, "labels": y})
    options = CompressOptions(prune="blocks", sparsity=0.5, distill=True, finetune_epochs=2, **QUICK)
    report = write_bundle(run_build(source, data, "jetson-orin-nano", options), tmp_path)
    original, pruned = report["artifacts"]
    assert pruned["variant"] == "blocks50-distill" and pruned["error"] is None
    assert pruned["params"] < 0.6 * original["params"] and pruned["macs"] < 0.6 * original["macs"]
    assert pruned["technique"]["criterion"] == "output-cosine" and len(pruned["technique"]["removed"]) == 1


class SmallStudent(nn.Module):
    """A much smaller CNN with the teacher's inputs and outputs."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(width * 64, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def test_user_student_is_distilled_into_its_own_candidate(tmp_path):
    x, y = labelled_data((3, 8, 8), count=256)
    teacher = fit(ResidualCNN(), x, y, epochs=8)
    torch.manual_seed(0)
    options = CompressOptions(finetune_epochs=60, finetune_seconds=30, **QUICK)
    result = compress(
        teacher,
        "jetson-orin-nano",
        tmp_path / "out",
        example_inputs=(torch.from_numpy(x[:1]),),
        data={"x": x, "labels": y},
        options=options,
        student=SmallStudent(),
    )
    report = json.loads((result.out_dir / "report.json").read_text())
    original, student = report["artifacts"]
    assert student["variant"] == "student-distill" and student["error"] is None
    assert student["params"] < 0.8 * original["params"] and student["technique"]["student"] == "SmallStudent"
    assert student["technique"]["fine_tune"]["loss"] == "distillation"
    runner = OnnxRunner(result.out_dir / student["path"])
    got = np.concatenate([runner.run({runner.inputs[0].name: x[i : i + 1]})[0] for i in range(len(x))])
    with torch.no_grad():
        expected = teacher(torch.from_numpy(x)).numpy()
    agreement = float((got.argmax(1) == expected.argmax(1)).mean())
    assert agreement >= 0.7, agreement  # an untrained student agrees on ~0.3 (4 classes)


class WrongOutputs(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class WrongInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(5, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


@pytest.mark.parametrize(
    ("student", "message"),
    [
        (WrongOutputs(), r"student's outputs have shapes \[\(2, 192\)\], the teacher's \[\(2, 4\)\]"),
        (WrongInputs(), r"student cannot run on the model's inputs .*RuntimeError"),
        ("student.pt", "student must be a torch.nn.Module; got str"),
    ],
)
def test_mismatched_student_is_refused_before_the_build(student, message):
    model, data, args = _trained("residual-cnn")
    source, samples = load_source(model, args, {"x": data.inputs["x"]})
    with pytest.raises(InvalidInputError, match=message):
        run_build(source, samples, "jetson-orin-nano", CompressOptions(**QUICK), student=student)
