"""int8 that holds: calibration methods, bias correction and the accuracy-aware mixed-int8 fallback, on a real
TFLite model (the digits CNN through litert-torch) run in LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

from compressor import calibration, int8_fallback
from compressor.calibration import _range, _Stats
from compressor.converters.tflite import recipe
from compressor.data import SampleData
from compressor.errors import GateFailedError
from compressor.metrics import Gate
from compressor.options import CompressOptions
from compressor.profiles import Precision
from compressor.runtimes import open_artifact


def test_ranges_clip_outliers_that_minmax_keeps():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(20000), [40.0]]).astype(np.float32)
    stat = _Stats(values=[])
    stat.add(values, rng)
    low, high = _range(stat, "minmax")
    assert (low, high) == (pytest.approx(values.min()), pytest.approx(40.0))
    for method in ("percentile", "mse", "entropy"):
        lo, hi = _range(stat, method)
        assert lo <= 0 <= hi and hi < 20, method  # the lone outlier no longer sets the scale
        assert hi > 2, method  # the bulk of the values is kept


def test_moving_average_is_the_converters_own_and_unknown_methods_are_refused():
    qsvs = {"t": {"min": np.array([-1.0]), "max": np.array([1.0])}}
    assert calibration.ranges(qsvs, {}, "moving-average") == qsvs
    with pytest.raises(ValueError, match="known: minmax, moving-average, percentile, entropy, mse"):
        calibration.ranges(qsvs, {}, "kl")


@pytest.fixture(scope="module")
def digits_tflite(digits_module, digits_split, tmp_path_factory):
    import torch

    from compressor.sources import from_module

    _, _, x_test, _ = digits_split
    work = tmp_path_factory.mktemp("digits-tflite")
    example = (torch.from_numpy(x_test[:1]),)
    base = work / "fp32.tflite"
    from_module(digits_module.eval(), example).convert_tflite(base, example, work)
    return base, x_test


def _quantize(base, out, precision, qsvs=None):
    from ai_edge_quantizer import quantizer

    engine = quantizer.Quantizer(str(base), recipe(precision))
    engine.quantize(qsvs, enable_progress_report=False).export_model(str(out), overwrite=True)


def _weight_only_int8(base, out):
    from ai_edge_quantizer import qtyping, quantizer, recipe_manager

    manager = recipe_manager.RecipeManager()
    manager.add_weight_only_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=8,
                                   granularity=qtyping.QuantGranularity.CHANNELWISE)  # fmt: skip
    engine = quantizer.Quantizer(str(base), manager.get_quantization_recipe())
    engine.quantize(None, enable_progress_report=False).export_model(str(out), overwrite=True)


def test_bias_correction_gives_int8_layers_the_float_output_means_back(digits_tflite, tmp_path):
    """With int8 weights on float activations (weight-only), the weight error is the only error, and the corrected
    biases take its shift of the output means out.  (With int8 activations too, run-time activation rounding adds
    shifts of its own, which is why int8-dynamic is made both ways and the closer one kept.)"""
    base, x = digits_tflite
    corrected = tmp_path / "corrected.tflite"
    assert calibration.correct_biases(base, corrected, {"x": x[:64]}) >= 4  # 3 convolutions, 2 fully connected
    float_out = open_artifact(base, "tflite").run({"x": x})[0]
    shifts = {}
    for name, source in (("plain", base), ("corrected", corrected)):
        _weight_only_int8(source, tmp_path / f"{name}.tflite")
        got = open_artifact(tmp_path / f"{name}.tflite", "tflite").run({"x": x})[0]
        shifts[name] = float(np.abs((got - float_out).mean(axis=0)).mean())  # per-class mean error
    assert shifts["corrected"] < shifts["plain"], shifts


def test_fallback_floats_the_most_sensitive_layers_on_calibration_samples(digits_tflite, tmp_path):
    base, x = digits_tflite
    data = SampleData({"x": x[:48]})
    reference = open_artifact(base, "tflite").run(data.inputs)
    model = int8_fallback.Int8Model(base, data, {"calibration": {"method": "minmax"}}, tmp_path)
    layers = int8_fallback.weighted_layers(base)
    measured = int8_fallback.search(model, data, reference, Gate(1.0, 0.99), tmp_path / "m.tflite", measure_only=True)
    assert set(measured.sensitivity) == set(layers) and measured.floated == ()
    strict = 1.0 - 0.5 * (1.0 - _cosine(model, (), data, reference))  # halve int8's loss of cosine
    found = int8_fallback.search(model, data, reference, Gate(1.0, strict), tmp_path / "m.tflite")
    assert found.passed and 1 <= len(found.floated) <= len(layers)
    most = max(measured.sensitivity, key=measured.sensitivity.get)
    assert found.floated[0] == most
    assert _cosine(model, found.floated, data, reference) >= strict
    assert found.technique()["float_layers"][0]["scope"] == most.scope


def _cosine(model, floated, data, reference) -> float:
    from compressor.metrics import compare

    out = model.workdir / "check.tflite"
    model.write(floated, out)
    return compare(reference, open_artifact(out, "tflite").run(data.inputs), None)["cosine_mean"]


@pytest.mark.slow
def test_a_failing_int8_full_candidate_gets_a_mixed_int8_one(digits_files, tmp_path):
    from compressor import compress

    data = dict(np.load(digits_files / "data.npz"))
    np.savez(tmp_path / "unlabeled.npz", x=data["x"])  # the cosine gate, set out of int8-full's reach
    options = CompressOptions(
        precisions=(Precision.FP32, Precision.INT8_FULL), min_cosine=0.99999, latency_repeats=2, latency_warmup=1
    )
    report = compress(
        digits_files / "model.pt2", "pixel-8", tmp_path / "out", data=tmp_path / "unlabeled.npz", options=options
    ).report
    by_name = {a["name"]: a for a in report["artifacts"]}
    assert not by_name["int8-full.tflite"]["passed_gate"]
    mixed = by_name["mixed-int8.int8-full.tflite"]
    fallback = mixed["technique"]["int8"]["fallback"]
    assert fallback["float_layers"] and fallback["most_sensitive"]
    assert mixed["metrics"]["cosine_mean"] > by_name["int8-full.tflite"]["metrics"]["cosine_mean"]


@pytest.mark.slow
def test_integer_only_profiles_say_what_was_lost_where(digits_files, tmp_path):
    from compressor import compress

    data = dict(np.load(digits_files / "data.npz"))
    np.savez(tmp_path / "unlabeled.npz", x=data["x"])
    options = CompressOptions(min_cosine=0.99999, latency_repeats=2, latency_warmup=1)
    report = compress(digits_files / "model.pt2", "coral-edgetpu", tmp_path / "out", data=tmp_path / "unlabeled.npz",
                      options=options).report  # fmt: skip
    int8 = next(a for a in report["artifacts"] if a["precision"] == "int8-full")
    assert int8["technique"]["int8"]["loss_by_layer"]
    assert not any(a["variant"] for a in report["artifacts"])  # no float layers for an integer-only target
    choice = report["selection"]["by_format"]["tflite"]  # shipped below the gate, saying where it lost
    assert choice["below_gate"] and "layers that lose the most in int8" in choice["sentence"]
    with pytest.raises(GateFailedError, match="layers that lose the most in int8"):
        compress(digits_files / "model.pt2", "coral-edgetpu", tmp_path / "strict", data=tmp_path / "unlabeled.npz",
                 options=options.model_copy(update={"strict_gate": True}))  # fmt: skip


@pytest.mark.parametrize("bits", [8, 7])
def test_onnx_bias_correction_removes_the_output_shift_of_int8_weights(tmp_path, bits):
    """A layer fed inputs with a large mean: its int8 weights' rounding error shifts every output, and the
    corrected bias takes the shift out (onnxruntime's int8, one weight scale per tensor; with 7-bit weights, the
    correction is for their own, coarser error)."""
    import torch

    from compressor.converters import ConvertInput, convert
    from compressor.profiles import Format
    from compressor.sources import from_module

    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8)).eval()
    rng = np.random.default_rng(0)
    x = (4.0 + 0.2 * rng.standard_normal((256, 64))).astype(np.float32)
    source = from_module(layer, (torch.from_numpy(x[:1]),))
    with torch.no_grad():
        expected = layer(torch.from_numpy(x[128:])).numpy()
    shifts = {}
    for corrected in (False, True):
        job = ConvertInput(source, (torch.from_numpy(x[:1]),), SampleData({"x": x[:128]}), tmp_path / str(corrected),
                           (Precision.INT8_FULL,), weight_granularity="tensor", calibration_method="minmax",
                           bias_correction=corrected, onnx_weight_bits=bits)  # fmt: skip
        (artifact,) = convert(Format.ONNX, job).artifacts
        assert artifact.error is None, artifact.error
        assert ("bias_correction" in (artifact.notes or {})) is corrected
        session = _qdq_as_written(artifact.path)
        got = session.run(None, {session.get_inputs()[0].name: x[128:]})[0]
        shifts[corrected] = float(np.abs((got - expected).mean(axis=0)).mean())
    assert shifts[True] < 0.5 * shifts[False], shifts


@pytest.mark.parametrize("precision", [Precision.INT8_FULL, Precision.INT8_DYNAMIC])
def test_seven_bit_onnx_weights_stay_in_onnxruntimes_reduced_range(tmp_path, precision):
    """``onnx_weight_bits`` 7 (profiles whose x86 CPU lacks VNNI): every int8 weight of the ONNX artifact lies in
    [-64, 64] where 8-bit weights reach 127, the report's notes say so, and the model still tracks fp32."""
    import onnx
    import torch
    from onnx import numpy_helper

    from compressor.converters import ConvertInput, convert
    from compressor.metrics import compare
    from compressor.profiles import Format
    from compressor.sources import from_module

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)).eval()
    x = np.random.default_rng(0).standard_normal((128, 32)).astype(np.float32)
    source = from_module(model, (torch.from_numpy(x[:1]),))
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    peaks, notes = {}, {}
    for bits in (8, 7):
        job = ConvertInput(source, (torch.from_numpy(x[:1]),), SampleData({"x": x}), tmp_path / str(bits),
                           (precision,), onnx_weight_bits=bits)  # fmt: skip
        (artifact,) = convert(Format.ONNX, job).artifacts
        assert artifact.error is None, artifact.error
        weights = [numpy_helper.to_array(i) for i in onnx.load(str(artifact.path)).graph.initializer]
        integer = [w for w in weights if w.dtype == np.int8 and w.ndim == 2]  # the two weight matrices
        assert len(integer) == 2, [(w.dtype, w.shape) for w in weights]
        peaks[bits] = max(int(np.abs(w.astype(np.int32)).max()) for w in integer)
        notes[bits] = (artifact.notes or {}).get("weights")
        got = open_artifact(artifact.path, "onnx").run({"x": x})[0]
        assert compare([expected], [got], None)["cosine_mean"] >= 0.99
    assert peaks == {8: 127, 7: 64}, peaks
    assert notes[8] is None and "7-bit" in notes[7]


def _qdq_as_written(path):
    """An onnxruntime session that runs a QDQ graph as written (dequantize, then float arithmetic), not fused into
    integer kernels: on x86 CPUs without VNNI (AVX2 only, as this build host's AMD EPYC), onnxruntime's fused u8 x s8
    kernels saturate their int16 pair sums on inputs near the top of their range, which shifts both models' outputs
    alike (here by 0.147 with or without correction) and hides the weights' error the correction is about."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def test_a_method_the_target_format_lacks_is_refused_before_any_work(digits_files):
    from compressor import load_source
    from compressor.checks import check_request
    from compressor.errors import InvalidInputError
    from compressor.profiles import get_profile

    source, data = load_source(digits_files / "model.pt2", data=digits_files / "data.npz")
    with pytest.raises(InvalidInputError, match="ships ONNX only, and onnxruntime calibrates with minmax"):
        check_request(source, data, get_profile("jetson-orin-nano"), CompressOptions(calibration="mse"))
    check_request(source, data, get_profile("pixel-8"), CompressOptions(calibration="mse"))


def test_an_artifact_the_runtime_cannot_run_is_refused_from_a_child_process(digits_tflite, tmp_path):
    from compressor.probe import runtime_refusal

    base, _ = digits_tflite
    assert runtime_refusal(base, "tflite") is None
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(base.read_bytes()[: len(base.read_bytes()) // 3])
    refusal = runtime_refusal(broken, "tflite")
    assert refusal is not None and refusal.startswith("the tflite runtime aborts loading or running this artifact")


def test_int8_dynamic_keeps_bias_correction_only_where_it_brings_the_model_closer(tmp_path):
    """int8-dynamic TFLite is made with and without bias correction and the one closer to fp32 on the calibration
    samples ships; the report holds both figures.  A layer fed inputs with a large mean (where correction helps)
    keeps it, and the shipped file is the one whose figures the report calls the better."""
    import torch

    from compressor.converters import ConvertInput, convert
    from compressor.profiles import Format
    from compressor.sources import from_module

    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8)).eval()
    x = (4.0 + 0.2 * np.random.default_rng(0).standard_normal((128, 64))).astype(np.float32)
    source = from_module(layer, (torch.from_numpy(x[:1]),))
    job = ConvertInput(source, (torch.from_numpy(x[:1]),), SampleData({"x": x}), tmp_path,
                       (Precision.INT8_DYNAMIC,), weight_granularity="tensor", bias_correction=True)  # fmt: skip
    conversion = convert(Format.TFLITE, job)
    (artifact,) = [a for a in conversion.artifacts if a.precision is Precision.INT8_DYNAMIC]
    assert artifact.error is None, artifact.error
    notes = artifact.notes["bias_correction"]
    assert notes["layers"] == 2 and notes["scored_on"] == 64
    assert notes["kept"] is True
    assert notes["with"]["cosine_mean"] > notes["without"]["cosine_mean"]
    shipped, _ = calibration.Scorer(conversion.base, {"x": x})(artifact.path)
    assert shipped["cosine_mean"] == notes["with"]["cosine_mean"]
    assert not list(tmp_path.rglob("*-plain.tflite"))  # the one not kept is gone


@pytest.mark.parametrize("recovery", [calibration.FLOAT_ACTIVATION_RECOVERY, 1.01], ids=["default", "more-than-all"])
def test_int8_dynamic_runs_the_layer_that_loses_most_on_float_activations(tmp_path, monkeypatch, recovery):
    """A layer whose input has one huge channel loses the others to int8-dynamic's run-time per-tensor input
    quantization.  It is small (within 5% of the model's MACs), so it keeps int8 weights on float activations: the
    shipped int8-dynamic file is the one the report measured closer, and the layers too large for the budget stay
    dynamic.  With one trial allowed, the peak-to-RMS ranking picks it over the other small layer.  Float layers cost
    run time, so they are kept only when they remove enough of the loss: asked to remove more than all of it, they are not."""
    import torch
    from torch import nn

    from compressor.converters import ConvertInput, convert
    from compressor.profiles import Format
    from compressor.sources import from_module

    torch.manual_seed(0)
    monkeypatch.setattr(calibration, "FLOAT_ACTIVATION_TRIALS", 1)
    monkeypatch.setattr(calibration, "FLOAT_ACTIVATION_RECOVERY", recovery)
    model = nn.Sequential(
        nn.Linear(64, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2048), nn.ReLU(), nn.Linear(2048, 16)
    ).eval()
    with torch.no_grad():
        model[0].weight[:, 0] = 1e-3  # the outlier channel barely matters to the output
    x = np.random.default_rng(0).standard_normal((128, 64)).astype(np.float32)
    x[:, 0] = 200.0
    source = from_module(model, (torch.from_numpy(x[:1]),))
    job = ConvertInput(source, (torch.from_numpy(x[:1]),), SampleData({"x": x}), tmp_path,
                       (Precision.INT8_DYNAMIC,), float_activations=True)  # fmt: skip
    conversion = convert(Format.TFLITE, job)
    (artifact,) = [a for a in conversion.artifacts if a.precision is Precision.INT8_DYNAMIC]
    assert artifact.error is None, artifact.error
    notes = artifact.notes["float_activations"]
    assert notes["tried"] == 1  # two small layers fit the MAC budget; one is tried
    assert 0.9 < notes["recovered"] <= 1.0, notes  # the outlier layer was the one tried: the loss mostly goes
    shipped, _ = calibration.Scorer(conversion.base, {"x": x})(artifact.path)
    assert not list(tmp_path.rglob("*-trial.tflite"))
    if recovery > 1.0:
        assert notes["layers"] == [] and shipped == notes["without"]
        return
    assert len(notes["layers"]) == 1 and notes["macs_share"] <= calibration.FLOAT_ACTIVATION_MACS
    assert 1.0 - notes["with"]["cosine_mean"] < 0.1 * (1.0 - notes["without"]["cosine_mean"]), notes
    assert shipped == notes["with"]
