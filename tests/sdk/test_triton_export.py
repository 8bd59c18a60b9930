"""`sdkgen export-triton`: the repository layout, config.pbtxt parsed by Triton's own ModelConfig proto, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from support import require

from compressor.errors import InvalidInputError
from sdkgen.cli import main
from server.triton_repo import TritonOptions, export_repository

# tritonclient's protos share protobuf's default pool with our stubs' `inference` package: parse in a child process.
PARSE = """
import json, sys
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2
out = {}
for path in sys.argv[1:]:
    config = text_format.Parse(open(path).read(), model_config_pb2.ModelConfig())
    out[path] = json_format.MessageToDict(config, preserving_proto_field_name=True)
print(json.dumps(out))
"""


def parsed_configs(repo) -> dict[str, dict]:
    """Every ``<model>/config.pbtxt`` under ``repo`` as Triton's ModelConfig (a dict), by model folder name."""
    require(
        subprocess.run([sys.executable, "-c", "import tritonclient.grpc"], capture_output=True).returncode == 0,
        "tritonclient[grpc] is not installed (make setup installs it)",
    )
    paths = sorted(str(p) for p in repo.glob("*/config.pbtxt"))
    done = subprocess.run([sys.executable, "-c", PARSE, *paths], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return {p.split("/")[-2]: c for p, c in json.loads(done.stdout).items()}


def _io(section: dict, batched: bool) -> list[dict]:
    return [
        {
            "name": t["name"],
            "data_type": f"TYPE_{t['datatype']}",
            "dims": [str(-1 if d is None else d) for d in t["shape"][1 if batched else 0 :]],
        }
        for t in section
    ]


def test_repository_holds_cloud_model_and_tail_with_configs_triton_parses(split_sdk_build, tmp_path):
    build, manifest = split_sdk_build.out_dir, split_sdk_build.manifest
    repo = tmp_path / "repo"
    assert main(["export-triton", str(build), "--out", str(repo)]) == 0
    configs = parsed_configs(repo)
    sections = {s["model_name"]: s for s in (manifest["cloud"], manifest["split"]["tail"])}
    assert set(configs) == set(sections) == {"digits_classifier", "digits_classifier-tail"}
    for name, section in sections.items():
        assert (repo / name / "1" / "model.onnx").read_bytes() == (build / section["file"]).read_bytes()
        assert configs[name] == {
            "name": name,
            "backend": "onnxruntime",
            "max_batch_size": 8,
            "version_policy": {"specific": {"versions": ["1"]}},
            "input": _io(section["inputs"], batched=True),
            "output": _io(section["outputs"], batched=True),
            "instance_group": [{"count": 1, "kind": "KIND_CPU"}],
        }
    assert configs["digits_classifier-tail"]["input"] == [
        {"name": "intermediate", "data_type": "TYPE_INT8", "dims": ["16", "2", "2"]}
    ]
    assert not list(repo.glob(".*")), "no staging folders are left behind"


def test_options_shape_the_config(split_sdk_build, tmp_path):
    options = TritonOptions(
        backend="python", max_batch_size=0, instances=2, instance_kind="auto", dynamic_batching=False
    )
    export_repository(split_sdk_build.out_dir, tmp_path / "plain", options)
    config = parsed_configs(tmp_path / "plain")["digits_classifier"]
    assert (config["backend"], config.get("max_batch_size", 0), config["instance_group"]) == (
        "python",
        0,
        [{"count": 2}],  # KIND_AUTO is the proto's default (0), which MessageToDict leaves out
    )
    assert config["input"] == _io(split_sdk_build.manifest["cloud"]["inputs"], batched=False)  # [-1, 1, 8, 8]
    assert (tmp_path / "plain" / "digits_classifier" / "1" / "model.py").is_file()
    batching = TritonOptions(max_batch_size=32, dynamic_batching=True, max_queue_delay_us=500, instance_kind="gpu")
    export_repository(split_sdk_build.out_dir, tmp_path / "batched", batching)
    config = parsed_configs(tmp_path / "batched")["digits_classifier-tail"]
    assert config["max_batch_size"] == 32 and config["instance_group"] == [{"count": 1, "kind": "KIND_GPU"}]
    assert config["dynamic_batching"] == {"max_queue_delay_microseconds": "500"}


@pytest.fixture
def build_copy(sdk_build, tmp_path):
    """A copy of the cloud-only build (its manifest and model may be edited by a test)."""
    copy = tmp_path / "build"
    shutil.copytree(sdk_build.out_dir, copy, ignore=shutil.ignore_patterns("android", "ios", "python"))
    return copy


def _edit_manifest(build, edit) -> None:
    path = build / "model-manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_bad_builds_and_options_are_refused_before_anything_is_written(build_copy, tmp_path):
    repo = tmp_path / "repo"
    with pytest.raises(InvalidInputError, match=r"model-manifest.json does not exist"):
        export_repository(tmp_path / "nowhere", repo)
    export_repository(build_copy, repo)
    with pytest.raises(InvalidInputError, match=r"digits_classifier exists already; pass --force"):
        export_repository(build_copy, repo)
    export_repository(build_copy, repo, replace=True)

    _edit_manifest(build_copy, lambda m: m["cloud"].update(model_version="v2"))
    with pytest.raises(InvalidInputError, match=r"version 'v2'; Triton versions are positive integers"):
        export_repository(build_copy, tmp_path / "r2")
    _edit_manifest(
        build_copy, lambda m: (m["cloud"].update(model_version="1"), m["cloud"]["inputs"][0].update(shape=[1, 1, 8, 8]))
    )
    with pytest.raises(InvalidInputError, match=r"tensor\(s\) x have a fixed first dimension.*--max-batch-size 0"):
        export_repository(build_copy, tmp_path / "r3")
    export_repository(build_copy, tmp_path / "r3", TritonOptions(max_batch_size=0))  # shapes as they are: fine

    model = build_copy / "cloud" / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(InvalidInputError, match=r"model.onnx has sha256 [0-9a-f]{64}, the manifest says"):
        export_repository(build_copy, tmp_path / "r4", TritonOptions(max_batch_size=0))
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r4").exists()

    for bad, message in (
        (dict(dynamic_batching=True, max_batch_size=0), "dynamic batching needs a batch axis"),
        (dict(backend="tensorrt"), r"backend 'tensorrt' is not supported; choose one of \('onnxruntime', 'python'\)"),
        (dict(instances=0), "instances >= 1"),
        (dict(max_queue_delay_us=100), "applies to dynamic batching only"),
    ):
        with pytest.raises(InvalidInputError, match=message):
            TritonOptions(**bad)


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    assert main(["export-triton", str(tmp_path), "--out", str(tmp_path / "repo")]) == 2
    assert "error: model manifest" in capsys.readouterr().err
