"""Hostile ``.pt2`` archives: genuine ``torch.export.save`` files changed to carry code that writes a canary.

Each variant is first shown to be a real attack (``torch.export.load`` runs it: the canary appears), then
EdgeForge's loader refuses it with a clear message, and no canary appears.
"""

from __future__ import annotations

import builtins
import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from compressor import safe_pt2
from compressor.errors import UnsupportedModelError
from compressor.sources import load_model


class Payload:
    """Unpickling this runs ``code`` (through builtins.exec): what an attacker's pickle does."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return builtins.exec, (self.code,)


def canary_code(canary: Path) -> str:
    return f"open({str(canary)!r}, 'w').write('pwned')"


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.register_buffer("offset", torch.ones(3))

    def forward(self, x):
        return torch.relu(self.fc(x)) + self.offset


@pytest.fixture(scope="module")
def genuine(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("pt2") / "model.pt2"
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(TinyNet().eval(), (torch.randn(2, 4),), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, path)
    return path


def rewrite(source: Path, dest: Path, change) -> Path:
    """Copy a PT2 archive, letting ``change(members)`` edit the {name without root: bytes} mapping."""
    with zipfile.ZipFile(source) as archive:
        root = archive.namelist()[0].split("/")[0]
        members = {n[len(root) + 1 :]: archive.read(n) for n in archive.namelist()}
    change(members)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(f"{root}/{name}", data)
    return dest


def _edit_json(members: dict, name: str, edit) -> None:
    document = json.loads(members[name])
    edit(document)
    members[name] = json.dumps(document).encode()


def _torch_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def pickled_weight(code: str):
    def change(members):
        def edit(config):
            config["config"]["fc.weight"]["use_pickle"] = True
            config["config"]["fc.weight"]["path_name"] = "weight_9"

        _edit_json(members, "data/weights/model_weights_config.json", edit)
        members["data/weights/weight_9"] = _torch_pickle(Payload(code))

    return change


def pickled_constant(code: str):
    """The buffer moved to a pickled tensor constant (as torch writes tensor subclasses)."""

    def change(members):
        def edit(config):
            config["config"]["lifted_tensor_0"] = {
                "path_name": "tensor_0",
                "is_param": False,
                "use_pickle": True,
                "tensor_meta": None,
            }

        _edit_json(members, "data/constants/model_constants_config.json", edit)
        members["data/constants/tensor_0"] = _torch_pickle(Payload(code))

    return change


def opaque_constant(code: str):
    def change(members):
        def edit(config):
            config["config"]["obj"] = {
                "path_name": "opaque_obj_0",
                "is_param": False,
                "use_pickle": True,
                "tensor_meta": None,
            }

        _edit_json(members, "data/constants/model_constants_config.json", edit)
        members["data/constants/opaque_obj_0"] = pickle.dumps(Payload(code))

    return change


def custom_object(code: str):
    def change(members):
        def edit(config):
            config["config"]["obj"] = {
                "path_name": "custom_obj_0",
                "is_param": False,
                "use_pickle": True,
                "tensor_meta": None,
            }

        _edit_json(members, "data/constants/model_constants_config.json", edit)
        members["data/constants/custom_obj_0"] = pickle.dumps(Payload(code))

    return change


def sample_inputs(code: str):
    """torch retries sample inputs with weights_only=False when the safe unpickler refuses them."""

    def change(members):
        members["data/sample_inputs/model.pt"] = _torch_pickle(((Payload(code),), {}))

    return change


def symbolic_shape(code: str):
    """A symbolic dimension is handed to sympy.sympify, which evaluates the string."""

    def change(members):
        text = members["models/model.json"].decode()
        members["models/model.json"] = text.replace(
            "Symbol('s77', positive=True, integer=True)", f"({code}) and Symbol('s77', positive=True, integer=True)"
        ).encode()

    return change


def guard_code(code: str):
    """ExportedProgram.module() exec's the archive's guards_code when the program has sample inputs."""

    def change(members):
        _edit_json(members, "models/model.json", lambda d: d.__setitem__("guards_code", [f"({code}) > 0"]))

    return change


def call_any_function(code: str):
    """A graph node may name any callable reachable from torch (here os.system, through torch.serialization);
    torch 2.13's verifier stops this one after deserializing, EdgeForge refuses it before."""
    command = f'python3 -c "{code}"'

    def change(members):
        def edit(document):
            nodes = document["graph_module"]["graph"]["nodes"]
            nodes.insert(
                0,
                {
                    "target": "torch.serialization.os.system",
                    "inputs": [{"name": "command", "arg": {"as_string": command}, "kind": 1}],
                    "outputs": [],
                    "metadata": {},
                    "is_hop_single_tensor_return": None,
                },
            )

        _edit_json(members, "models/model.json", edit)

    return change


def from_file_node(_code: str):
    def change(members):
        text = members["models/model.json"].decode()
        members["models/model.json"] = text.replace("torch.ops.aten.relu.default", "torch.ops.aten.from_file.default")

    return change


def legacy_weights(code: str):
    def change(members):
        members["data/weights/model.pt"] = _torch_pickle(Payload(code))

    return change


# variant -> (builder, what the refusal names, how torch.export.load is made to run it: None = not shown)
VARIANTS = {
    "weight with use_pickle": (pickled_weight, r"weight 'fc\.weight' .* stored as a pickle", "load"),
    "tensor constant with use_pickle": (pickled_constant, r"constant 'lifted_tensor_0' .* pickle", "load"),
    "opaque constant": (opaque_constant, r"constant 'obj' .* pickle", "load"),
    "custom object constant": (custom_object, r"constant 'obj' .* pickle", None),
    "pickled sample inputs": (
        sample_inputs,
        r"sample_inputs/model\.pt, a pickle that would call '__builtin__\.exec'",
        "load",
    ),
    "symbolic shape evaluated by sympy": (symbolic_shape, r"symbolic shape .* sympy would evaluate as code", "load"),
    "guard code exec'd by module()": (guard_code, None, "call"),
    "graph node calling any function": (
        call_any_function,
        r"graph node calling 'torch\.serialization\.os\.system'",
        None,
    ),
    "aten::from_file node": (from_file_node, r"graph node calling 'torch\.ops\.aten\.from_file\.default'", None),
    "legacy pickled weights": (legacy_weights, r"data/weights/model\.pt, a pickled payload", None),
}


def _torch_runs_it(path: Path, how: str) -> None:
    try:
        program = torch.export.load(str(path))
        if how == "call":
            program.module()(torch.randn(2, 4))
    except Exception:
        pass


@pytest.mark.parametrize("variant", VARIANTS)
def test_hostile_pt2_is_refused_and_runs_nothing(variant, genuine, tmp_path):
    build, message, how = VARIANTS[variant]
    canary = tmp_path / "canary"
    hostile = rewrite(genuine, tmp_path / "model.pt2", build(canary_code(canary)))
    if how:  # the variant is a real attack: torch's own loader runs it
        _torch_runs_it(hostile, how)
        assert canary.exists(), f"{variant}: torch.export.load did not run the payload; the test proves nothing"
        canary.unlink()
    if message is None:  # guard code is dropped, not refused: the model loads and runs, the code does not
        program = load_model(hostile).handle
        program(torch.randn(2, 4))
    else:
        with pytest.raises(UnsupportedModelError, match=message) as refused:
            load_model(hostile)
        assert "EdgeForge never runs code from a submitted model" in str(refused.value)
        assert "torch.export.save(torch.export.export(" in str(refused.value)
    assert not canary.exists()


def test_genuine_archive_loads_with_the_same_outputs_as_torch(genuine):
    ours = safe_pt2.load(genuine).module()
    theirs = torch.export.load(str(genuine)).module()
    x = torch.randn(5, 4)
    torch.testing.assert_close(ours(x), theirs(x))
    source = load_model(genuine)
    assert [(s.name, s.shape, s.dtype) for s in source.inputs] == [("x", (None, 4), "float32")]


def test_strides_reaching_past_the_stored_bytes_are_refused(genuine, tmp_path):
    def change(members):
        def edit(config):
            config["config"]["fc.weight"]["tensor_meta"]["sizes"] = [{"as_int": 300}, {"as_int": 4}]

        _edit_json(members, "data/weights/model_weights_config.json", edit)

    hostile = rewrite(genuine, tmp_path / "model.pt2", change)
    with pytest.raises(UnsupportedModelError, match=r"holds 12 elements; its sizes and strides need 1200"):
        load_model(hostile)


def test_decompression_bomb_is_refused_before_reading(genuine, tmp_path, monkeypatch):
    monkeypatch.setattr(safe_pt2, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(UnsupportedModelError, match=r"members decompress to \d+ bytes, more than the 1000 accepted"):
        load_model(genuine)


@pytest.mark.parametrize(
    "expr, problem",
    [
        ("Symbol('s0', positive=True, integer=True)", ""),
        ("2*s0 + FloorDiv(s1, 4)", ""),
        ("__import__('os')", "name '__import__'"),
        ("s0.__class__", "character '.' at 2"),
        ("Symbol('a b')", "character"),
        ("(" * 60 + "s0" + ")" * 60, "nested deeper"),
        ("lambda: 0", "name 'lambda'"),
    ],
)
def test_symbolic_expression_grammar(expr, problem):
    got = safe_pt2.expression_problem(expr)
    assert (problem in got) if problem else got == ""


def test_pickle_scanner_follows_the_memo():
    """STACK_GLOBAL fed from memoized strings is seen for what it is, not for the last literals pushed."""
    import pickletools

    body = pickle.dumps(Payload("0"), protocol=4)
    assert "builtins exec" in safe_pt2.pickle_globals(body)
    sneaky = (
        b"\x80\x04\x8c\x08builtins\x940\x8c\x04exec\x940"  # two memoized strings, popped
        b"\x8c\x0ctorch._utils\x8c\x12_rebuild_tensor_v200"  # two harmless literals, popped
        b"h\x00h\x01\x93\x8c\x010\x85R."  # STACK_GLOBAL from the memo, then call it
    )
    pickletools.dis(sneaky, out=io.StringIO())  # a well-formed pickle
    assert "builtins exec" in safe_pt2.pickle_globals(sneaky)
