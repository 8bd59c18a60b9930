"""Integer-only targets: the exact max-pool rewrite that keeps PADV2 out of the flatbuffer (finding F7) and the
quantization-aware int8 candidate (``int8-qat``), on tiny real models converted by litert-torch and run in LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

from compressor.graph_rewrites import unpad_max_pools
from compressor.runtimes import open_artifact


def _op_names(path) -> list[str]:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return [names[model.operatorCodes[op.opcodeIndex].builtinCode] for op in model.subgraphs[0].operators]


def _pooled(activation):
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), activation, nn.MaxPool2d(3, stride=2, padding=1), nn.Conv2d(8, 4, 1)
    ).eval()


def test_a_padded_max_pool_after_relu_converts_to_pad_and_gives_the_same_outputs(tmp_path):
    import torch
    from torch import nn

    from compressor.sources import from_module

    module = _pooled(nn.ReLU())
    x = torch.randn(1, 3, 32, 32)
    out = tmp_path / "pool.tflite"
    from_module(module, (x,)).convert_tflite(out, (x,), tmp_path)
    ops = _op_names(out)
    assert "PADV2" not in ops and "PAD" in ops and "MAX_POOL_2D" in ops
    samples = torch.randn(4, 3, 32, 32)
    runner = open_artifact(out, "tflite")
    got = np.concatenate([runner.run({"x": samples[i : i + 1].numpy()})[0] for i in range(4)])
    with torch.no_grad():
        np.testing.assert_allclose(got, module(samples).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_a_max_pool_over_values_that_may_be_negative_is_left_padded(activation):
    import torch
    from torch import nn

    layer = nn.Identity() if activation == "identity" else nn.Tanh()
    graph = torch.export.export(_pooled(layer), (torch.randn(1, 3, 32, 32),)).module()
    assert unpad_max_pools(graph) == 0
