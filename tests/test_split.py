"""Split inference: cuts on real graphs compose back to the model, the planner's choices and errors, head/tail export
through the gate, the sdkgen build's split section, and the Python SDK in split mode through the real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from split_models import ResidualNet, TinyTransformer, transformer_sample

from compressor.errors import InvalidInputError
from compressor.profiles import Format, Precision, get_profile
from compressor.splitting.graph import export_graph, find_cuts, split_modules
from compressor.splitting.planner import network_for, plan_split


def _models(digits_module):
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    return {
        "digits": (digits_module, (x,)),
        "residual": (ResidualNet().eval(), (x,)),
        "transformer": (TinyTransformer().eval(), transformer_sample(batch=3)),
    }


@pytest.mark.parametrize("name", ["digits", "residual", "transformer"])
def test_every_cut_composes_back_to_the_model(digits_module, name):
    module, args = _models(digits_module)[name]
    gm = export_graph(module, args)  # static shapes: the graph is traced at this batch
    cuts = find_cuts(gm)
    assert len(cuts) >= 5
    with torch.no_grad():
        expected = module(*args)
        for cut in cuts:
            head, tail = split_modules(gm, cut)
            by_name = dict(zip(["x", "mask"], args))
            middle = head(*(by_name[n] for n in cut.head_inputs))
            got = tail(middle, *(by_name[n] for n in cut.side_inputs))
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, msg=f"cut {cut.node}")


def test_cut_positions_respect_skips_and_side_inputs(digits_module):
    residual = find_cuts(export_graph(ResidualNet().eval(), (torch.rand(1, 1, 8, 8),)))
    assert all(c.node.startswith(("conv2d", "relu", "add", "adaptive", "flatten")) for c in residual)
    assert "conv2d_1" not in [c.node for c in residual]  # inside a residual block the skip tensor also crosses
    transformer = find_cuts(export_graph(TinyTransformer().eval(), transformer_sample()))
    assert transformer[0].side_inputs == ("mask",)  # the mask goes to the tail with the activation
    assert transformer[-1].side_inputs == ()  # after pooling the mask is no longer needed


def _digits_plan(digits_module, profile_name: str, uplink: float, **kw):
    args = (torch.rand(1, 1, 8, 8),)
    gm = export_graph(digits_module, args)
    profile = get_profile(profile_name)
    return plan_split(
        gm, args, profile, Precision.FP32, 0.1, network=network_for(profile, uplink, kw.pop("rtt", 1.0)), **kw
    )


def test_planner_follows_the_network(digits_module):
    slow = _digits_plan(digits_module, "pixel-8", 0.01)
    assert slow.chosen.label == "all-edge"
    assert next(r.kind for r in slow.rows) == "cloud" and slow.rows[-1].kind == "edge"
    assert len(slow.rows) == len(find_cuts(export_graph(digits_module, (torch.rand(1, 1, 8, 8),)))) + 2
    cloud = slow.row("all-cloud")
    assert cloud.up_bytes == 64 * 4  # float input; cuts send one byte per element
    some_cut = next(r for r in slow.rows if r.kind == "split")
    assert some_cut.up_bytes == int(np.prod(some_cut.cut.shape))
    for row in slow.rows:
        assert row.total_ms == pytest.approx(row.head_ms + row.transfer_ms + row.tail_ms)
    # a device many times slower than the server on a fast link: the server takes (nearly) everything
    crawl = get_profile("pixel-8").model_copy(
        update={"compute": get_profile("pixel-8").compute.model_copy(update={"gmacs": {p: 1e-4 for p in Precision}})}
    )
    args = (torch.rand(1, 1, 8, 8),)
    fast = plan_split(
        export_graph(digits_module, args), args, crawl, Precision.FP32, 0.1, network=network_for(crawl, 1000.0, 0.0)
    )
    assert fast.chosen.kind == "cloud"


def test_energy_objective_needs_power_figures(digits_module):
    energy = _digits_plan(digits_module, "pixel-8", 10.0, objective="energy")
    assert energy.chosen.energy_mj == min(r.energy_mj for r in energy.rows)
    with pytest.raises(InvalidInputError, match="objective 'energy' needs power figures.*profile 'host'"):
        _digits_plan(digits_module, "host", 10.0, objective="energy")
    with pytest.raises(InvalidInputError, match="unknown split objective 'speed'"):
        _digits_plan(digits_module, "host", 10.0, objective="speed")
    with pytest.raises(InvalidInputError, match="uplink must be > 0"):
        network_for(get_profile("pixel-8"), 0.0)


@pytest.mark.slow
def test_transformer_head_and_tail_artifacts_pass_the_gate(tmp_path):
    """ONNX head (onnxruntime) -> int8 -> ONNX tail with the mask as side input, against the eager model."""
    from compressor.api import load_source
    from compressor.metrics import Gate
    from compressor.splitting.export import SplitInput, export_split

    module = TinyTransformer().eval()
    x, mask = transformer_sample(batch=16)
    source, data = load_source(module, transformer_sample(), {"x": x.numpy(), "mask": mask.numpy()})
    gm = export_graph(module, transformer_sample())
    cut = find_cuts(gm)[2]
    reference = source.reference_runner().run(data.inputs)
    job = SplitInput(
        gm,
        cut,
        Format.ONNX,
        Precision.FP32,
        data,
        reference,
        Gate(1.0, 0.99),
        128,
        True,
        tmp_path / "split",
        tmp_path / "converter.log",
    )
    artifacts = export_split(job)
    assert artifacts.passed_gate, artifacts.metrics
    assert artifacts.metrics["cosine_min"] > 0.999
    assert artifacts.metrics["top1_agreement"] == 1.0


@pytest.mark.slow
def test_an_int8_onnx_head_takes_the_profiles_weight_bits(tmp_path):
    """An int8 ONNX head is converted with the weight bits the profile resolves (7 on x86 CPUs without VNNI), like
    whole models: its int8 weights peak at 64, not 127, and the composed path still passes the gate."""
    import onnx
    from onnx import numpy_helper

    from compressor.api import load_source
    from compressor.metrics import Gate
    from compressor.splitting.export import SplitInput, export_split

    module = TinyTransformer().eval()
    x, mask = transformer_sample(batch=16)
    source, data = load_source(module, transformer_sample(), {"x": x.numpy(), "mask": mask.numpy()})
    gm = export_graph(module, transformer_sample())
    reference = source.reference_runner().run(data.inputs)
    peaks = {}
    for bits in (8, 7):
        job = SplitInput(gm, find_cuts(gm)[2], Format.ONNX, Precision.INT8_DYNAMIC, data, reference, Gate(1.0, 0.99),
                         128, True, tmp_path / str(bits), tmp_path / "converter.log", bits)  # fmt: skip
        artifacts = export_split(job)
        assert artifacts.passed_gate, artifacts.metrics
        weights = [numpy_helper.to_array(i) for i in onnx.load(str(artifacts.head_path)).graph.initializer]
        peaks[bits] = max(int(np.abs(w.astype(np.int32)).max()) for w in weights if w.dtype == np.int8)
    assert peaks == {8: 127, 7: 64}, peaks


@pytest.fixture(scope="module")
def split_build(digits_files, tmp_path_factory):
    from compressor.options import CompressOptions
    from compressor.splitting.request import SplitRequest
    from sdkgen.build import build
    from sdkgen.spec import SdkSpec, read_labels

    spec = SdkSpec(
        name="SplitDigits",
        package="com.example.splitdigits",
        platforms=("python",),
        labels=read_labels(digits_files / "labels.txt"),
        mode="split",
    )
    out = tmp_path_factory.mktemp("split") / "digits"
    return build(
        digits_files / "model.pt2",
        "pixel-8",
        out,
        spec,
        data=digits_files / "data.npz",
        options=CompressOptions(precisions=(Precision.FP32,)),
        split=SplitRequest(uplink_mbps=1.0, rtt_ms=20.0),
    )


@pytest.mark.slow
def test_split_build_writes_a_gated_split_section(split_build):
    from compressor.bundle.manifest import validate_manifest
    from compressor.runtimes import OnnxRunner, TFLiteRunner

    manifest = validate_manifest(split_build.manifest)
    split = manifest["split"]
    assert manifest["policy"]["mode"] == "split"
    assert split["tail"]["model_name"] == "split_digits-tail"
    assert split["intermediate"]["dtype"] == "int8" and split["tail"]["inputs"][0]["datatype"] == "INT8"
    assert split["plan"]["uplink_mbps"] == 1.0 and split["plan"]["rtt_ms"] == 20.0
    q = split["intermediate"]["quantization"]
    with np.load(_DATA["path"]) as data:
        x, labels = data["x"], data["labels"]
    head, tail = (
        TFLiteRunner(split_build.out_dir / split["head"]["file"]),
        OnnxRunner(split_build.out_dir / split["tail"]["file"]),
    )
    middle = np.concatenate([head.run({"x": x[i : i + 1]})[0] for i in range(len(x))])
    sent = np.clip(np.round(middle / q["scale"]) + q["zero_point"], -128, 127).astype(np.int8)
    got = tail.run({"intermediate": sent})[0]
    whole = OnnxRunner(split_build.out_dir / "cloud" / "model.onnx").run({"x": x})[0]
    assert (got.argmax(1) == whole.argmax(1)).mean() >= 0.99
    np.testing.assert_allclose(got, whole, atol=0.15 * np.abs(whole).max())
    assert (got.argmax(1) == labels).mean() > 0.9


_DATA: dict = {}


@pytest.fixture(autouse=True)
def _remember_data(digits_files):
    _DATA["path"] = digits_files / "data.npz"


SPLIT_CALL = """
import json, sys
import numpy as np
from split_digits import SplitDigits
endpoint, mode, samples = sys.argv[1], sys.argv[2], np.load(sys.argv[3])
model = SplitDigits(cloud_endpoint=endpoint)
model._predictor.policy["mode"] = mode
for x in samples:
    r = model.predict(x)
    print(json.dumps({"source": r.source, "label": r.label, "reason": r.fallback_reason}))
"""


@pytest.mark.slow
def test_python_sdk_split_mode_answers_like_edge_mode_through_the_real_server(split_build, tmp_path):
    from server.app import create_server
    from server.inference.repository import ModelRepository

    manifest = split_build.manifest
    repository = ModelRepository()
    repository.register(manifest["cloud"]["model_name"], "1", split_build.out_dir / manifest["cloud"]["file"])
    tail = manifest["split"]["tail"]
    repository.register(tail["model_name"], tail["model_version"], split_build.out_dir / tail["file"])
    server, port = create_server("127.0.0.1:0", repository=repository)
    server.start()
    try:
        with np.load(_DATA["path"]) as data:
            np.save(tmp_path / "x.npy", data["x"][:24])
        env = {**os.environ, "PYTHONPATH": str(split_build.sdk_dirs["python"] / "src")}

        def call(mode: str, endpoint: str) -> list[dict]:
            done = subprocess.run(
                [sys.executable, "-c", SPLIT_CALL, endpoint, mode, str(tmp_path / "x.npy")],
                capture_output=True,
                text=True,
                env=env,
                timeout=180,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

        split, edge = call("split", f"127.0.0.1:{port}"), call("edge", f"127.0.0.1:{port}")
        assert [r["source"] for r in split] == ["split"] * 24
        assert [r["label"] for r in split] == [r["label"] for r in edge]
        # nothing listens on port 9: the split call and the cloud fail, the whole model runs on the device
        offline = call("split", "127.0.0.1:9")
        assert {(r["source"], r["reason"]) for r in offline} == {("edge", "split_unavailable")}
        assert [r["label"] for r in offline] == [r["label"] for r in edge]
    finally:
        server.stop(0)
