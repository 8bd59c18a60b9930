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


def test_a_hard_sigmoid_converts_to_relu6_and_gives_the_same_outputs(tmp_path):
    """onnx2torch's HardSigmoid (``clip(x * 0.2 + 0.5, 0, 1)``) would lower to RELU_0_TO_1, outside the Edge TPU's
    list (F12); after the rewrite the flatbuffer has no RELU_0_TO_1 (litert-torch fuses the RELU6 into the MUL
    before it) and the same outputs, clamped.  A clamp to another range is left alone."""
    import torch
    from torch import nn

    from compressor.graph_rewrites import unit_clamps_as_relu6
    from compressor.sources import from_module

    class Gate(nn.Module):
        def __init__(self, high: float) -> None:
            super().__init__()
            self.conv, self.high = nn.Conv2d(3, 8, 3, padding=1), high

        def forward(self, x):
            y = self.conv(x)
            return y * torch.clip(y * 0.2 + 0.5, min=0.0, max=self.high)

    torch.manual_seed(0)
    module, x = Gate(1.0).eval(), torch.randn(1, 3, 16, 16)
    out = tmp_path / "gate.tflite"
    from_module(module, (x,)).convert_tflite(out, (x,), tmp_path)
    ops = _op_names(out)
    assert "RELU_0_TO_1" not in ops and set(ops) <= {"TRANSPOSE", "CONV_2D", "MUL", "ADD"}, ops
    samples = 3 * torch.randn(4, 3, 16, 16)
    runner = open_artifact(out, "tflite")
    got = np.concatenate([runner.run({"x": samples[i : i + 1].numpy()})[0] for i in range(4)])
    with torch.no_grad():
        np.testing.assert_allclose(got, module(samples).numpy(), rtol=1e-5, atol=1e-5)
        y = module.conv(samples)
        assert not np.allclose(got, (y * (y * 0.2 + 0.5)).numpy(), atol=1e-2)  # the clamp is still there
    other = torch.export.export(Gate(2.0).eval(), (x,)).module()
    assert unit_clamps_as_relu6(other) == 0


def test_a_written_out_layer_norm_converts_to_rsqrt_and_gives_the_same_outputs(tmp_path):
    """``(x - mean) / sqrt(var + eps)``, as ONNX exporters write LayerNorm (PP-OCR's recogniser), would lower to
    SQRT and DIV, outside the Edge TPU's list; after the rewrite the flatbuffer has RSQRT instead, and the same
    outputs.  A division by anything else is left alone."""
    import torch
    from torch import nn

    from compressor.graph_rewrites import divisions_by_roots_as_rsqrt
    from compressor.sources import from_module

    class Norm(nn.Module):
        def forward(self, x):
            centred = x - x.mean(dim=-1, keepdim=True)
            return centred / torch.sqrt((centred * centred).mean(dim=-1, keepdim=True) + 1e-5) / (x.abs() + 1.0)

    module, x = Norm().eval(), torch.randn(1, 8, 32)
    out = tmp_path / "norm.tflite"
    from_module(module, (x,)).convert_tflite(out, (x,), tmp_path)
    ops = _op_names(out)
    assert "RSQRT" in ops and "SQRT" not in ops and ops.count("DIV") == 1, ops  # the other division stays
    samples = 5 * torch.randn(4, 8, 32) + 2
    runner = open_artifact(out, "tflite")
    got = np.concatenate([runner.run({"x": samples[i : i + 1].numpy()})[0] for i in range(4)])
    with torch.no_grad():
        np.testing.assert_allclose(got, module(samples).numpy(), rtol=1e-5, atol=1e-5)
    graph = torch.export.export(module, (x,)).module()
    assert divisions_by_roots_as_rsqrt(graph) == 1


@pytest.mark.parametrize("spelling", ["matmul", "sdpa", "sdpa-attend-everywhere"])
def test_attention_matmuls_convert_to_mul_and_sum_for_a_target_without_batch_matmul(tmp_path, spelling):
    """Self-attention's ``q @ k^T`` and ``weights @ v`` (two activations, written out or as
    ``scaled_dot_product_attention``, as transformers' models call it, ViT and DeiT with a boolean mask built from
    constants that is true everywhere) lower to BATCH_MATMUL, which the Edge TPU
    lacks, and a feed-forward GELU to GELU, also missing; for coral's operator list the flatbuffer has MUL, SUM and
    LOGISTIC instead, with the same outputs (the GELU within its tanh form's 5e-4); the projections (a parameter
    times an activation) stay FULLY_CONNECTED, and a target that runs every op keeps BATCH_MATMUL and GELU."""
    import torch
    from torch import nn

    from compressor.profiles import get_profile
    from compressor.sources import from_module

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.heads, self.out = nn.Linear(32, 96), 4, nn.Linear(32, 32)

        def forward(self, x):
            q, k, v = self.qkv(x).reshape(1, 10, 3, self.heads, 8).permute(2, 0, 3, 1, 4)
            if spelling.startswith("sdpa"):
                everywhere = (torch.arange(10)[None, None, None, :] >= 0).expand(1, -1, 10, 10)
                mask = everywhere if spelling == "sdpa-attend-everywhere" else None
                mixed = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            else:
                mixed = torch.softmax(q @ k.transpose(-2, -1) / 8**0.5, dim=-1) @ v
            return nn.functional.gelu(self.out(mixed.transpose(1, 2).reshape(1, 10, 32)))

    torch.manual_seed(0)
    module, x = Attention().eval(), torch.randn(1, 10, 32)
    coral = get_profile("coral-edgetpu").accepts.op_allowlist
    rewritten, plain = tmp_path / "rewritten.tflite", tmp_path / "plain.tflite"
    from_module(module, (x,)).convert_tflite(rewritten, (x,), tmp_path, coral)
    from_module(module, (x,)).convert_tflite(plain, (x,), tmp_path)
    ops = _op_names(rewritten)
    assert not set(ops) - set(coral) and "SUM" in ops and "FULLY_CONNECTED" in ops, ops
    assert _op_names(plain).count("BATCH_MATMUL") == 2 and "GELU" in _op_names(plain)
    runner = open_artifact(rewritten, "tflite")
    with torch.no_grad():
        for sample in 3 * torch.randn(4, 1, 10, 32):
            np.testing.assert_allclose(runner.run({"x": sample.numpy()})[0], module(sample).numpy(), atol=1e-3)


def test_a_softmax_over_one_position_converts_to_a_constant(tmp_path):
    """Attention over a single position (MobileViT's last stage on a small image): its softmax is 1.0 everywhere,
    and the flatbuffer has no EXP or DIV for it (outside the Edge TPU's list), with the same outputs."""
    import torch
    from torch import nn

    from compressor.sources import from_module

    class OnePatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(self, x):  # x: [B * patch area, 1 patch, 8], as MobileViT's transformer sees a one-patch map
            weights = torch.softmax(self.q(x) @ self.k(x).transpose(-2, -1), dim=-1)
            return weights @ self.v(x) + torch.softmax(x, dim=-1)  # the second softmax is over 8 positions: kept

    torch.manual_seed(0)
    module, x = OnePatch().eval(), torch.randn(4, 1, 8)
    out = tmp_path / "one.tflite"
    from_module(module, (x,)).convert_tflite(out, (x,), tmp_path)
    ops = _op_names(out)
    assert "EXP" not in ops and "DIV" not in ops and ops.count("SOFTMAX") == 1, ops
    runner = open_artifact(out, "tflite")
    with torch.no_grad():
        for sample in torch.randn(3, 4, 1, 8):
            np.testing.assert_allclose(runner.run({"x": sample.numpy()})[0], module(sample).numpy(), atol=1e-5)


def test_attention_with_a_mask_from_the_input_keeps_its_batch_matmul():
    """A mask computed from a model input masks something on some input: the rewrite leaves that attention alone."""
    import torch
    from torch import nn

    from compressor.graph_rewrites import activation_matmuls_as_mul_sum

    class Masked(nn.Module):
        def forward(self, q, k, v):
            return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=q.sum(-1, keepdim=True) > 0)

    q = torch.randn(1, 2, 6, 8)
    graph = torch.export.export(Masked(), (q, q, q)).module()
    assert activation_matmuls_as_mul_sum(graph) == 0


@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_a_max_pool_over_values_that_may_be_negative_is_left_padded(activation):
    import torch
    from torch import nn

    layer = nn.Identity() if activation == "identity" else nn.Tanh()
    graph = torch.export.export(_pooled(layer), (torch.randn(1, 3, 32, 32),)).module()
    assert unpad_max_pools(graph) == 0


def _depthwise_net():
    """A small MobileNet-like block stack (depthwise + ReLU6, a residual add) whose per-tensor int8 activations lose
    the small channels beside the large ones."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
            self.block = nn.Sequential(
                nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False),
                nn.BatchNorm2d(16),
                nn.ReLU6(),
                nn.Conv2d(16, 16, 1, bias=False),
                nn.BatchNorm2d(16),
            )
            self.head = nn.Linear(16, 10)

        def forward(self, x):
            y = self.stem(x)
            return self.head((y + self.block(y)).mean((2, 3)))

    net = Net()
    with torch.no_grad():  # channel scales over two orders of magnitude, as trained depthwise layers have
        for bn in (net.stem[1], net.block[1], net.block[4]):
            bn.weight.copy_(torch.logspace(-2, 0.5, 16)[torch.randperm(16)])
            bn.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.mark.slow
def test_qat_candidate_is_integer_only_and_closer_to_float_than_post_training_int8(tmp_path):
    import torch

    import compressor
    from compressor.errors import GateFailedError
    from compressor.options import CompressOptions

    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 3, 32, 32)).astype(np.float32)
    options = CompressOptions(min_cosine=0.99999, qat_steps=150, latency_repeats=1, latency_warmup=0)
    try:  # the gate is set so that plain int8 misses it; whether QAT passes it is not the point here
        report = compressor.compress(
            _depthwise_net(),
            "coral-edgetpu",
            tmp_path / "out",
            data={"x": x},
            example_inputs=(torch.from_numpy(x[:1]),),
            options=options,
        ).report
    except GateFailedError as exc:
        report = exc.report
    assert report is not None
    by_name = {a["name"]: a for a in report["artifacts"]}
    plain, qat = by_name["int8-full.tflite"], by_name["int8-qat.int8-full.tflite"]
    assert qat["error"] is None, qat["error"]
    tensors = qat["io"]["inputs"] + qat["io"]["outputs"]
    assert all(np.issubdtype(np.dtype(t["dtype"]), np.integer) for t in tensors)
    assert qat["metrics"]["cosine_mean"] > plain["metrics"]["cosine_mean"]  # on the held-out validation samples
