"""Per-tensor int8 error of a zoo torch model quantized as the pipeline does (docs/coverage-findings.md F6).

litert-torch fp32 conversion, then ai-edge-quantizer with ``convert_tflite_pass._recipe`` (int8-full calibrated
on the zoo data, and int8-dynamic), then the quantizer's own validator: MSE of every tensor against fp32.

    .venv/bin/python bench/probes/int8_layers.py mobilenet_v2-dyn
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main(name: str) -> None:
    import litert_torch
    import torch
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer
    from ai_edge_quantizer.utils import validation_utils
    from compressor.passes.convert_tflite_pass import _recipe
    from model_zoo import build, feeds_for, import_output_types

    from compressor.profiles import Precision

    import_output_types()
    zoo_model = build(name, ROOT / "build" / "zoo")
    data = next(iter(feeds_for(zoo_model).values()))
    work = ROOT / "build" / "probes" / name
    work.mkdir(parents=True, exist_ok=True)
    base = work / "fp32.tflite"
    litert_torch._config.config.show_progress = False
    module = torch.export.load(str(zoo_model.model)).module()
    litert_torch.convert(module, (torch.from_numpy(data[:1]),)).export(str(base))
    interpreter = Interpreter(model_path=str(base))
    key = next(iter(interpreter.get_signature_list()))
    input_name = next(iter(interpreter.get_signature_runner(key).get_input_details()))
    samples = [{input_name: data[i : i + 1]} for i in range(len(data))]
    for precision in (Precision.INT8_FULL, Precision.INT8_DYNAMIC):
        engine = quantizer.Quantizer(str(base), _recipe(precision))
        engine.quantize(engine.calibrate({key: samples}) if engine.need_calibration else None)
        result = engine.validate({key: samples}, error_metrics=[validation_utils.ValidationErrorMetric.MSE])
        signature = result.get_signature_comparison_result(key)
        outputs = {t: float(v["mse"] if isinstance(v, dict) else v) for t, v in signature.output_tensors.items()}
        print(precision.value, "output MSE:", {t: f"{v:.3g}" for t, v in outputs.items()})
        worst = sorted(signature.intermediate_tensors.items(), key=lambda kv: -float(np.max(list(kv[1].values()))))
        for tensor, errors in worst[:6]:
            print(f"   {tensor[-80:]}: {float(np.max(list(errors.values()))):.3g}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "mobilenet_v2-dyn")
