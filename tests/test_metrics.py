"""The gate's numbers on edge cases: outputs with no direction, exact copies, a sign flip."""

from __future__ import annotations

import numpy as np
import pytest

from compressor.metrics import Gate, compare

GATE = Gate(max_accuracy_drop=1.0, min_cosine=0.99)


def test_almost_all_zero_outputs_are_judged_by_error_against_their_scale():
    """Denormal-sized outputs (e.g. a detector that sees nothing): an exact copy passes, as it must."""
    reference = [np.full((8, 3), 5e-42, np.float32)]
    metrics = compare(reference, [reference[0].copy()], None)
    assert metrics["gate_metric"] == "relative_error" and metrics["degenerate_samples"] == 8
    assert metrics["cosine_mean"] == 1.0 and GATE.passes(metrics)
    wrong = compare(reference, [np.ones((8, 3), np.float32)], None)
    assert not GATE.passes(wrong)


def test_a_few_zero_samples_do_not_drag_the_cosine_down():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((10, 4)).astype(np.float32)
    reference[:3] = 0.0  # three samples with nothing in them
    candidate = reference + rng.normal(0, 1e-4, reference.shape).astype(np.float32)
    candidate[:3] = 0.0
    metrics = compare([reference], [candidate], None)
    assert metrics["gate_metric"] == "cosine_mean" and metrics["degenerate_samples"] == 3
    assert metrics["cosine_min"] > 0.999 and GATE.passes(metrics)


def test_the_gate_still_fails_a_wrong_model():
    reference = np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32)
    metrics = compare([reference], [-reference], None)
    assert metrics["cosine_mean"] < -0.99 and not GATE.passes(metrics)


def test_sequence_outputs_are_gated_by_per_position_top1_agreement():
    """A recogniser's [N, T, C] softmax: cosine can stay high while characters flip; the gate counts the flips."""
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((4, 25, 40))
    reference = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    flipped = reference.copy()
    top = reference.argmax(-1)
    for n in range(4):  # swap the two best classes at 2 of 25 positions of every sample: 8% of characters change
        for t in (3, 17):
            second = np.argsort(reference[n, t])[-2]
            flipped[n, t, [top[n, t], second]] = flipped[n, t, [second, top[n, t]]]
    metrics = compare([reference], [flipped], None)
    assert metrics["top1_agreement"] == 0.92 and metrics["cosine_mean"] > 0.9
    assert not Gate(1.0, 0.9, 0.99).passes(metrics) and Gate(1.0, 0.9, None).passes(metrics)


def test_hidden_states_are_features_not_per_position_classes():
    """[N, T, D] hidden states (MiniLM, Whisper's encoder) are gated by cosine: their argmax is no class."""
    rng = np.random.default_rng(3)
    reference = rng.standard_normal((4, 25, 384)).astype(np.float32)
    noisy = reference + 0.01 * rng.standard_normal(reference.shape).astype(np.float32)
    metrics = compare([reference], [noisy], None)
    assert metrics["top1_agreement"] is None and Gate(1.0, 0.99, 0.99).passes(metrics)


def test_normalised_embeddings_are_gated_by_cosine_and_confident_softmax_stays_a_classifier():
    """A sentence encoder's [N, D] unit-norm embedding (all-MiniLM-L6-v2's output) has no class in its argmax; a
    confident softmax, whose rows also have norms near 1, keeps its top-1 gate."""
    rng = np.random.default_rng(4)
    embedding = rng.standard_normal((32, 384))
    embedding = (embedding / np.linalg.norm(embedding, axis=1, keepdims=True)).astype(np.float32)
    noisy = embedding + 0.003 * rng.standard_normal(embedding.shape).astype(np.float32)
    metrics = compare([embedding], [noisy], None)
    assert (noisy.argmax(1) != embedding.argmax(1)).sum() > 1  # a top-1 gate would have failed it
    assert metrics["top1_agreement"] is None and Gate(1.0, 0.99, 0.99).passes(metrics)

    confident = np.full((32, 10), 1e-5, np.float32)
    confident[np.arange(32), rng.integers(0, 10, 32)] = 1.0 - 9e-5
    swapped = confident[:, ::-1].copy()  # every prediction changes
    metrics = compare([confident], [swapped], None)
    assert metrics["top1_agreement"] == 0.0 and not Gate(1.0, -1.0, 0.99).passes(metrics)


def test_an_sdk_for_a_regression_model_is_not_held_to_the_argmax_of_its_values(tmp_path):
    """A regressor's [N, C] output looks like class scores.  Its near-equal values swap order under int8 weights
    while cosine stays ~1: by default the top-1 floor refuses it (and says how to turn it off); ``--task regression``
    (and ``embedding``) gates it by cosine alone, unless the floor is asked for explicitly."""
    import torch

    from compressor.errors import GateFailedError
    from compressor.options import CompressOptions
    from compressor.profiles import Precision
    from sdkgen.build import build
    from sdkgen.spec import SdkSpec

    torch.manual_seed(0)
    head = torch.nn.Linear(16, 8, bias=False)
    with torch.no_grad():
        head.weight.copy_(1.0 + 1e-3 * torch.randn(8, 16))  # every output is ~sum(x): nearly tied
    torch.export.save(torch.export.export(head.eval(), (torch.ones(1, 16),)), tmp_path / "head.pt2")
    data = {"x": np.random.default_rng(0).uniform(0.5, 1.0, (96, 16)).astype(np.float32)}
    options = CompressOptions(precisions=(Precision.INT8_DYNAMIC,), latency_repeats=2, latency_warmup=1)

    def sdk(task, opts=options):
        spec = SdkSpec(name="Head", platforms=("python",), task=task)
        return build(tmp_path / "head.pt2", "pixel-8", tmp_path / str(task), spec, data=data, options=opts)

    with pytest.raises(GateFailedError, match="min-top1-agreement"):
        sdk(None)
    with pytest.raises(GateFailedError, match="min-top1-agreement"):
        sdk("regression", options.model_copy(update={"min_top1_agreement": 0.99}))
    for task in ("regression", "embedding"):
        result = sdk(task)
        shipped = result.report["artifacts"][result.report["selected"]]
        assert shipped["precision"] == "int8-dynamic"
        assert shipped["metrics"]["cosine_mean"] >= 0.99 and shipped["metrics"]["top1_agreement"] < 0.99
