"""Property-based fuzzing (hypothesis) of every reader that takes bytes from a tenant or a worker.

Targets: the ``.pt2`` archive reader (mutated genuine archives, and the symbolic-expression grammar), the
``.npz`` reader, the manifest validators (the shared one and the Python SDK's rendered ``manifest.py``),
ModelInfer decoding, and the worker-message parser.  The property is always the same: the reader returns
or raises its documented error, never anything else, and runs nothing it reads.

CI runs a bounded number of examples per target; a longer run (see SECURITY.md):
``EDGEFORGE_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz.py --hypothesis-show-statistics``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compressor import safe_pt2
from compressor.data import read_npz
from compressor.errors import EdgeForgeError, InvalidInputError, UnsupportedModelError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("EDGEFORGE_FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    derandomize=os.environ.get("CI", "") != "",  # CI reruns the same examples; a local run explores
)

# ---- the .pt2 reader ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def genuine_members(tmp_path_factory):
    import torch
    from test_security_pt2 import TinyNet

    path = tmp_path_factory.mktemp("fuzz") / "model.pt2"
    batch = torch.export.Dim("batch", min=1, max=64)
    torch.export.save(
        torch.export.export(TinyNet().eval(), (torch.randn(2, 4),), dynamic_shapes={"x": {0: batch}}), path
    )
    with zipfile.ZipFile(path) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def _mutate_json(document, path_choices: list[int], value):
    """Replace one value somewhere in ``document`` (picked by ``path_choices``) with ``value``."""
    node = document
    for choice in path_choices:
        children = (
            list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
        )
        if not children:
            break
        key, child = children[choice % len(children)]
        if not isinstance(child, (dict, list)) or choice % 3 == 0:
            node[key] = value
            return document
        node = child
    return document


def _load_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "model.pt2"
    path.write_bytes(data)
    with contextlib.suppress(UnsupportedModelError):
        safe_pt2.load(path)


@FUZZ
@given(st.data())
def test_fuzz_pt2_json_members(genuine_members, tmp_path, data):
    members = dict(genuine_members)
    json_names = sorted(n for n in members if n.endswith(".json"))
    name = data.draw(st.sampled_from(json_names))
    document = json.loads(members[name])
    choices = data.draw(st.lists(st.integers(0, 50), min_size=1, max_size=8))
    value = data.draw(json_values | st.sampled_from(_HOSTILE_STRINGS))
    members[name] = json.dumps(_mutate_json(copy.deepcopy(document), choices, value)).encode()
    _load_bytes(tmp_path, _zip(members))


_HOSTILE_STRINGS = [
    "__import__('os').system('touch /tmp/fuzz-canary')",
    "torch.serialization.os.system",
    "torch.ops.aten.from_file.default",
    "Symbol('s0').__class__",
    "opaque_obj_0",
    "custom_obj_0",
    "../../../../etc/passwd",
    "weight_999999",
]


@FUZZ
@given(st.data())
def test_fuzz_pt2_bytes(genuine_members, tmp_path, data):
    members = dict(genuine_members)
    name = data.draw(st.sampled_from(sorted(members)))
    blob = bytearray(members[name])
    for _ in range(data.draw(st.integers(1, 8))):
        if blob:
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    members[name] = bytes(blob)
    raw = _zip(members)
    if data.draw(st.booleans()):  # damage the zip structure itself
        raw = bytearray(raw)
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= 0xFF
        raw = bytes(raw)
    _load_bytes(tmp_path, raw)


@FUZZ
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=80) | st.sampled_from(_HOSTILE_STRINGS))
def test_fuzz_expression_grammar_accepts_only_inert_text(text):
    """Whatever the grammar accepts, sympy evaluates without running a command, writing a file or connecting."""
    if safe_pt2.expression_problem(text):
        return
    events = _audited(lambda: __import__("sympy").sympify(text, locals={}))
    assert not events, (text, events)


_SINKS: list[list] = []
_FORBIDDEN = ("os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "socket.connect", "ctypes")


def _audit(event: str, args) -> None:
    if not _SINKS:
        return
    writes = event == "open" and len(args) > 1 and isinstance(args[1], str) and any(c in args[1] for c in "wax+")
    if writes or event.startswith(_FORBIDDEN):
        for sink in _SINKS:
            sink.append(event)


sys.addaudithook(_audit)


def _audited(action) -> list:
    events: list = []
    _SINKS.append(events)
    try:
        action()
    except Exception:
        pass
    finally:
        _SINKS.remove(events)
    return events


def test_expression_fuzz_hook_sees_a_real_payload():
    """The audit hook the grammar fuzz relies on notices code that sympify runs (else the fuzz proves nothing)."""
    assert "os.system" in _audited(lambda: __import__("sympy").sympify("__import__('os').system('true')"))


# ---- the .npz reader ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def genuine_npz():
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.arange(48, dtype=np.float32).reshape(4, 12), labels=np.arange(4))
    return buffer.getvalue()


@FUZZ
@given(st.data())
def test_fuzz_npz(genuine_npz, tmp_path, data):
    blob = bytearray(genuine_npz)
    for _ in range(data.draw(st.integers(0, 12))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob += data.draw(st.binary(max_size=64))
    path = tmp_path / "data.npz"
    path.write_bytes(bytes(blob))
    try:
        arrays = read_npz(path, max_bytes=1 << 20)
    except InvalidInputError:
        return
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    assert sum(a.nbytes for a in arrays.values()) <= 1 << 20


@FUZZ
@given(
    shape=st.lists(st.integers(0, 2**40), max_size=4),
    dtype=st.sampled_from(["<f4", "<i8", "|u1", "|O", "<U10", "V8"]),
)
def test_fuzz_npz_headers_announcing_any_size(tmp_path, shape, dtype):
    """A header may announce any shape: the reader refuses past the bound before allocating anything."""
    header = {"descr": dtype, "fortran_order": False, "shape": tuple(shape)}
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    member.write(b"\0" * 64)
    path = tmp_path / "data.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", member.getvalue())
    with contextlib.suppress(InvalidInputError):
        read_npz(path, max_bytes=1 << 20)


# ---- the manifest validators ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden_manifest():
    return json.loads((ROOT / "tests" / "golden" / "model-manifest.json").read_text())


@pytest.fixture(scope="module")
def sdk_manifest_module(tmp_path_factory):
    """The Python SDK's rendered ``manifest.py`` (from the golden SDK) as an importable package."""
    package = tmp_path_factory.mktemp("sdk") / "fuzzed_sdk"
    (package / "assets").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "golden" / "python" / "src" / "digits_classifier" / "manifest.py", package)
    shutil.copy(ROOT / "compressor" / "schemas" / "model-manifest.schema.json", package / "assets")
    (package / "__init__.py").write_text("")
    spec = importlib.util.spec_from_file_location(
        "fuzzed_sdk.manifest", package / "manifest.py", submodule_search_locations=None
    )
    sys.path.insert(0, str(package.parent))
    try:
        __import__("fuzzed_sdk")
        module = importlib.util.module_from_spec(spec)
        module.__package__ = "fuzzed_sdk"
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(package.parent))
    return module


@FUZZ
@given(st.data())
def test_fuzz_manifest_validators(golden_manifest, sdk_manifest_module, data):
    manifest = copy.deepcopy(golden_manifest)
    for _ in range(data.draw(st.integers(1, 4))):
        choices = data.draw(st.lists(st.integers(0, 50), min_size=1, max_size=6))
        manifest = _mutate_json(manifest, choices, data.draw(json_values))
    try:
        from compressor.bundle.manifest import validate_manifest

        validate_manifest(manifest)
    except InvalidInputError:
        pass
    with contextlib.suppress(sdk_manifest_module.ManifestError):
        sdk_manifest_module.validate(manifest)


# ---- ModelInfer decoding --------------------------------------------------------------------------------------


def _served():
    from server.inference.repository import ServedModel
    from server.inference.tensors import TensorSpec

    inputs = (TensorSpec("x", "FP32", (-1, 4)), TensorSpec("ids", "INT64", (-1,)))
    return ServedModel("m", "1", Path("m.onnx"), inputs, (TensorSpec("y", "FP32", (-1, 4)),), session=None)


DATATYPES = ["FP32", "FP16", "INT64", "INT8", "BOOL", "BYTES", "FP64", "UINT64", ""]


@FUZZ
@given(st.data())
def test_fuzz_modelinfer_decoding(data):
    from server.gen.inference import grpc_service_pb2 as ipb
    from server.inference.codec import feeds_from

    request = ipb.ModelInferRequest(model_name="m")
    raw = data.draw(st.booleans())
    for _ in range(data.draw(st.integers(0, 3))):
        tensor = request.inputs.add(
            name=data.draw(st.sampled_from(["x", "ids", "y", ""])),
            datatype=data.draw(st.sampled_from(DATATYPES)),
            shape=data.draw(st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(0, 8), max_size=3)),
        )
        if raw:
            request.raw_input_contents.append(data.draw(st.binary(max_size=256)))
        else:
            tensor.contents.fp32_contents.extend(data.draw(st.lists(st.floats(width=32), max_size=40)))
            tensor.contents.int64_contents.extend(data.draw(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=40)))
    if data.draw(st.booleans()):
        request.raw_input_contents.append(b"extra")
    try:
        feeds, _ = feeds_from(_served(), request, max_rows=64, max_elements=4096)
    except EdgeForgeError:
        return
    assert sum(a.size for a in feeds.values()) <= 4096


# ---- worker messages ------------------------------------------------------------------------------------------


_names = st.text(max_size=30) | st.sampled_from(["../x", "/etc/passwd", "a/../../b", "cloud/model.onnx", ".."])
_done = st.builds(
    lambda f, t, n: json.dumps(
        ["done", {"cloud_file": f, "model_name": n, "tail": {"file": t, "model_name": n, "model_version": "1"}}]
    ).encode(),
    _names,
    _names,
    st.text(max_size=20),
)


@FUZZ
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()) | _done)
def test_fuzz_worker_messages(line):
    from server.errors import WorkerProtocolError
    from server.jobs import messages

    try:
        message = messages.parse(line)
    except WorkerProtocolError:
        return
    assert message[0] in ("progress", "done", "error")
    if message[0] == "done":
        for name in (message[1]["cloud_file"], (message[1]["tail"] or {}).get("file", "")):
            assert not name.startswith("/") and ".." not in name.split("/")
