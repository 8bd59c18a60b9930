"""Where all-MiniLM-L6-v2's int4 loss comes from, and what recovers it (issue 15's ≤ 0.15x at cosine ≥ 0.99).

``algorithms``: the fp32 flatbuffer EdgeForge builds for ``pixel-8``, quantized by ai-edge-quantizer with one
uniform plan at a time (every fully connected layer and the word-embedding table at one precision and algorithm),
measured in LiteRT against the original model on the bench's validation and held-out sentences.  Calibration-based
algorithms (OSCAR, GPTQ, MSE) are calibrated on the first sentences only, the ones the build would fit on.

``qat``: int4 in blocks of 32 with the quantizer's own scale rule (block max / 7, scale rounded to bfloat16) as fake
quantization in PyTorch (straight-through), every linear weight and the word embeddings, trained by distillation on
the same fitting sentences (1 - cosine against the original's embeddings); each batch blends two sentences position
by position (ids and mask together) so that the teacher labels inputs the 50 sentences lack.  Measured in PyTorch
(fake-quantized), held-out sentences never trained on.

    .venv/bin/python bench/probes/int4_minilm.py algorithms
    .venv/bin/python bench/probes/int4_minilm.py qat [--steps 600] [--mix 0.3] [--lr 6e-5] [--upgrade-kb 420]

After training, ``qat`` keeps the layers whose int4 loses the most cosine on the fitting sentences per byte above
int4 (one at a time, measured with the rest fake-quantized) within ``--upgrade-kb`` (420 KB: what 0.15x leaves over
uniform b32), as if at int8 (taken as lossless), and prints the held-out cosine of that mix; ``--raise-first``
chooses those layers on the untrained model and trains with them above int4.  ``--tflite`` then converts the
trained model (the pipeline's fp32 TFLite route), quantizes it with min-max scales (int4 b32 where it was trained
on that grid, int8 per channel for the layers kept above it) and measures the file in LiteRT.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

FIT = 50  # sentences the build fits on (of the bench's 72): calibration and training
BLOCK = 32

# name: (fully connected algorithm, its granularity, embedding granularity, embedding algorithm, embedding bits)
PLANS = {
    "min-max b32": ("MIN_MAX_UNIFORM_QUANT", "BLOCKWISE_32", "BLOCKWISE_32", "MIN_MAX_UNIFORM_QUANT", 4),
    "OSCAR b32": ("OSCAR", "BLOCKWISE_32", "BLOCKWISE_32", "MIN_MAX_UNIFORM_QUANT", 4),
    "GPTQ b32": ("GPTQ", "BLOCKWISE_32", "BLOCKWISE_32", "MIN_MAX_UNIFORM_QUANT", 4),
    "GPTQ per channel": ("GPTQ", "CHANNELWISE", "CHANNELWISE", "MIN_MAX_UNIFORM_QUANT", 4),
    "OSCAR b32, embeddings MSE per row": ("OSCAR", "BLOCKWISE_32", "CHANNELWISE", "MSE", 4),
    "Hadamard b32 (decomposed)": (
        "DECOMPOSED_HADAMARD_ROTATION",
        "BLOCKWISE_32",
        "BLOCKWISE_32",
        "DECOMPOSED_HADAMARD_ROTATION",
        4,
    ),
    "OSCAR b32, embeddings int8": ("OSCAR", "BLOCKWISE_32", "CHANNELWISE", "MIN_MAX_UNIFORM_QUANT", 8),
}


def _fp32_flatbuffer(module, data: dict):
    """``module``'s source and the fp32 TFLite flatbuffer EdgeForge's pipeline converts it to for ``pixel-8``."""
    import torch

    from compressor import CompressOptions, Precision, load_source, run_build
    from compressor.profiles import Format

    example = tuple(torch.from_numpy(data[name][:1]) for name in ("input_ids", "attention_mask"))
    source, samples = load_source(module, example, data)
    work = Path(tempfile.mkdtemp(prefix="int4-minilm-"))
    state = run_build(source, samples, "pixel-8", CompressOptions(precisions=(Precision.FP32,)), workdir=work)
    return source, state.results.bases[("", Format.TFLITE)]


def algorithms() -> None:
    from ai_edge_quantizer import calibrator, qtyping, quantizer, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from mixed_precision import minilm

    from compressor.converters.tflite import signature_samples
    from compressor.metrics import compare
    from compressor.mixed_precision import weighted_layers
    from compressor.native_output import captured
    from compressor.profiles import Format
    from compressor.runtimes import HOST_THREADS, open_artifact

    module, data, held = minilm(32)
    source, base = _fp32_flatbuffer(module, data)
    work = base.parent
    layers = weighted_layers(base)
    rest = {k: v[FIT:] for k, v in data.items()}
    sets = {"validation": rest, "held-out": held}
    references = {name: source.reference_runner().run(inputs) for name, inputs in sets.items()}
    print(f"{'plan':36} {'ratio':>6} {'val cos':>8} {'held cos':>8} {'held min':>8}")
    for name, (fc_algorithm, fc_granularity, emb_granularity, emb_algorithm, emb_bits) in PLANS.items():
        manager = recipe_manager.RecipeManager()
        for layer in layers:
            fc = layer.op == "FULLY_CONNECTED"
            manager.add_dynamic_config(
                regex=f"^{re.escape(layer.scope)}$",
                operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                num_bits=4 if fc else emb_bits,
                granularity=qtyping.QuantGranularity(fc_granularity if fc else emb_granularity),
                algorithm_key=AlgorithmName[fc_algorithm if fc else emb_algorithm],
            )
        out = work / "plan.tflite"
        with captured(work / "quantizer.log"):
            engine = calibrator.Calibrator(base.read_bytes(), num_threads=HOST_THREADS)
            engine.calibrate(signature_samples(base, {k: v[:FIT] for k, v in data.items()}), manager)
            quantized = quantizer.Quantizer(base.read_bytes(), manager.get_quantization_recipe())
            quantized.quantize(engine.get_model_qsvs(), enable_progress_report=False).export_model(str(out), True)
        runner = open_artifact(out, Format.TFLITE.value)
        got = {name: compare(references[name], runner.run(inputs), None) for name, inputs in sets.items()}
        print(
            f"{name:36} {out.stat().st_size / base.stat().st_size:>6.4f} {got['validation']['cosine_mean']:>8.4f} "
            f"{got['held-out']['cosine_mean']:>8.4f} {got['held-out']['cosine_min']:>8.4f}",
            flush=True,
        )


def qat(steps: int, mix: float, lr: float, upgrade_kb: float, raise_first: bool, tflite: bool) -> None:
    import torch
    import torch.nn.utils.parametrize as parametrize
    from mixed_precision import minilm

    class Int4Blocks(torch.nn.Module):
        enabled = True  # off: the layer kept above int4 (int8 is taken as lossless)
        gamma: list  # [the LayerNorm scale before this layer], which the converter folds into its weights

        def forward(self, w: torch.Tensor) -> torch.Tensor:
            if not self.enabled:
                return w
            g = self.gamma[0] if self.gamma else torch.ones(w.shape[-1])
            folded = w * g  # what the flatbuffer holds: the grid must be this tensor's
            blocks = folded.reshape(w.shape[0], -1, BLOCK)
            scale = (blocks.abs().amax(-1, keepdim=True).clamp(min=1e-9) / 7).to(torch.bfloat16).float().detach()
            rounded = torch.clamp(torch.round(blocks / scale), -8, 7) * scale
            return (blocks + (rounded - blocks).detach()).reshape(w.shape) / g

    torch.manual_seed(0)
    teacher, data, held = minilm(32)
    student = copy.deepcopy(teacher)
    quantized = {}  # the fake quantizer of each weight, and its bytes added when raised from int4 b32 to int8
    bert = student.encoder
    before = {}  # BERT's LayerNorm ahead of each projection (litert-torch folds its scale into the weights)
    for i, layer in enumerate(bert.encoder.layer):
        norm = bert.embeddings.LayerNorm if i == 0 else bert.encoder.layer[i - 1].output.LayerNorm
        attention = layer.attention.self
        before.update({attention.query: norm, attention.key: norm, attention.value: norm})
        before[layer.intermediate.dense] = layer.attention.output.LayerNorm
    for m in student.modules():
        word_table = isinstance(m, torch.nn.Embedding) and m.weight.shape[0] > 1024  # not position/type
        if (isinstance(m, torch.nn.Linear) or word_table) and m.weight.shape[-1] % BLOCK == 0:
            fake = Int4Blocks()
            fake.gamma = [before[m].weight] if m in before else []
            parametrize.register_parametrization(m, "weight", fake)
            quantized[m.parametrizations.weight[0]] = m.weight.numel() * (1 - 0.5 - 2 / BLOCK)

    def tensors(arrays: dict, part: slice) -> list:
        return [torch.from_numpy(arrays[k][part]).long() for k in ("input_ids", "attention_mask")]

    fit, val, held_out = tensors(data, slice(0, FIT)), tensors(data, slice(FIT, None)), tensors(held, slice(None))
    with torch.no_grad():
        want_val, want_held = teacher(*val), teacher(*held_out)

    def cosine(a, b) -> float:
        return torch.nn.functional.cosine_similarity(a, b).mean().item()

    if upgrade_kb > 0 and raise_first:  # chosen on the untrained model, then trained with those layers above int4
        _raise_layers(student, quantized, fit, val, held_out, teacher, upgrade_kb, cosine)
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for step in range(steps + 1):
        if step % 100 == 0:
            with torch.no_grad():
                print(
                    f"step {step:4}: validation cosine {cosine(student(*val), want_val):.4f}, "
                    f"held-out {cosine(student(*held_out), want_held):.4f}",
                    flush=True,
                )
        if step == steps:
            break
        pick, other = torch.randperm(FIT)[:16], torch.randint(0, FIT, (16,))
        blend = torch.rand(16, fit[0].shape[1]) < mix
        x = [torch.where(blend, t[other], t[pick]) for t in fit]
        with torch.no_grad():
            target = teacher(*x)
        loss = (1 - torch.nn.functional.cosine_similarity(student(*x), target)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    if upgrade_kb > 0 and not raise_first:
        _raise_layers(student, quantized, fit, val, held_out, teacher, upgrade_kb, cosine)
    if tflite:
        _through_tflite(student, teacher, data, held)


def _through_tflite(student, teacher, data: dict, held: dict) -> None:
    """The trained model through the pipeline's fp32 TFLite conversion and ai-edge-quantizer's min-max scales:
    int4 in blocks of 32 for the weights trained on that grid, int8 per channel for those kept above it; measured
    in LiteRT against the original model on the held-out sentences, size against the fp32 flatbuffer."""
    import numpy as np
    import torch
    import torch.nn.utils.parametrize as parametrize
    from ai_edge_quantizer import qtyping, quantizer, recipe_manager
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    from compressor.metrics import compare
    from compressor.mixed_precision import weighted_layers
    from compressor.native_output import captured
    from compressor.profiles import Format
    from compressor.runtimes import open_artifact

    raised = []  # (weights as trained, kept above int4)
    for m in student.modules():
        if parametrize.is_parametrized(m, "weight"):
            fake = m.parametrizations.weight[0]
            above = not fake.enabled
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
            folded = m.weight * fake.gamma[0] if fake.gamma else m.weight
            raised.append((folded.detach().numpy(), above))
    _, base = _fp32_flatbuffer(student.eval(), data)
    work = base.parent
    model = fb.read_model(str(base))
    weights = {}
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if len(op.inputs) > 1 and op.inputs[1] >= 0:
                found = fb.get_tensor_data(subgraph.tensors[op.inputs[1]], model.buffers)
                if found is not None:
                    weights[fb.get_op_scope(op, subgraph.tensors)] = found
    manager, counts = recipe_manager.RecipeManager(), {"int8": 0, "int4-b32": 0, "unmatched": 0}
    for layer in weighted_layers(base):
        got = weights[layer.scope].reshape(layer.shape)
        match = [above for w, above in raised if w.shape == got.shape and np.allclose(w, got, rtol=1e-4, atol=1e-5)]
        above = bool(match and match[0])
        counts["int8" if above else "int4-b32" if match else "unmatched"] += 1
        manager.add_dynamic_config(
            regex=f"^{re.escape(layer.scope)}$",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            num_bits=8 if above else 4,
            granularity=qtyping.QuantGranularity("CHANNELWISE" if above else "BLOCKWISE_32"),
        )
    out = work / "qat-mixed.tflite"
    with captured(work / "quantizer.log"):
        engine = quantizer.Quantizer(base.read_bytes(), manager.get_quantization_recipe())
        engine.quantize(None, enable_progress_report=False).export_model(str(out), overwrite=True)
    with torch.no_grad():
        reference = [teacher(*(torch.from_numpy(held[k]).long() for k in ("input_ids", "attention_mask"))).numpy()]
    got = compare(reference, open_artifact(out, Format.TFLITE.value).run(held), None)
    print(
        f"LiteRT, {counts}: {out.stat().st_size / base.stat().st_size:.4f}x of the fp32 flatbuffer, "
        f"held-out cosine {got['cosine_mean']:.4f} (min {got['cosine_min']:.4f})"
    )


def _raise_layers(student, quantized: dict, fit, val, held_out, teacher, budget_kb: float, cosine) -> None:
    """Keep the layers whose int4 costs the most cosine on the fitting sentences per byte above int4, within
    ``budget_kb``, and print the result on the held-out sentences."""
    import torch

    with torch.no_grad():
        want_fit, want_val, want_held = teacher(*fit), teacher(*val), teacher(*held_out)
        base = cosine(student(*fit), want_fit)
        gains = {}
        for fq in quantized:
            fq.enabled = False
            gains[fq] = (cosine(student(*fit), want_fit) - base) / quantized[fq]
            fq.enabled = True
        spent = 0.0
        for fq in sorted(gains, key=gains.get, reverse=True):
            if spent + quantized[fq] <= budget_kb * 1024:
                fq.enabled, spent = False, spent + quantized[fq]
        kept = sum(1 for fq in quantized if not fq.enabled)
        print(
            f"{kept} layers above int4 ({spent / 1024:.0f} KB): validation cosine "
            f"{cosine(student(*val), want_val):.4f}, held-out {cosine(student(*held_out), want_held):.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probe", choices=("algorithms", "qat"))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--mix", type=float, default=0.3, help="fraction of positions taken from a second sentence")
    parser.add_argument("--lr", type=float, default=6e-5)
    parser.add_argument("--upgrade-kb", type=float, default=420, help="bytes above int4 b32 to spend after training")
    parser.add_argument("--raise-first", action="store_true", help="choose the layers above int4 before training")
    parser.add_argument("--tflite", action="store_true", help="convert the trained model and measure it in LiteRT")
    args = parser.parse_args()
    if args.probe == "algorithms":
        algorithms()
    else:
        qat(args.steps, args.mix, args.lr, args.upgrade_kb, args.raise_first, args.tflite)


if __name__ == "__main__":
    main()
