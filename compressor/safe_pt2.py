"""Read a ``torch.export.save`` archive (``.pt2``) without running anything it carries.

``torch.export.load`` trusts its archive: in torch 2.13 it unpickles weights and constants marked
``use_pickle`` (``torch.load(weights_only=False)``), opaque constants (``pickle.loads``) and TorchScript
objects, retries pickled sample inputs with ``weights_only=False``, hands symbolic shape strings to
``sympy.sympify`` (which evaluates them), lets a graph node name any callable reachable from ``torch``,
``operator`` or ``math``, and ``ExportedProgram.module()`` ``exec``s the archive's guard code.

:func:`load` reads the zip itself (bounded member count and sizes), rebuilds every tensor from raw bytes
only (``torch.frombuffer`` plus bounds-checked strides), and refuses, before torch sees anything:

- a weight or constant that would be unpickled (``use_pickle``, custom or opaque objects, legacy ``.pt``
  payloads), and sample inputs whose pickle names anything but plain tensors and containers;
- a graph node whose target is not an operator of an allowed namespace (``aten``, ``prims``, ...), or an
  ``aten`` operator that opens files (``from_file``);
- a symbolic expression containing anything but numbers, symbol names and sympy's arithmetic.

Guard code is dropped and sample inputs are not handed on, so ``module()`` generates no code from the
archive.  What remains goes through torch's own ``ExportedProgramDeserializer`` as plain data.
"""

from __future__ import annotations

import io
import json
import pickletools
import re
import sys
import zipfile
from pathlib import Path
from typing import Any, cast

from compressor.errors import UnsupportedModelError

MAX_MEMBERS = 20_000
MAX_TOTAL_BYTES = 8 << 30  # uncompressed bytes of all members together
MAX_JSON_BYTES = 256 << 20  # one model graph or payload config
MAX_EXPR_CHARS = 4096
MAX_EXPR_DEPTH = 48

_HOW_TO_FIX = (
    "Export the model with plain tensor weights, buffers and constants "
    "(torch.export.save(torch.export.export(model.eval(), example_args), 'model.pt2')) and submit that file."
)

# Graph node targets: operators of these namespaces only (HOPs by name), plus the symbolic-int operators.
_OP_NAMESPACES = frozenset({"aten", "prims", "quantized_decomposed", "quantized", "_quantized"})
_HIGHER_ORDER = frozenset(
    {
        "cond",
        "while_loop",
        "map_impl",
        "invoke_subgraph",
        "wrap_with_set_grad_enabled",
        "wrap_with_autocast",
        "auto_functionalized",
        "auto_functionalized_v2",
    }
)
_SYM_TARGETS = frozenset(
    {
        *(
            f"_operator.{n}"
            for n in [
                "eq",
                "ne",
                "le",
                "ge",
                "lt",
                "gt",
                "neg",
                "pos",
                "mul",
                "add",
                "sub",
                "floordiv",
                "mod",
                "pow",
                "truediv",
                "and_",
                "or_",
                "lshift",
                "rshift",
                "getitem",
            ]
        ),
        "math.trunc",
        *(f"torch.sym_{n}" for n in ("not", "int", "float", "ite", "max", "min", "sqrt")),
    }
)
_OP_TARGET = re.compile(
    r"^torch\.ops\.([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?$"
)

# Symbolic expressions: what torch writes (srepr of sympy expressions over symbols s0, u1...).
_SYMPY_NAMES = frozenset(
    [
        "Symbol",
        "Integer",
        "Rational",
        "Float",
        "Add",
        "Mul",
        "Pow",
        "Max",
        "Min",
        "Abs",
        "Mod",
        "floor",
        "ceiling",
        "sqrt",
        "Eq",
        "Ne",
        "Lt",
        "Le",
        "Gt",
        "Ge",
        "StrictLessThan",
        "StrictGreaterThan",
        "LessThan",
        "GreaterThan",
        "Equality",
        "Unequality",
        "And",
        "Or",
        "Not",
        "Piecewise",
        "ITE",
        "true",
        "false",
        "True",
        "False",
        "None",
        "oo",
        "zoo",
        "nan",
        "S",
        "Half",
        "One",
        "Zero",
        "NegativeOne",
        "Infinity",
        "NegativeInfinity",
        "positive",
        "negative",
        "integer",
        "real",
        "nonnegative",
        "nonpositive",
        "zero",
        "nonzero",
        "finite",
        "infinite",
        "even",
        "odd",
        "rational",
        "commutative",
        "extended_real",
        "extended_positive",
        "extended_negative",
        "extended_nonnegative",
        "FloorDiv",
        "ModularIndexing",
        "Where",
        "PythonMod",
        "CleanDiv",
        "CeilToInt",
        "FloorToInt",
        "CeilDiv",
        "LShift",
        "RShift",
        "PowByNatural",
        "FloatPow",
        "FloatTrueDiv",
        "IntTrueDiv",
        "IsNonOverlappingAndDenseIndicator",
        "TruncToFloat",
        "TruncToInt",
        "RoundToInt",
        "RoundDecimal",
        "ToFloat",
        "Identity",
        "OpaqueUnaryFn_sqrt",
        "BitwiseFn_bitwise_and",
        "BitwiseFn_bitwise_or",
        "int_oo",
        "IntInfinity",
        "NegativeIntInfinity",
    ]
)
_SYMBOL_NAME = re.compile(r"^[a-z]{1,4}\d+$")
_EXPR_TOKEN = re.compile(
    r"""\s+|(?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<string>'[A-Za-z_][A-Za-z0-9_]*'|"[A-Za-z_][A-Za-z0-9_]*")|(?P<open>\()|(?P<close>\))|(?P<op>\*\*|//|[-+*/%,=<>!&|~^])"""
)

# Sample inputs: the only globals a pickle of tensors in tuples and dicts names.
_SAFE_GLOBALS = frozenset(
    {
        "torch._utils _rebuild_tensor_v2",
        "torch._utils _rebuild_parameter",
        "torch._utils _rebuild_tensor",
        "collections OrderedDict",
        "torch Size",
        "torch device",
        *(
            f"torch {t}Storage"
            for t in [
                "Float",
                "Double",
                "Half",
                "BFloat16",
                "Long",
                "Int",
                "Short",
                "Char",
                "Byte",
                "Bool",
                "ComplexFloat",
                "ComplexDouble",
                "Untyped",
            ]
        ),
        *(
            f"torch {t}"
            for t in (["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"])
        ),
    }
)


def load(path: str | Path):
    """The ExportedProgram in ``path``, read without unpickling or evaluating anything from the file.

    Raises :class:`UnsupportedModelError` for a file that is not a PT2 archive, and for one that
    carries a member only code execution could read (the message names the member and how to re-export).
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _not_pt2(path, f"not a zip archive: {exc}") from None
    with archive:
        try:
            return _Reader(path, archive).program()
        except UnsupportedModelError:
            raise
        except (zipfile.BadZipFile, ValueError, KeyError, TypeError, OSError, EOFError, RecursionError) as exc:
            raise _not_pt2(path, f"{type(exc).__name__}: {str(exc)[:200]}") from None
        except Exception as exc:  # noqa: BLE001 - torch's deserializer raises its own untyped errors
            raise _not_pt2(path, f"{type(exc).__name__}: {str(exc)[:200]}") from None


# Packages whose output classes (e.g. transformers' ModelOutput dataclasses) a program may return: importing the
# module that defines one registers it with torch's pytree, as it is when the model is exported in that process.
OUTPUT_TYPE_PACKAGES = ("transformers", "diffusers")
_TYPE_NAME = re.compile(r"((?:" + "|".join(OUTPUT_TYPE_PACKAGES) + r")(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def register_output_types(document: dict) -> list[str]:
    """Import the modules of allow-listed packages whose classes the program's input/output specs name.

    Only modules inside an installed allow-listed package are imported (never a module the file could choose
    freely); one that does not exist is skipped, and deserializing then says which class it lacks.
    """
    import importlib
    import importlib.util

    specs = json.dumps(document.get("graph_module", {}).get("module_call_graph", []))
    imported = []
    for name in sorted(set(_TYPE_NAME.findall(specs))):
        module = name.rpartition(".")[0]
        if module.split(".")[0] not in OUTPUT_TYPE_PACKAGES or module in imported:
            continue
        try:
            if importlib.util.find_spec(module) is None:
                continue
            importlib.import_module(module)
        except (ImportError, ValueError):
            continue
        imported.append(module)
    return imported


def _not_pt2(path: Path, why: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"model file {path} is not a readable ExportedProgram ({why}); write it with torch.export.save. "
        "Accepted formats: .pt2 (torch.export.save), .pt (TorchScript: torch.jit.save), .onnx, .keras"
    )


def refusal(path: Path, member: str, why: str) -> UnsupportedModelError:
    """The error for a member that only code execution could read."""
    return UnsupportedModelError(
        f"model file {path} carries {member}, {why}. EdgeForge never runs code from a submitted model, so it "
        f"refuses the file without reading that member. {_HOW_TO_FIX}"
    )


class _Reader:
    """One archive: member names under the archive's root folder, each read at most once, sizes bounded."""

    def __init__(self, path: Path, archive: zipfile.ZipFile) -> None:
        self.path, self.archive = path, archive
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _not_pt2(path, f"{len(infos)} members, more than the {MAX_MEMBERS} accepted")
        total = sum(i.file_size for i in infos)
        if total > MAX_TOTAL_BYTES:
            raise _not_pt2(path, f"members decompress to {total} bytes, more than the {MAX_TOTAL_BYTES} accepted")
        roots = {i.filename.split("/", 1)[0] for i in infos}
        if len(roots) != 1 or not infos:
            raise _not_pt2(path, "members do not share one root folder")
        root = roots.pop() + "/"
        self.members = {i.filename[len(root) :]: i for i in infos if i.filename.startswith(root)}

    def read(self, name: str, limit: int = MAX_TOTAL_BYTES) -> bytes:
        info = self.members.get(name)
        if info is None:
            raise _not_pt2(self.path, f"it has no {name}")
        if info.file_size > limit:
            raise _not_pt2(self.path, f"{name} holds {info.file_size} bytes, more than the {limit} accepted")
        return self.archive.read(info)

    def json(self, name: str) -> Any:
        return json.loads(self.read(name, MAX_JSON_BYTES))

    def program(self):
        from torch._export.serde import schema
        from torch._export.serde.serialize import ExportedProgramDeserializer, _dict_to_dataclass
        from torch.export.pt2_archive import constants as c

        if self.read(c.ARCHIVE_FORMAT_PATH, 64).strip() != c.ARCHIVE_FORMAT_VALUE.encode():
            raise _not_pt2(self.path, "its archive_format is not pt2 (an older torch.export.save format?)")
        if self.members.get("byteorder") and self.read("byteorder", 64).strip() not in (b"", sys.byteorder.encode()):
            raise _not_pt2(self.path, f"its byte order is not this machine's ({sys.byteorder})")
        models = sorted(n for n in self.members if n.startswith(c.MODELS_DIR) and n.endswith(".json"))
        if models != [c.MODELS_FILENAME_FORMAT.format("model")]:
            raise _not_pt2(self.path, f"it holds models {models}; one ExportedProgram named 'model' is accepted")
        for legacy in (f"{c.WEIGHTS_DIR}model.pt", f"{c.CONSTANTS_DIR}model.pt"):
            if legacy in self.members:
                raise refusal(self.path, legacy, "a pickled payload of an older torch.export.save format")
        weights = self.payloads(c.WEIGHTS_CONFIG_FILENAME_FORMAT.format("model"), c.WEIGHTS_DIR, "weight")
        constants = self.payloads(c.CONSTANTS_CONFIG_FILENAME_FORMAT.format("model"), c.CONSTANTS_DIR, "constant")
        sample = c.SAMPLE_INPUTS_FILENAME_FORMAT.format("model")
        if sample in self.members:
            check_pickled_tensors(self.path, sample, self.read(sample))
        document = self.json(c.MODELS_FILENAME_FORMAT.format("model"))
        check_program(self.path, document)
        register_output_types(document)
        serialized = _dict_to_dataclass(schema.ExportedProgram, document)
        return ExportedProgramDeserializer().deserialize(serialized, weights, constants, None)

    def payloads(self, config_name: str, directory: str, kind: str) -> dict:
        """Tensors by fully qualified name from a payload config; raw bytes only, aliasing kept."""
        import torch
        from torch._export.serde import schema
        from torch._export.serde.serialize import _dict_to_dataclass

        config = _dict_to_dataclass(schema.PayloadConfig, self.json(config_name))
        flat: dict[str, torch.Tensor] = {}
        tensors = {}
        for fqn, meta in config.config.items():
            member = f"{directory}{meta.path_name}"
            if meta.use_pickle or meta.tensor_meta is None:
                raise refusal(self.path, f"{kind} {fqn!r} ({member})", "stored as a pickle (use_pickle: true)")
            if not re.fullmatch(r"tensor_\d+|weight_\d+", meta.path_name or ""):
                raise refusal(
                    self.path,
                    f"{kind} {fqn!r} ({member})",
                    "a member that is not a raw tensor (custom or opaque object)",
                )
            if meta.path_name not in flat:
                flat[meta.path_name] = self.raw_tensor(member, meta.tensor_meta)
            tensors[fqn] = _view(self.path, member, flat[meta.path_name], meta.tensor_meta, meta.is_param)
        return tensors

    def raw_tensor(self, member: str, tensor_meta):
        import torch
        from torch._export.serde.serialize import deserialize_scalar_type

        dtype = deserialize_scalar_type(tensor_meta.dtype)
        if tensor_meta.device.type != "cpu":
            raise _not_pt2(self.path, f"{member} is stored for device {tensor_meta.device.type}; export on CPU")
        data = self.read(member)
        size = torch.empty((), dtype=dtype).element_size()
        if len(data) % size:
            raise _not_pt2(self.path, f"{member} holds {len(data)} bytes, not a whole number of {dtype} elements")
        if not data:
            return torch.empty(0, dtype=dtype)
        return torch.frombuffer(bytearray(data), dtype=dtype)


def _view(path: Path, member: str, flat, tensor_meta, is_param: bool):
    """The strided tensor ``tensor_meta`` describes over ``flat``; refused if it would reach past its bytes."""
    import torch

    sizes = [_int(path, member, s) for s in tensor_meta.sizes]
    strides = [_int(path, member, s) for s in tensor_meta.strides]
    offset = _int(path, member, tensor_meta.storage_offset)
    if len(sizes) != len(strides) or min([*sizes, *strides, offset, 0]) < 0:
        raise _not_pt2(path, f"{member} has inconsistent sizes {sizes} / strides {strides}")
    if flat.numel() == 0:
        tensor = torch.zeros(sizes, dtype=flat.dtype)
    else:
        extent = offset + sum((n - 1) * s for n, s in zip(sizes, strides)) + 1 if all(sizes) else 0
        if extent > flat.numel():
            raise _not_pt2(path, f"{member} holds {flat.numel()} elements; its sizes and strides need {extent}")
        tensor = torch.as_strided(flat, sizes, strides, offset)
    if is_param:
        return torch.nn.Parameter(tensor, requires_grad=bool(tensor_meta.requires_grad))
    return tensor


def _int(path: Path, member: str, value) -> int:
    if value.type != "as_int":
        raise _not_pt2(path, f"{member} has a symbolic size or stride; stored tensors need concrete ones")
    return int(value.as_int)


def check_program(path: Path, document: Any) -> None:
    """Refuse unsafe node targets and symbolic expressions anywhere in a model graph; drop guard code."""
    if not isinstance(document, dict):
        raise _not_pt2(path, "its model graph is not a JSON object")
    if document.get("guards_code"):
        document["guards_code"] = []  # exec'd by ExportedProgram.module(); input checks are not worth running code
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if (key == "target" and isinstance(value, str)) or (key == "as_operator" and isinstance(value, str)):
                    check_target(path, value)
                elif key == "expr_str" and isinstance(value, str):
                    check_expression(path, value)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


def check_target(path: Path, target: str) -> None:
    """A graph node may call an operator of an allowed namespace, or a symbolic-int operator; nothing else."""
    if target in _SYM_TARGETS:
        return
    match = _OP_TARGET.match(target)
    if match:
        namespace, op = match.group(1), match.group(2)
        if namespace in _OP_NAMESPACES and f"{namespace}::{op}" not in _file_ops():
            return
        if namespace == "higher_order" and op in _HIGHER_ORDER:
            return
    raise refusal(
        path,
        f"a graph node calling {target[:120]!r}",
        "which is not an operator EdgeForge runs (allowed: torch.ops.aten/prims/quantized_decomposed operators "
        "that do not open files, and torch.export's control-flow operators)",
    )


def _file_ops() -> frozenset[str]:
    """``aten`` operators taking a file name (``aten::from_file``): they reach the file system."""
    global _FILE_OPS
    if _FILE_OPS is None:
        import torch

        _FILE_OPS = frozenset(
            s.name
            for s in torch._C._jit_get_all_schemas()  # noqa: SLF001 - the only list of registered schemas
            if any(a.name in ("filename", "path", "file") for a in s.arguments)
        )
    return _FILE_OPS


_FILE_OPS: frozenset[str] | None = None


def check_expression(path: Path, expr: str) -> None:
    """A symbolic shape (handed to ``sympy.sympify``, which evaluates it) may hold numbers, symbol names,
    quoted symbol names, sympy's constructors and arithmetic; anything else is refused."""
    problem = expression_problem(expr)
    if problem:
        raise refusal(path, f"the symbolic shape {expr[:80]!r}", f"which sympy would evaluate as code ({problem})")


def expression_problem(expr: str) -> str:
    """Why ``expr`` is not a plain symbolic expression ('' when it is)."""
    if len(expr) > MAX_EXPR_CHARS:
        return f"{len(expr)} characters, more than {MAX_EXPR_CHARS}"
    position, depth = 0, 0
    while position < len(expr):
        token = _EXPR_TOKEN.match(expr, position)
        if token is None:
            return f"character {expr[position]!r} at {position}"
        name = token.group("name")
        if name and name not in _SYMPY_NAMES and not _SYMBOL_NAME.match(name):
            return f"name {name!r}"
        if token.group("open"):
            depth += 1
            if depth > MAX_EXPR_DEPTH:
                return f"parentheses nested deeper than {MAX_EXPR_DEPTH}"
        elif token.group("close"):
            depth -= 1
            if depth < 0:
                return "unbalanced parentheses"
        position = token.end()
    return "unbalanced parentheses" if depth else ""


def check_pickled_tensors(path: Path, member: str, data: bytes) -> None:
    """Refuse a ``torch.save`` payload whose pickle names any global beyond tensors, storages and containers.

    The pickle is only parsed (``pickletools.genops``), never executed."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            pickles = [n for n in inner.namelist() if n.endswith(".pkl")]
            if len(pickles) != 1:
                raise refusal(path, member, f"a torch.save payload with {len(pickles)} pickles instead of one")
            info = inner.getinfo(pickles[0])
            if info.file_size > MAX_JSON_BYTES:
                raise refusal(path, member, f"a pickle of {info.file_size} bytes")
            body = inner.read(info)
    except zipfile.BadZipFile:
        body = data
    for name in pickle_globals(body):
        if name not in _SAFE_GLOBALS:
            raise refusal(path, member, f"a pickle that would call {name.replace(' ', '.')!r} when loaded")


def pickle_globals(body: bytes) -> list[str]:
    """Every global ('module name') a pickle references, found by parsing its opcodes (never executing them).

    The values STACK_GLOBAL takes are followed through the memo; anything else pushed in between counts as
    unknown, so a global built any other way is reported as ``<computed global>`` (and refused by callers)."""
    found: list[str] = []
    recent: list[str | None] = []  # what each opcode left on top of the stack, as far as strings go
    memo: dict[int, str | None] = {}
    try:
        for opcode, arg, _ in pickletools.genops(body):
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                found.append(str(arg))
            elif name == "STACK_GLOBAL":
                module, attr = recent[-2:] if len(recent) >= 2 else [None, None]
                found.append(f"{module} {attr}" if module and attr else "<computed global>")
            elif name.startswith("EXT"):
                found.append(f"<extension code {arg}>")
            if name in _STRING_OPS:
                recent.append(str(arg))
            elif name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(cast(int, arg))] = recent[-1] if recent else None
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                recent.append(memo.get(int(cast(int, arg))))
            else:
                recent.append(None)
    except Exception as exc:  # noqa: BLE001 - a pickle pickletools cannot parse is not loaded either
        return [f"<unparsable pickle: {type(exc).__name__}>"]
    return found


_STRING_OPS = frozenset(
    {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
)
