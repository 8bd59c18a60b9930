"""Pruning, distillation and budgeted search (issue 6) on tiny real models."""

from __future__ import annotations

import copy
import functools
import json

import numpy as np
import pytest
import torch
from prune_models import ResidualCNN, TinyTransformer, fit, labelled_data

from compressor.api import load_source, run_build, write_bundle
from compressor.data import SampleData
from compressor.errors import TechniqueNotApplicableError
from compressor.finetune import TrainConfig, train
from compressor.importance import criteria
from compressor.layered import layered
from compressor.options import CompressOptions
from compressor.profiles import Precision
from compressor.pruning import achieved_sparsity, attention_heads, count, prune_structured, prune_unstructured
from compressor.runtimes import OnnxRunner

MODELS = {"residual-cnn": (ResidualCNN, (3, 8, 8)), "transformer": (TinyTransformer, (6, 8))}


@functools.cache
def _trained(name: str):
    """(name, trained module, data, example args) for a tiny model, built once per session."""
    cls, shape = MODELS[name]
    x, y = labelled_data(shape)
    model = fit(cls(), x, y)
    return name, model, SampleData({"x": x}, y), (torch.from_numpy(x[:1]),)


@pytest.fixture(params=sorted(MODELS))
def tiny(request):
    return _trained(request.param)


@pytest.mark.parametrize("criterion", criteria.names())
def test_structured_pruning_removes_parameters_and_macs(tiny, criterion):
    name, model, data, args = tiny
    before = count(model, args)
    pruned = prune_structured(model, args, 0.5, criterion, data)
    after = count(pruned, args)
    assert after["params"] < 0.8 * before["params"], (name, criterion, before, after)
    assert after["macs"] < 0.8 * before["macs"], (name, criterion, before, after)
    with torch.no_grad():
        out = pruned(torch.from_numpy(data.inputs["x"][:5]))
    assert out.shape == (5, 4) and torch.isfinite(out).all()
    assert count(model, args) == before  # the original is left alone


def test_structured_pruning_removes_attention_heads():
    _, model, data, args = _trained("transformer")
    pruned = prune_structured(model, args, 0.5, "l2", data)
    heads = [layer.attention.num_heads for layer in pruned.layers]
    assert sum(heads) == 4 and min(heads) >= 1  # half of the 2 x 4 heads, ranked globally
    for layer in pruned.layers:
        attention = layer.attention
        assert attention.q.out_features == attention.k.out_features == attention.num_heads * attention.head_dim
    assert sorted(attention_heads(pruned).values()) == sorted(h for h in heads for _ in range(3))


def _attention_under(convention_name: str):
    """A tiny self-attention block laid out the way ``convention_name`` describes (head count, q/k/v names)."""
    from compressor.adapters import attention_conventions

    convention = attention_conventions.get(convention_name)

    class Attention(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            setattr(self, convention.heads, 4)
            for name in convention.projections:
                setattr(self, name, torch.nn.Linear(16, 16))
            if convention.width:
                setattr(self, convention.width, 16)
            self.out = torch.nn.Linear(16, 16)

        def forward(self, x):
            heads = getattr(self, convention.heads)
            q, k, v = (getattr(self, n)(x) for n in convention.projections)
            split = [t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v)]
            mixed = torch.nn.functional.scaled_dot_product_attention(*split)
            return self.out(mixed.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention, self.head = Attention(), torch.nn.Linear(16, 3)

        def forward(self, x):
            return self.head(self.attention(x).mean(1))

    return convention, Model().eval()


@pytest.mark.parametrize("name", sorted(__import__("compressor.adapters", fromlist=["x"]).attention_conventions))
def test_attention_heads_are_pruned_under_every_convention(name):
    """Torch-Pruning removes whole heads; the convention's head count (and width, where it keeps one) follow."""
    convention, model = _attention_under(name)
    x = torch.randn(8, 5, 16, generator=torch.Generator().manual_seed(0))
    data = SampleData({"x": x.numpy()})
    pruned = prune_structured(model, (x[:1],), 0.5, "l2", data)
    attention = pruned.attention
    assert getattr(attention, convention.heads) == 2
    assert getattr(attention, convention.projections[0]).out_features == 8
    if convention.width:
        assert getattr(attention, convention.width) == 8
    assert pruned(x).shape == (8, 3)


def test_residual_channels_stay_consistent():
    _, model, data, args = _trained("residual-cnn")
    pruned = prune_structured(model, args, 0.5, "l1", data, scope="layer")
    widths = {pruned.stem[0].out_channels, *(b.conv2.out_channels for b in pruned.blocks)}
    assert len(widths) == 1 and widths.pop() < 16  # the residual adds couple stem and block outputs


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_unstructured_pruning_zeroes_weights_and_fine_tuning_keeps_them(tiny, scope):
    _, model, data, args = tiny
    pruned, masks = prune_unstructured(model, 0.8, scope)
    assert achieved_sparsity(masks) == pytest.approx(0.8, abs=0.01)
    assert count(pruned, args)["nonzero_params"] < 0.35 * count(model, args)["nonzero_params"]
    summary = train(pruned, data, TrainConfig(epochs=2, seconds=30), constraints=(masks,))
    assert summary["epochs"] == 2
    named = dict(pruned.named_parameters())
    for name, mask in masks.masks.items():
        assert torch.all(named[name][mask == 0] == 0), name


def test_pruned_models_export_and_run_in_onnxruntime(tiny, tmp_path):
    name, model, data, args = tiny
    pruned = prune_structured(model, args, 0.5, "taylor", data)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(pruned, args, dynamo=True, opset_version=18).save(str(path))
    runner = OnnxRunner(path)
    feeds = {runner.inputs[0].name: data.inputs["x"][:1]}
    expected = pruned(args[0]).detach().numpy()
    np.testing.assert_allclose(runner.run(feeds)[0], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pt2", "torchscript"])
def test_model_files_are_pruned_structurally_through_their_onnx_rebuild(kind, digits_files, digits_module, tmp_path):
    """A .pt2 or TorchScript file has no layers to prune; rebuilt with them (ONNX + onnx2torch) it loses channels,
    distils from the file's own model and ships a TFLite artifact that runs in LiteRT and passes the gate."""
    path = digits_files / "model.pt2"
    if kind == "torchscript":
        path = tmp_path / "model.pt"
        torch.jit.trace(copy.deepcopy(digits_module).eval(), (torch.zeros(1, 1, 8, 8),)).save(str(path))
    source, data = load_source(path, data=digits_files / "data.npz")
    before = count(source.to_torch(), source.sample_args())
    pruned = prune_structured(source.to_torch(), source.sample_args(), 0.5, "l2", data)
    after = count(pruned, source.sample_args())
    assert after["params"] < 0.5 * source.params and after["macs"] < 0.5 * before["macs"]
    options = CompressOptions(
        prune="structured",
        sparsity=0.3,
        distill=True,
        finetune_epochs=40,
        precisions=(Precision.FP32,),
        max_accuracy_drop=5.0,
        latency_repeats=3,
    )
    state = run_build(source, data, "pixel-8", options)
    [candidate] = [c for c in state.candidates if c.variant]
    assert candidate.error is None and candidate.passed_gate, candidate.metrics
    assert candidate.params < 0.8 * source.params and candidate.metrics["accuracy_drop"] <= 5.0


def test_structured_pruning_names_the_technique_when_nothing_can_be_rebuilt():
    class Elementwise(torch.nn.Module):
        def forward(self, x):
            return torch.tanh(x) * 2

    program = torch.export.export(Elementwise(), (torch.zeros(1, 4),)).module()
    with pytest.raises(
        TechniqueNotApplicableError, match=r"structured pruning cannot apply.*no channels.*--prune none"
    ):
        prune_structured(
            program, (torch.zeros(1, 4),), 0.5, "l2", SampleData({"x": np.zeros((4, 4), np.float32)}, None)
        )


def test_a_model_that_cannot_be_rebuilt_with_layers_gets_a_clear_refusal():
    class Bessel(torch.nn.Module):  # aten.special_i0 has no ONNX export
        def forward(self, x):
            return torch.special.i0(x) @ x.T

    program = torch.export.export(Bessel(), (torch.zeros(2, 2),)).module()
    with pytest.raises(
        TechniqueNotApplicableError,
        match=r"could not be rebuilt with nn.Conv/nn.Linear layers through ONNX.*Python API",
    ):
        layered(program, (torch.zeros(2, 2),))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pt2", "torchscript"])
def test_model_files_are_pruned_unstructured_and_train(kind, digits_files, digits_module, tmp_path):
    path = digits_files / "model.pt2"
    if kind == "torchscript":  # converted, its weights are graph constants: rebuilt with parameters to train them
        path = tmp_path / "model.pt"
        torch.jit.trace(copy.deepcopy(digits_module).eval(), (torch.zeros(1, 1, 8, 8),)).save(str(path))
    source, data = load_source(path, data=digits_files / "data.npz")
    pruned, masks = prune_unstructured(source.to_torch(), 0.5, example_args=source.sample_args())
    assert achieved_sparsity(masks) == pytest.approx(0.5, abs=0.01)
    summary = train(pruned, data, TrainConfig(epochs=1, seconds=30))  # an ExportedProgram's module trains too
    assert summary["epochs"] == 1


@pytest.mark.slow
def test_distillation_beats_no_distillation_on_digits(digits_module, digits_split):
    """Same pruned student, same seed, same epochs: soft targets from the teacher beat hard labels alone."""
    from model import accuracy

    x_train, y_train, x_test, y_test = digits_split
    data = SampleData({"x": x_train[:100]}, y_train[:100])  # few labels: where a teacher helps most
    args = (torch.from_numpy(x_test[:1]),)
    student = prune_structured(digits_module, args, 0.3, "l2", data)
    config = TrainConfig(epochs=40, seconds=120, seed=0)
    plain, distilled = copy.deepcopy(student), copy.deepcopy(student)
    train(plain, data, config)
    train(distilled, data, config, teacher=digits_module)
    plain_acc, distilled_acc = accuracy(plain, x_test, y_test), accuracy(distilled, x_test, y_test)
    assert distilled_acc > plain_acc, (distilled_acc, plain_acc)


def test_fine_tuning_is_bounded_in_time_and_reports_progress(tiny):
    from compressor.progress import Progress

    _, model, data, _ = tiny
    events = []
    stage = Progress(events.append).stage("fine-tune", 1000)
    summary = train(copy.deepcopy(model), data, TrainConfig(epochs=1000, seconds=0.2), teacher=model, stage=stage)
    assert summary["stopped_by_time_bound"] and summary["epochs"] < 1000
    assert summary["seconds"] < 5
    assert events[-1].message.endswith("(time bound reached)")


def test_unlabeled_data_distills_from_the_teacher(tiny):
    _, model, data, args = tiny
    unlabeled = SampleData(data.inputs)
    student = prune_structured(model, args, 0.5, "entropy", unlabeled)
    summary = train(student, unlabeled, TrainConfig(epochs=2, seconds=30), teacher=model)
    assert summary["loss"] == "distillation" and np.isfinite(summary["final_loss"])
    with pytest.raises(ValueError, match="needs a teacher"):
        train(student, unlabeled, TrainConfig(epochs=1, seconds=30))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sparsity": 0.5}, "sparsity needs a pruning kind"),
        ({"distill": True}, "distill trains the pruned model"),
        ({"prune": "structured", "criterion": "hessian"}, "unknown importance criterion 'hessian'; known: correlation"),
        ({"prune": "unstructured", "criterion": "taylor"}, "unstructured pruning ranks single weights by magnitude"),
        ({"prune": "structured", "sparsity": 1.0}, "less than 1"),
    ],
)
def test_options_reject_nonsense(options, message):
    with pytest.raises(ValueError, match=message):
        CompressOptions(**options)


@pytest.mark.slow
def test_cli_reports_bad_pruning_options_without_traceback(digits_files, tmp_path, capsys):
    from sdkgen.cli import EXIT_BAD_INPUT, main

    code = main(
        [
            "compress",
            str(digits_files / "model.pt2"),
            "--profile",
            "host",
            "--out",
            str(tmp_path / "o"),
            "--sparsity",
            "0.5",
        ]
    )
    assert code == EXIT_BAD_INPUT
    assert "error: invalid options: sparsity needs a pruning kind" in capsys.readouterr().err


def _build(module, x, y, options, profile="jetson-orin-nano"):
    source, data = load_source(module, (torch.from_numpy(x[:1]),), {"x": x, "labels": y})
    return run_build(source, data, profile, options)


@pytest.mark.slow
def test_pipeline_adds_pruned_and_distilled_candidates_to_the_report(tmp_path):
    x, y = labelled_data((3, 8, 8), count=160)
    model = fit(ResidualCNN(), x, y, epochs=8)
    options = CompressOptions(
        prune="structured",
        sparsity=0.5,
        criterion="taylor",
        distill=True,
        finetune_epochs=3,
        precisions=(Precision.FP32,),
        max_accuracy_drop=100,
        latency_repeats=5,
    )
    events = []
    source, data = load_source(model, (torch.from_numpy(x[:1]),), {"x": x, "labels": y})
    state = run_build(source, data, "jetson-orin-nano", options, progress=events.append)
    report = write_bundle(state, tmp_path)
    names = [a["name"] for a in report["artifacts"]]
    assert names == ["fp32.onnx", "structured50-taylor-distill.fp32.onnx"]
    original, pruned = report["artifacts"]
    assert pruned["variant"] == "structured50-taylor-distill" and pruned["error"] is None
    assert pruned["params"] < original["params"] and pruned["macs"] < original["macs"]
    assert pruned["technique"]["distill"]["temperature"] == 2.0
    assert pruned["technique"]["fine_tune"]["epochs"] == 3
    assert pruned["metrics"]["accuracy"] is not None and pruned["download_size_bytes"] < original["download_size_bytes"]
    assert (tmp_path / pruned["path"]).is_file()
    assert {"prune structured", "fine-tune structured50-taylor-distill"} <= {e.stage for e in events}
    json.dumps(report)


@pytest.mark.slow
def test_search_under_targets_tries_a_sparsity_ladder_and_meets_the_target(tmp_path):
    x, y = labelled_data((3, 8, 8), count=160)
    model = fit(ResidualCNN(width=24), x, y, epochs=8)
    baseline = _build(
        model, x, y, CompressOptions(precisions=(Precision.FP32,), max_accuracy_drop=100, latency_repeats=5)
    )
    target_kb = 0.45 * baseline.candidates[0].download_size_bytes / 1024
    options = CompressOptions(
        prune="unstructured",
        target_size_kb=target_kb,
        finetune_epochs=2,
        precisions=(Precision.FP32,),
        max_accuracy_drop=100,
        latency_repeats=5,
    )
    state = _build(model, x, y, options)
    report = write_bundle(state, tmp_path)
    variants = [a["variant"] for a in report["artifacts"]]
    assert variants == [None, "unstructured50", "unstructured70", "unstructured80", "unstructured90"]
    over = [a for a in report["artifacts"] if a["download_size_bytes"] / 1024 > target_kb]
    assert over and all("exceeds target" in a["fit_problems"][0] for a in over)
    chosen = report["artifacts"][report["selected"]]
    assert chosen["download_size_bytes"] / 1024 <= target_kb and chosen["variant"].startswith("unstructured")
