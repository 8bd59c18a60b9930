"""GPTQ rounding of int8 weights (:mod:`compressor.gptq`, issue 15): on the quantizer's own grid, with less output
error than nearest rounding, surviving ai-edge-quantizer's int8-dynamic quantization exactly, and shipped by the
TFLite converter only when it is the int8-dynamic file closest to fp32 on the calibration samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_int4_qat import _bert, _tokens

from compressor import calibration, gptq
from compressor.converters import ConvertInput, convert
from compressor.converters.tflite import recipe
from compressor.data import SampleData
from compressor.metrics import compare
from compressor.profiles import Format, Precision
from compressor.runtimes import open_artifact
from compressor.sources import from_module

pytestmark = pytest.mark.slow  # converts a real model: not part of make test-fast


def _correlated(count: int, rng: np.random.Generator, mixing: np.ndarray) -> np.ndarray:
    return rng.standard_normal((count, mixing.shape[0])) @ mixing


def test_gptq_rounds_on_the_quantizers_grid_with_less_output_error_than_nearest():
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((96, 96)) * np.exp(rng.standard_normal(96))[:, None]  # correlated, uneven inputs
    weights = rng.standard_normal((48, 96)) * np.exp(0.8 * rng.standard_normal((48, 96)))  # heavy-tailed
    weights[5] = 0.0  # a row of zeros stays zeros
    fit = _correlated(4096, rng, mixing)
    rounded = gptq.round_matrix(weights, fit.T @ fit / len(fit))

    scale = np.abs(weights).max(axis=1) / 127
    levels = rounded[scale > 0] / scale[scale > 0, None]
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-6)  # on the grid
    assert np.abs(levels).max() <= 127 + 1e-6
    np.testing.assert_allclose(np.abs(levels).max(axis=1), 127, atol=1e-6)  # the quantizer derives the same scale
    assert not rounded[5].any()

    nearest = calibration.quantize_weights(weights, axis=0)
    held_out = _correlated(4096, rng, mixing)  # inputs the rounding never saw

    def output_error(candidate: np.ndarray) -> float:
        return float(np.mean(((candidate - weights) @ held_out.T) ** 2))

    assert output_error(rounded) < 0.5 * output_error(nearest)


def _quantized_weights(path) -> dict[str, np.ndarray]:
    """Each int8 weight tensor of a flatbuffer, dequantized, by tensor name."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    found = {}
    for detail in interpreter.get_tensor_details():
        parameters = detail["quantization_parameters"]
        if detail["dtype"] == np.int8 and len(detail["shape"]) == 2 and len(parameters["scales"]):
            values = interpreter.get_tensor(detail["index"]).astype(np.float64)
            found[detail["name"]] = values * parameters["scales"][:, None]
    return found


def test_int8_dynamic_ships_the_gptq_rounding_which_survives_quantization_and_holds_out(tmp_path):
    """A BERT encoder from ``transformers``' config through litert-torch: the converter offers GPTQ-rounded weights,
    ships them (closest on the calibration samples), ai-edge-quantizer keeps GPTQ's integers exactly, and the file
    is closer to fp32 than nearest rounding on tokens it never saw."""
    model = _bert()
    fit, held_out = _tokens(64, 0), _tokens(64, 1)
    example = tuple(torch.from_numpy(fit[name][:1]) for name in ("input_ids", "attention_mask"))
    job = ConvertInput(from_module(model, example), example, SampleData(fit), tmp_path, (Precision.INT8_DYNAMIC,),
                       bias_correction=True, gptq=True)  # fmt: skip
    conversion = convert(Format.TFLITE, job)
    (artifact,) = [a for a in conversion.artifacts if a.precision is Precision.INT8_DYNAMIC]
    assert artifact.error is None, artifact.error
    notes = artifact.notes["gptq"]
    assert notes["layers"] == 12 and notes["kept"] is True, notes  # 6 fully connected layers per BERT layer
    assert artifact.notes["weights_from"] == "gptq" and artifact.notes["bias_correction"]["kept"] is False
    shipped, _ = calibration.Scorer(conversion.base, fit)(artifact.path)
    assert shipped == notes["figures"]
    assert not list(tmp_path.rglob("*-plain.tflite")) and not list(tmp_path.rglob("*-bias-corrected.tflite"))

    original, rounded = _float_weights(conversion.base), _float_weights(tmp_path / "fp32-gptq.tflite")
    moved = [name for name, values in rounded.items() if not np.array_equal(values, original[name])]
    quantized = _quantized_weights(artifact.path)
    assert len(moved) == 12 and set(moved) <= set(quantized)
    for name in moved:
        np.testing.assert_allclose(quantized[name], rounded[name], rtol=1e-5, atol=1e-7)  # GPTQ's integers, exactly

    plain = tmp_path / "nearest.tflite"
    _int8_dynamic(conversion.base, plain)
    reference = open_artifact(conversion.base, "tflite").run(held_out)
    loss = {
        way: 1.0 - compare(reference, open_artifact(path, "tflite").run(held_out), None)["cosine_mean"]
        for way, path in (("gptq", artifact.path), ("nearest", plain))
    }
    assert loss["gptq"] < 0.8 * loss["nearest"], loss


def test_per_tensor_weights_are_not_gptq_rounded(tmp_path):
    """Clustered variants quantize with one scale per tensor to keep their shared values shared: no GPTQ there."""
    model = _bert()
    fit = _tokens(16, 0)
    example = tuple(torch.from_numpy(fit[name][:1]) for name in ("input_ids", "attention_mask"))
    job = ConvertInput(from_module(model, example), example, SampleData(fit), tmp_path, (Precision.INT8_DYNAMIC,),
                       weight_granularity="tensor", gptq=True)  # fmt: skip
    (artifact,) = [a for a in convert(Format.TFLITE, job).artifacts if a.precision is Precision.INT8_DYNAMIC]
    assert artifact.error is None, artifact.error
    assert "gptq" not in (artifact.notes or {}) and not list(tmp_path.rglob("fp32-gptq.tflite"))


def _float_weights(path) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    return {
        d["name"]: interpreter.get_tensor(d["index"]).astype(np.float64)
        for d in interpreter.get_tensor_details()
        if d["dtype"] == np.float32 and len(d["shape"]) == 2 and _is_constant(interpreter, d)
    }


def _is_constant(interpreter, detail) -> bool:
    try:
        interpreter.get_tensor(detail["index"])
    except ValueError:
        return False
    return True


def _int8_dynamic(base, out) -> None:
    from ai_edge_quantizer import quantizer

    engine = quantizer.Quantizer(calibration.model_bytes(base), recipe(Precision.INT8_DYNAMIC))
    engine.quantize(None, enable_progress_report=False).export_model(str(out), overwrite=True)


def test_a_failing_gptq_rounding_leaves_int8_dynamic_to_the_other_contenders(tmp_path, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("no second moments")

    monkeypatch.setattr(gptq, "write_rounded", broken)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    x = np.random.default_rng(0).standard_normal((32, 16)).astype(np.float32)
    example = (torch.from_numpy(x[:1]),)
    job = ConvertInput(from_module(model, example), example, SampleData({"x": x}), tmp_path, (Precision.INT8_DYNAMIC,),
                       bias_correction=True, gptq=True)  # fmt: skip
    (artifact,) = convert(Format.TFLITE, job).artifacts
    assert artifact.error is None and artifact.path.is_file()
    assert artifact.notes["gptq"] == {"layers": 0, "error": "GPTQ rounding failed: RuntimeError: no second moments"}
    assert artifact.notes["weights_from"] in ("bias-corrected", "plain")


def test_second_moments_past_the_memory_bound_leave_their_layers_to_nearest_rounding(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    x = np.random.default_rng(0).standard_normal((32, 16)).astype(np.float32)
    example = (torch.from_numpy(x[:1]),)
    job = ConvertInput(from_module(model, example), example, SampleData({"x": x}), tmp_path, (Precision.FP32,))
    base = convert(Format.TFLITE, job).base
    assert gptq.write_rounded(base, tmp_path / "all.tflite", {"x": x}) == 2
    monkeypatch.setattr(gptq, "MOMENT_BYTES", 8 * 16 * 16)  # room for the first layer's 16×16 moments only
    assert gptq.write_rounded(base, tmp_path / "first.tflite", {"x": x}) == 1
