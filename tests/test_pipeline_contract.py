"""Passes keep their declared contract, and converted variants are what they claim to be."""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import onnx
import pytest

import compressor.passes
from compressor.options import CompressOptions
from compressor.passes.contract import Pass, PassContractError, build_pass
from compressor.pipeline import build_pipeline
from compressor.profiles import get_profile
from compressor.state import BuildResults, Candidate, Variant


def pass_modules():
    for info in pkgutil.iter_modules(compressor.passes.__path__):
        if info.name.endswith("_pass"):
            yield importlib.import_module(f"compressor.passes.{info.name}")


def test_every_pass_module_declares_its_contract_and_the_pipeline_can_reach_it():
    modules = list(pass_modules())
    assert all(isinstance(m.run, Pass) for m in modules), [m.__name__ for m in modules if not isinstance(m.run, Pass)]
    everything = CompressOptions(
        prune="structured", distill=True, cluster=8, mixed_precision=True, target_size_kb=9, qat_steps=10
    )
    reached = {
        p.name
        for profile in ("host", "coral-edgetpu")  # integer-only profiles add quantization-aware training
        for p in build_pipeline(everything, get_profile(profile), split=True, student=True)
    }
    assert reached == {m.run.name for m in modules}


def _fake_inputs():
    return None  # these passes never look at their inputs


def test_undeclared_writes_and_reads_are_refused():
    @build_pass(writes=("macs",))
    def writes_candidates(_inputs, results):
        results.candidates.append(None)

    @build_pass(writes=("macs",))
    def reads_selected(_inputs, results):
        results.macs = len(results.selected)

    with pytest.raises(PassContractError, match="reads results.candidates without declaring it"):
        writes_candidates(_fake_inputs(), BuildResults())
    with pytest.raises(PassContractError, match="reads results.selected without declaring it"):
        reads_selected(_fake_inputs(), BuildResults())


def test_results_only_grow():
    @build_pass(writes=("candidates",))
    def drops_one(_inputs, results):
        results.candidates.pop()

    @build_pass(writes=("macs",))
    def resets(_inputs, results):
        results.macs = 7

    grown = BuildResults(candidates=[Candidate.__new__(Candidate)])
    with pytest.raises(PassContractError, match="removed or replaced items of results.candidates"):
        drops_one(_fake_inputs(), grown)
    with pytest.raises(PassContractError, match="replaced results.macs, which was already set"):
        resets(_fake_inputs(), BuildResults(macs=3))
    resets(_fake_inputs(), BuildResults())  # setting it the first time is what the pass is for


def test_leaves_are_the_variants_nothing_else_was_made_from():
    a, b = Variant("a", None, 1), Variant("a-distill", None, 1, parent="a")
    c = Variant("a-distill-cluster8", None, 1, parent="a-distill")
    assert [v.label for v in BuildResults(variants=[a, b, c]).leaves()] == ["a-distill-cluster8"]


@pytest.mark.slow
def test_pruned_onnx_source_on_an_onnx_profile_ships_the_pruned_graph(digits_module, digits_split, tmp_path):
    """Regression: a pruned variant of an ONNX source is converted from the pruned module, not copied from the
    submitted file, and the selected artifact's graph holds the pruned parameter count."""
    import torch

    from compressor import compress
    from compressor.torch_export import export_torch

    _, _, x_test, y_test = digits_split
    path = tmp_path / "digits.onnx"
    export_torch(digits_module.eval(), (torch.from_numpy(x_test[:1]),), path, dynamic_batch=True)
    np.savez(tmp_path / "data.npz", x=x_test[:120], labels=y_test[:120])
    options = CompressOptions(
        prune="structured", sparsity=0.5, finetune_epochs=2, max_accuracy_drop=100, latency_repeats=3, select="size"
    )
    result = compress(path, "jetson-orin-nano", tmp_path / "out", data=tmp_path / "data.npz", options=options)
    report = result.report
    pruned = [a for a in report["artifacts"] if a["variant"] and a["path"]]
    assert pruned, report["artifacts"]
    source_params = _onnx_params(path)
    for artifact in pruned:
        assert artifact["params"] < 0.7 * source_params, artifact
        if artifact["precision"] == "fp32":
            assert _onnx_params(result.out_dir / artifact["path"]) == artifact["params"]
            assert artifact["sha256"] != report["source"]["sha256"]
    selected = report["artifacts"][report["selected_by_format"]["onnx"]]
    assert selected["variant"], "with the gate wide open the smaller, pruned graph wins"


def _onnx_params(path) -> int:
    """Floating-point weights only (a graph also keeps small integer shape constants as initializers)."""
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    return sum(int(np.prod(i.dims)) for i in onnx.load(str(path)).graph.initializer if i.data_type in floats)
