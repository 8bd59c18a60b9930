"""Mixed precision trained on the int4 grid (``mixed-qat``, issue 15): a BERT encoder built by ``transformers`` from
its config, converted by litert-torch, trained by :mod:`compressor.int4_qat`, quantized by ai-edge-quantizer and
run in LiteRT."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compressor.api import load_source, run_build
from compressor.data import SampleData
from compressor.int4_qat import (
    Int4QatConfig,
    blend,
    eligible,
    fold_sources,
    match_weights,
    quantize_trained,
    train_int4,
)
from compressor.mixed_precision import Layer, layer_weights
from compressor.options import CompressOptions
from compressor.profiles import Format, Precision
from compressor.progress import Progress
from compressor.runtimes import open_artifact
from compressor.sources import from_module

pytestmark = pytest.mark.slow  # converts and trains real models: not part of make test-fast

VOCAB, SEQ = 512, 16


class Pooled(torch.nn.Module):
    """A sentence encoder as sentence-transformers runs one: mean of the hidden states over real tokens."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def _bert() -> torch.nn.Module:
    """Two BERT layers of width 64 from ``transformers``' config, LayerNorm scales and weights spread as a trained
    model's are."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=64,
    )
    model = Pooled(BertModel(config, add_pooling_layer=False))
    spread = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
            elif isinstance(module, torch.nn.Linear):  # heavy-tailed, as trained weights are: int4 loses more
                module.weight.mul_(torch.exp(torch.randn(module.weight.shape, generator=spread) * 0.8))
                module.bias.normal_(0, 0.05, generator=spread)  # not zero, as trained biases are
    return model.eval()


def _tokens(count: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, (count, SEQ)).astype(np.int32)
    lengths = rng.integers(6, SEQ + 1, count)
    mask = (np.arange(SEQ)[None] < lengths[:, None]).astype(np.int32)
    return {"input_ids": ids * mask, "attention_mask": mask}  # id 0 pads, as a tokenizer's [PAD]


def _args(data: dict[str, np.ndarray]) -> tuple:
    return tuple(torch.from_numpy(v[:1]) for v in data.values())


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return float(np.mean((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """The model, its training and validation tokens, and its fp32 flatbuffer as the pipeline converts it."""
    folder = tmp_path_factory.mktemp("int4-qat")
    module, training, validation = _bert(), _tokens(256, 0), _tokens(64, 1)
    base = folder / "fp32.tflite"
    from_module(module, _args(training)).convert_tflite(base, _args(training), folder)
    return module, training, validation, base


def test_every_int4_weight_is_found_with_the_factor_the_converter_folded_into_it(bert):
    """litert-torch folds the LayerNorm scale before the q/k/v and first FFN projections into their weights, and
    scaled dot-product attention's scale (head size ** -0.25 on each side) into q and k: the match finds every
    weight, the LayerNorm each factor comes from, and the constant."""
    module, _, _, base = bert
    weights = {layer: w for layer, w in layer_weights(base).items() if eligible(layer)}
    matches = match_weights(module, weights)
    assert len(weights) == 13 and set(matches) == set(weights)  # the word table and 12 fully connected layers
    assert len({m.param for m in matches.values()}) == 13
    folded = {m.param: (m.fold_param, round(m.fold_scale, 4)) for m in matches.values() if m.fold is not None}
    layer = "encoder.encoder.layer.{}.".format
    before_attention = ("encoder.embeddings.LayerNorm.weight", layer(0) + "output.LayerNorm.weight")
    expected = {}
    for i, norm in enumerate(before_attention):
        expected |= {layer(i) + f"attention.self.{p}.weight": (norm, round(32**-0.25, 4)) for p in ("query", "key")}
        expected[layer(i) + "attention.self.value.weight"] = (norm, 1.0)
        expected[layer(i) + "intermediate.dense.weight"] = (layer(i) + "attention.output.LayerNorm.weight", 1.0)
    assert folded == expected


def test_a_folded_layernorm_scale_is_traced_to_its_parameter_and_ambiguous_ones_are_held():
    """all-MiniLM-L6-v2's flatbuffer holds its q/k/v and first FFN weights times the LayerNorm scale before them (24
    of 37 weights): the match names that LayerNorm (so the grid follows it as it trains); a factor that several
    parameters equal up to a scale (untrained LayerNorms, all ones) is a constant, and those parameters are held."""
    torch.manual_seed(0)
    norm, other, linear = torch.nn.LayerNorm(64), torch.nn.LayerNorm(64), torch.nn.Linear(64, 96)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    model = torch.nn.ModuleDict({"norm": norm, "other": other, "linear": linear})
    layer = Layer("fc", "FULLY_CONNECTED", (96, 64))
    weight = linear.weight.detach().numpy() * norm.weight.detach().numpy() * 0.5
    match = match_weights(model, {layer: weight})[layer]
    assert (match.param, match.fold_param) == ("linear.weight", "norm.weight") and match.fold_scale == pytest.approx(
        0.5
    )
    vectors = {n: p.detach().numpy() for n, p in model.named_parameters() if p.ndim == 1}
    constant = match_weights(model, {layer: linear.weight.detach().numpy() * 0.5})
    assert constant[layer].fold_param is None  # other.weight (ones) and every parallel vector could be it
    assert fold_sources(constant, vectors) == {"other.weight"}
    assert match_weights(model, {layer: weight[::-1].copy()}) == {}  # rows swapped: not this parameter


def test_the_trained_grid_survives_conversion_and_beats_the_same_plan_untrained(bert, tmp_path):
    """The trained model's weights are already on ai-edge-quantizer's int4 grid, so quantizing its flatbuffer
    changes its outputs far less than quantizing the untrained one to the same plan; and on tokens it never trained
    on, it is closer to the original model than that untrained plan."""
    module, training, validation, base = bert
    stage = Progress().stage("int4 QAT", 10)
    config = Int4QatConfig(steps=150, seconds=600)
    samples = SampleData(training, None)
    student, trained, notes = train_int4(module, base, samples, module, _args(training), config, stage)
    assert notes["steps"] == 150 and not notes["stopped_by_time_bound"]
    assert notes["fitting_cosine"]["trained"] > notes["fitting_cosine"]["raised"]
    assert set(trained.values()) <= {"int4-b32", "int8"} and notes["on_grid"] == 13 - len(notes["raised_to_int8"])
    fp32 = tmp_path / "trained-fp32.tflite"
    from_module(student, _args(training)).convert_tflite(fp32, _args(training), tmp_path)
    out, untrained = tmp_path / "trained.tflite", tmp_path / "untrained.tflite"
    counts = quantize_trained(student, trained, fp32, out, tmp_path / "log")
    on_grid = notes["on_grid"]
    assert counts == {"int4-b32": on_grid, "int8": 13 - on_grid, "fp16": 0, "unmatched": 0, "off_grid": 0}
    assert quantize_trained(module, trained, base, untrained, tmp_path / "log")["int4-b32"] == notes["on_grid"]

    def outputs(path) -> np.ndarray:
        return open_artifact(path, Format.TFLITE.value).run(validation)[0]

    grid_loss = 1 - _cosine(outputs(out), outputs(fp32))
    ptq_loss = 1 - _cosine(outputs(untrained), outputs(base))
    assert grid_loss < ptq_loss / 10, (grid_loss, ptq_loss)
    with torch.no_grad():
        original = module(*(torch.from_numpy(v) for v in validation.values())).numpy()
    assert _cosine(outputs(out), original) > _cosine(outputs(untrained), original)


def test_training_stops_at_its_time_bound_and_still_puts_every_weight_on_the_grid(bert):
    module, training, _, base = bert
    config = Int4QatConfig(steps=500, seconds=1e-9)
    _, trained, notes = train_int4(
        module, base, SampleData(training, None), module, _args(training), config, Progress().stage("t", 1)
    )
    assert notes["steps"] == 0 and notes["stopped_by_time_bound"] and notes["first_loss"] is None
    assert sum(1 for rung in trained.values() if rung == "int4-b32") == notes["on_grid"] > 0


def test_blends_take_positions_from_the_partner_for_ids_and_mask_alike_and_mix_floats():
    generator = torch.Generator().manual_seed(0)
    ids, mask = torch.arange(40).reshape(4, 10), torch.ones(4, 10, dtype=torch.int64)
    other_ids, other_mask = -torch.arange(40).reshape(4, 10), torch.zeros(4, 10, dtype=torch.int64)
    floats, other_floats = torch.zeros(4, 3), torch.ones(4, 3)
    got_ids, got_mask, got_floats = blend([ids, mask, floats], [other_ids, other_mask, other_floats], 0.3, generator)
    taken = got_ids != ids
    assert 0 < taken.float().mean() < 0.7  # about 30 % of positions; (0, 0) is 0 in both
    assert torch.equal(taken[:, 1:], (got_mask == 0)[:, 1:])  # the same positions for ids and their mask
    assert torch.equal(got_ids[taken], other_ids[taken])
    assert ((got_floats > 0) & (got_floats < 1)).all() and (got_floats == got_floats[:, :1]).all()


def test_a_config_that_cannot_train_is_refused():
    for bad in ({"steps": 0, "seconds": 1}, {"steps": 1, "seconds": 0}, {"steps": 1, "seconds": 1, "batch": 0}):
        with pytest.raises(ValueError, match="int4 QAT needs"):
            Int4QatConfig(**bad)
    with pytest.raises(ValueError, match="int4_qat_steps"):
        CompressOptions(int4_qat_steps=-1)


def _build(tmp_path, **options):
    """A build of the encoder as users export it: ``torch.export.export(model, args)``, the batch fixed at 1."""
    data = _tokens(96, 2)
    tmp_path.mkdir(parents=True, exist_ok=True)
    torch.export.save(torch.export.export(_bert(), _args(data)), tmp_path / "bert.pt2")
    source, samples = load_source(tmp_path / "bert.pt2", None, data)
    recipe = CompressOptions(
        precisions=(Precision.INT8_DYNAMIC,), mixed_precision=True, min_cosine=0.9999, latency_repeats=1, **options
    )
    return run_build(source, samples, "pixel-8", recipe, workdir=tmp_path)


def test_the_pipeline_adds_the_trained_candidate_when_the_smallest_plan_misses(tmp_path):
    state = _build(tmp_path, int4_qat_steps=60)
    by_name = {c.name: c for c in state.candidates}
    trained = by_name["mixed-qat.int8-dynamic.tflite"]
    assert trained.error is None and trained.metrics is not None, trained.error
    assert by_name["mixed.int8-dynamic.tflite"].technique["mixed_precision"]["sensitivity_1_minus_cosine"]
    notes = trained.technique["int4_qat"]
    assert notes["steps"] == 60 and notes["layers"]["unmatched"] == 0 and notes["layers"]["int4-b32"] > 0
    assert notes["samples"] == len(state.inputs.data.training)  # trained on the training split only
    assert trained.size_bytes < by_name["int8-dynamic.tflite"].size_bytes
    assert "quantization-aware" in trained.route


def test_a_failing_int4_qat_fails_alone_and_off_means_no_candidate(tmp_path, monkeypatch):
    import compressor.int4_qat

    def broken(*_args, **_kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(compressor.int4_qat, "train_int4", broken)
    state = _build(tmp_path / "broken", int4_qat_steps=10)
    failed = next(c for c in state.candidates if c.variant == "mixed-qat")
    assert failed.error == "int4 QAT failed: RuntimeError: out of memory" and failed.path is None
    assert state.results.selected  # the build went on and selected another candidate
    off = _build(tmp_path / "off", int4_qat_steps=0)
    assert all(c.variant != "mixed-qat" for c in off.candidates)
