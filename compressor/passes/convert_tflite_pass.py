"""Convert the source model to TFLite once in fp32, then quantize it with ai-edge-quantizer per precision.

PyTorch sources (and ONNX ones, through onnx2torch) go through litert-torch;
Keras sources through TensorFlow's TFLiteConverter.  Every precision is
derived from the same fp32 flatbuffer: fp16 by casting weights, int8-dynamic by
per-channel int8 weights with float activations, int8-full by per-channel int8
weights and int8 activations calibrated on the user's data (int8 model inputs
and outputs included, as integer-only accelerators need).  Clustered variants
take one weight scale per tensor instead, so their shared values stay shared.
"""

from __future__ import annotations

import shutil

import numpy as np

from compressor.candidates import derive_candidates
from compressor.errors import ConversionError, EdgeForgeError
from compressor.native_output import captured
from compressor.profiles import Format, Precision
from compressor.state import BuildState

FORMAT = Format.TFLITE


def run(state: BuildState) -> None:
    precisions = state.precisions_for(FORMAT)
    stage = state.progress.stage("convert tflite", len(precisions) + 1)
    base = state.workdir / "fp32-base.tflite"
    with captured(state.workdir / "converter.log"):
        convert_fp32(state, base)
    stage.advance("fp32 flatbuffer")
    derive_candidates(state, FORMAT, base, quantize, stage)


def convert_fp32(state: BuildState, out) -> None:
    """Write the plain fp32 TFLite conversion of the source model to ``out`` (batch of one, static shapes)."""
    try:
        if state.source.family == "keras":
            _convert_keras(state, out)
        else:
            _convert_torch(state, out)
    except EdgeForgeError:
        raise
    except Exception as exc:
        raise ConversionError(
            f"converting {state.source.format} model to TFLite failed ({type(exc).__name__}: {str(exc)[:400]}); "
            "see converter.log in the work directory"
        ) from exc


def _convert_torch(state: BuildState, out) -> None:
    import litert_torch

    litert_torch._config.config.show_progress = False  # noqa: SLF001 - keep the user's terminal for our bars
    module = state.source.torch_module()
    edge_model = litert_torch.convert(module, state.torch_sample_args())
    edge_model.export(str(out))


def _convert_keras(state: BuildState, out) -> None:
    """Keras -> SavedModel (Keras' own export, batch of one) -> TFLite with TensorFlow's converter."""
    import tensorflow as tf

    saved = state.workdir / "keras-saved-model"
    specs = [
        tf.TensorSpec(s.with_batch(1).shape, tf.dtypes.as_dtype(s.dtype), name=s.name) for s in state.source.inputs
    ]
    state.source.handle.export(str(saved), format="tf_saved_model", input_signature=specs, verbose=False)
    out.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())


def _recipe(precision: Precision, per_tensor_weights: bool = False):
    """ai-edge-quantizer's stock recipe for ``precision``; integer weights with one scale per tensor if asked.

    Depthwise kernels keep one scale per channel even then: LiteRT 2.3 computes garbage for an int8-dynamic
    depthwise convolution with a per-tensor scale (measured here, in XNNPACK and the builtin kernels alike),
    and they are too small for their size to matter.
    """
    from ai_edge_quantizer import qtyping, recipe_manager

    manager = recipe_manager.RecipeManager()
    ops = qtyping.TFLOperationName
    channelwise = qtyping.QuantGranularity.CHANNELWISE
    if precision is Precision.FP16:
        manager.add_weight_only_config(".*", ops.ALL_SUPPORTED, num_bits=16, algorithm_key="float_casting")
        return manager.get_quantization_recipe()
    granularities = [(ops.ALL_SUPPORTED, qtyping.QuantGranularity.TENSORWISE if per_tensor_weights else channelwise)]
    if per_tensor_weights:
        granularities.append((ops.DEPTHWISE_CONV_2D, channelwise))  # a later, narrower entry wins
    for op, granular in granularities:
        if precision is Precision.INT8_DYNAMIC:
            manager.add_dynamic_config(".*", op, num_bits=8, granularity=granular)
        else:
            manager.add_static_config(".*", op, activation_num_bits=8, weight_num_bits=8, weight_granularity=granular)
    return manager.get_quantization_recipe()


def quantize(base, out, precision: Precision, state: BuildState) -> None:
    """Derive the ``precision`` artifact from the fp32 flatbuffer ``base``."""
    if precision is Precision.FP32:
        shutil.copyfile(base, out)
        return
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer

    engine = quantizer.Quantizer(str(base), _recipe(precision, state.per_tensor_weights))
    calibration = None
    if engine.need_calibration:
        interpreter = Interpreter(model_path=str(base))
        key = next(iter(interpreter.get_signature_list()))
        by_tensor = {d["index"]: name for name, d in interpreter.get_signature_runner(key).get_input_details().items()}
        names = [by_tensor[d["index"]] for d in interpreter.get_input_details()]  # positional order
        data = state.calibration()
        samples = [
            {name: np.ascontiguousarray(array[i : i + 1]) for name, array in zip(names, data.inputs.values())}
            for i in range(len(data))
        ]
        calibration = engine.calibrate({key: samples})
    engine.quantize(calibration, enable_progress_report=False).export_model(str(out), overwrite=True)
