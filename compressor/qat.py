"""Quantization-aware fine-tuning to a full-integer TFLite model (the library behind
``passes/finetune_int8_pass.py``).

Post-training quantization fixes the weights and then picks int8 ranges for them; when that loses too much (deep
depthwise networks, recognisers), integer-only targets have no float layer to fall back on.  Here the model is
exported (``torch.export``), its BatchNorms folded into the convolutions, and litert-torch's PT2E quantizer
(symmetric int8, one weight scale per output channel, QAT form) inserts fake quantization the way LiteRT's
kernels will compute: torchao's ``prepare_qat_pt2e``.  The fake-quantized model is then trained by distillation
against the float model's own outputs (mean squared error, so that what the gate compares — the outputs — is what
is learnt; with labels, cross-entropy is mixed in), so no labels are needed.  Training uses the build's training
samples only, never the validation ones.  ``convert_pt2e`` and litert-torch's converter give the int8 flatbuffer;
its inputs and outputs are int8, as integer-only accelerators need.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from compressor.data import SampleData
from compressor.errors import ConversionError
from compressor.graph_rewrites import EDGE_TPU_REWRITES, drop_noop_pads
from compressor.progress import Stage

__all__ = ["QatConfig", "quantization_aware"]

REPORT_EVERY = 25  # steps per progress event


@dataclass(frozen=True)
class QatConfig:
    """How long and how to train: ``steps`` optimizer steps of ``batch`` samples at ``learning_rate`` (cosine
    decay); ``alpha`` weighs distillation against cross-entropy when there are labels."""

    steps: int
    batch: int = 16
    learning_rate: float = 1e-4
    seed: int = 0
    alpha: float = 0.5

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.learning_rate <= 0:
            raise ValueError(f"QAT needs steps >= 1, batch >= 1 and a positive learning rate; got {self}")


def quantization_aware(
    module,
    sample_args: tuple,
    training: SampleData,
    teacher,
    config: QatConfig,
    out: Path,
    stage: Stage | None = None,
) -> dict:
    """Fine-tune ``module`` with int8 fake quantization on ``training`` against ``teacher``'s outputs, write the
    full-integer TFLite model to ``out`` and return how it was made (for the report).

    ``sample_args`` are batch-of-one tensors (the flatbuffer's shapes); ``teacher`` takes batches of any size.
    Raises :class:`ConversionError` when the flatbuffer does not come out with integer inputs and outputs."""
    import torch

    from compressor.finetune import first_output

    started = time.monotonic()
    torch.manual_seed(config.seed)
    inputs = [torch.from_numpy(np.ascontiguousarray(v)) for v in training.inputs.values()]
    labels = None if training.labels is None else torch.from_numpy(training.labels)
    with torch.no_grad():
        targets = torch.cat(
            [first_output(teacher(*(x[i : i + 64] for x in inputs))) for i in range(0, len(inputs[0]), 64)]
        )
    prepared, batch, quantizer, rewrites = _prepare(module, sample_args, inputs, config.batch)
    losses = _train(prepared, inputs, targets, labels, config, batch, stage)
    _convert(prepared, quantizer, sample_args, out)
    return {
        "steps": config.steps,
        "batch": batch,
        "learning_rate": config.learning_rate,
        "samples": len(inputs[0]),
        "loss": "distillation (MSE to the float model's outputs)" + (" + cross-entropy" if labels is not None else ""),
        "first_loss": round(losses[0], 6),
        "final_loss": round(float(np.mean(losses[-REPORT_EVERY:])), 6),
        "rewrites": rewrites,
        "seconds": round(time.monotonic() - started, 2),
    }


def _quantizer():
    from litert_torch.quantize import pt2e_quantizer as pt2e

    class FoldedBatchNormQuantizer(pt2e.PT2EQuantizer):
        """litert-torch's quantizer without its conv+BatchNorm QAT patterns: the BatchNorms are folded first (their
        pattern tracing fails under torch 2.13, and folded statistics are what the flatbuffer will hold)."""

        STATIC_QAT_ONLY_OPS: ClassVar[list[str]] = []

    return FoldedBatchNormQuantizer().set_global(
        pt2e.get_symmetric_quantization_config(is_per_channel=True, is_qat=True)
    )


def _prepare(module, sample_args: tuple, inputs: list, batch: int):
    """The fake-quantized training graph, the batch it trains on (one when the model's batch is fixed), and the
    quantizer, and how many nodes each of the Edge TPU rewrites changed; observers have seen up to 64 training
    samples."""
    import copy

    import torch
    from torchao.quantization.pt2e import move_exported_model_to_train
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
    from torchao.quantization.pt2e.utils import _fuse_conv_bn_

    module = copy.deepcopy(module)  # training moves the exported graph's parameters, which are the module's own
    try:
        dim = torch.export.Dim("batch", min=1, max=1024)
        pair = tuple(x[:2] for x in inputs)
        graph = torch.export.export(module, pair, dynamic_shapes=tuple({0: dim} for _ in pair)).module()
    except Exception:  # noqa: BLE001 - a program whose batch is fixed trains one sample at a time
        graph, batch = torch.export.export(module, sample_args).module(), 1
    drop_noop_pads(graph)
    rewrites = {rewrite.__name__: rewrite(graph) for rewrite in EDGE_TPU_REWRITES}
    _fuse_conv_bn_(graph)
    quantizer = _quantizer()
    prepared = prepare_qat_pt2e(graph, quantizer)
    move_exported_model_to_train(prepared)
    with torch.no_grad():
        for start in range(0, min(len(inputs[0]), 64), batch):
            prepared(*(x[start : start + batch] for x in inputs))
    return prepared, batch, quantizer, rewrites


def _train(prepared, inputs: list, targets, labels, config: QatConfig, batch: int, stage: Stage | None) -> list:
    import torch

    from compressor.finetune import first_output

    params = [p for p in prepared.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    for step in range(config.steps):
        rows = torch.randint(0, len(inputs[0]), (batch,), generator=generator)
        output = first_output(prepared(*(x[rows] for x in inputs)))
        loss = torch.nn.functional.mse_loss(output, targets[rows])
        if labels is not None and output.dim() == 2:
            loss = config.alpha * loss + (1 - config.alpha) * torch.nn.functional.cross_entropy(output, labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if stage is not None and (step + 1) % REPORT_EVERY == 0:
            stage.advance(f"step {step + 1}/{config.steps}: loss {np.mean(losses[-REPORT_EVERY:]):.5f}")
    return losses


def _convert(prepared, quantizer, sample_args: tuple, out: Path) -> None:
    """Write the int8 flatbuffer of the trained graph, batch of one."""
    import litert_torch
    import torch
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    move_exported_model_to_eval(prepared)
    converted = convert_pt2e(prepared, fold_quantize=False)
    graph = torch.export.export(converted, sample_args).module()  # the batch of the flatbuffer: one
    litert_torch._config.config.show_progress = False  # noqa: SLF001 - keep the user's terminal for our bars
    litert_torch.convert(graph, sample_args, quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(str(out))
    floats = _float_io(out)
    if floats:
        raise ConversionError(f"QAT flatbuffer has float inputs/outputs {floats}; integer-only targets need int8")


def _float_io(path: Path) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    details = interpreter.get_input_details() + interpreter.get_output_details()
    return [d["name"] for d in details if not np.issubdtype(d["dtype"], np.integer)]
