"""The part of the Open Inference Protocol an SDK speaks (``ModelInfer``), read from ``protos/inference`` by protoc.

The mobile templates render their own proto (Android, with a per-SDK ``java_package``) and Swift message types
(iOS, with a per-SDK prefix) from this description, so field names and numbers come from the proto file itself; the
wire names (package ``inference``, ``GRPCInferenceService/ModelInfer``) stay those of the standard.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from google.protobuf import descriptor_pb2

F = descriptor_pb2.FieldDescriptorProto
# (proto type, repeated) -> the kind the templates know; other fields (maps, oneofs, unused messages) are left out,
# which protobuf's wire format allows: a reader skips fields it does not declare.
_KINDS = {
    (F.TYPE_STRING, False): "string",
    (F.TYPE_INT64, True): "int64s",
    (F.TYPE_BYTES, True): "bytess",
    (F.TYPE_MESSAGE, True): "messages",
}
ROOTS = ("ModelInferRequest", "ModelInferResponse")
METHOD = "ModelInfer"


@dataclass(frozen=True)
class ProtoField:
    """One field: proto name, number, kind (``string``, ``int64s``, ``bytess``, ``messages``), element message."""

    name: str
    number: int
    kind: str
    message: str | None  # the element message's path (``ModelInferRequest.InferInputTensor``) for ``messages``

    @property
    def camel(self) -> str:
        """lowerCamelCase, as protoc-gen-swift and protoc's Java generator name accessors."""
        head, *rest = self.name.split("_")
        return head + "".join(part[:1].upper() + part[1:] for part in rest)

    @property
    def upper_camel(self) -> str:
        return self.camel[:1].upper() + self.camel[1:]


@dataclass(frozen=True)
class ProtoMessage:
    """A message by its path inside the package (``ModelInferRequest.InferInputTensor``) with the fields SDKs use."""

    path: str
    fields: tuple[ProtoField, ...]

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def parent(self) -> str | None:
        return self.path.rsplit(".", 1)[0] if "." in self.path else None

    @property
    def flat(self) -> str:
        """The path with the dots dropped (``ModelInferRequestInferInputTensor``)."""
        return self.path.replace(".", "")


@dataclass(frozen=True)
class ProtoSpec:
    package: str
    service: str
    method: str
    messages: tuple[ProtoMessage, ...]  # parents before their nested messages

    @property
    def method_path(self) -> str:
        return f"/{self.package}.{self.service}/{self.method}"

    def nested(self, parent: str | None) -> tuple[ProtoMessage, ...]:
        return tuple(m for m in self.messages if m.parent == parent)


def run_protoc(args: list[str]) -> None:
    """grpcio-tools' protoc with ``args`` (its own well-known-types include added), in a process of its own.

    In-process ``grpc_tools.protoc.main`` was seen to crash (SIGSEGV) in a process that had loaded TensorFlow and
    friends; a child process costs a fraction of a second and cannot take the caller down.
    """
    done = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", *args], check=False, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"grpc_tools.protoc failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def descriptor_set(proto: Path) -> bytes:
    """``proto`` (a file in a folder named after its package) compiled by protoc to a serialized FileDescriptorSet."""
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "set.pb"
        run_protoc([f"-I{proto.parent.parent}", f"--descriptor_set_out={out}", f"{proto.parent.name}/{proto.name}"])
        return out.read_bytes()


def _messages(
    package: str, message: descriptor_pb2.DescriptorProto, prefix: str = ""
) -> list[tuple[str, descriptor_pb2.DescriptorProto]]:
    path = f"{prefix}{message.name}"
    found = [(path, message)]
    for nested in message.nested_type:
        if not nested.options.map_entry:
            found += _messages(package, nested, f"{path}.")
    return found


def _fields(package: str, message: descriptor_pb2.DescriptorProto, known: set[str]) -> tuple[ProtoField, ...]:
    fields = []
    for field in message.field:
        kind = _KINDS.get((field.type, field.label == F.LABEL_REPEATED))
        element = field.type_name.removeprefix(f".{package}.") if field.type == F.TYPE_MESSAGE else None
        if kind is None or field.HasField("oneof_index") or (element is not None and element not in known):
            continue
        fields.append(ProtoField(field.name, field.number, kind, element))
    return tuple(fields)


@lru_cache(maxsize=4)
def proto_spec(proto: Path) -> ProtoSpec:
    """The ``ModelInfer`` messages of ``proto``: the request and response and the tensors nested in them."""
    file = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set(proto)).file[0]
    service = next(s for s in file.service if any(m.name == METHOD for m in s.method))
    selected = [(p, m) for top in file.message_type if top.name in ROOTS for p, m in _messages(file.package, top)]
    used = {p for p, m in selected if p in ROOTS or any(p.startswith(f"{r}.Infer") for r in ROOTS)}
    used = {p for p in used if not p.endswith("RequestedOutputTensor")}
    messages = tuple(ProtoMessage(p, _fields(file.package, m, used)) for p, m in selected if p in used)
    return ProtoSpec(file.package, service.name, METHOD, messages)
