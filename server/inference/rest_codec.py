"""OIP v2 REST bodies <-> numpy: JSON tensors and the binary tensor data extension.

A request body is JSON, or (binary extension) JSON of ``Inference-Header-Content-Length`` bytes followed by the
raw bytes of each input whose ``parameters.binary_data_size`` says how many, in input order.  Outputs go back as
JSON ``data`` or, when asked for (``parameters.binary_data`` on an output, or ``binary_data_output`` on the request),
as raw bytes after the JSON in the same way.  Inputs are checked against the model with the same
:class:`~server.inference.tensors.TensorSpec` rules as gRPC.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from compressor.errors import InvalidInputError
from server.inference.codec import check_limits
from server.inference.repository import ServedModel
from server.inference.tensors import DATATYPES, datatype_of

HEADER_LENGTH = "inference-header-content-length"
_UNSUPPORTED = ("shared_memory_region", "classification")  # Triton extensions this server does not offer


@dataclass(frozen=True)
class InferRequest:
    """A decoded ``/infer`` body: the feeds, the outputs to return and which of them go back as binary."""

    id: str
    feeds: dict[str, np.ndarray]
    outputs: list[str]
    binary: frozenset[str]


def parse_body(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """Split a request body into its JSON object and the binary tensor data after it."""
    if header_length is None:
        size = len(body)
    else:
        try:
            size = int(header_length)
        except ValueError:
            size = -1
        if not 0 <= size <= len(body):
            raise InvalidInputError(
                f"Inference-Header-Content-Length is {header_length!r} but the body has {len(body)} bytes; "
                "it must be the length of the JSON part"
            )
    try:
        document = json.loads(body[:size])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"the request's JSON is invalid: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInputError("the request's JSON must be an object with 'inputs'")
    return document, body[size:]


def decode_request(model: ServedModel, document: dict, binary: bytes, max_rows: int, max_elements: int) -> InferRequest:
    """Check an infer request against ``model`` and the server's per-request limits (the same as ModelInfer's, from
    the declared shapes, before anything is decoded); raise :class:`InvalidInputError` naming what is wrong."""
    parameters = _parameters(document, "the request")
    _refuse_extensions(parameters, "the request")
    inputs = document.get("inputs")
    if not isinstance(inputs, list):
        raise InvalidInputError("the request needs 'inputs': a list of {name, shape, datatype, data} objects")
    check_limits(model, [(None, _declared_shape(model, t)) for t in inputs], max_rows, max_elements)
    feeds: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in inputs:
        array, used = _decode_input(model, tensor, binary, offset)
        if tensor["name"] in feeds:
            raise InvalidInputError(f"input {tensor['name']!r} is given twice")
        feeds[tensor["name"]] = array
        offset += used
    if offset != len(binary):
        raise InvalidInputError(
            f"the body carries {len(binary)} bytes of binary tensor data but the inputs' binary_data_size add up "
            f"to {offset}"
        )
    missing = [s.describe() for s in model.inputs if s.name not in feeds]
    if missing:
        raise InvalidInputError(f"model {model.name!r} needs input(s) {', '.join(missing)}")
    outputs, binary_outputs = _outputs(model, document, bool(parameters.get("binary_data_output", False)))
    return InferRequest(str(document.get("id", "")), feeds, outputs, binary_outputs)


def encode_response(model: ServedModel, request: InferRequest, arrays: list[np.ndarray]) -> tuple[bytes, int | None]:
    """The response body and, when binary outputs follow the JSON, the JSON's length (for the header)."""
    described, blobs = [], []
    for name, array in zip(request.outputs, arrays):
        array = np.ascontiguousarray(array)
        out: dict[str, object] = {"name": name, "datatype": datatype_of(array), "shape": list(array.shape)}
        if name in request.binary:
            blob = array.tobytes()
            out["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            out["data"] = array.ravel().tolist()
        described.append(out)
    document = {"model_name": model.name, "model_version": model.version, "outputs": described}
    if request.id:
        document["id"] = request.id
    head = json.dumps(document, separators=(",", ":")).encode()
    return (head + b"".join(blobs), len(head)) if blobs else (head, None)


def _parameters(obj: dict, where: str) -> dict:
    parameters = obj.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidInputError(f"'parameters' of {where} must be a JSON object")
    return parameters


def _refuse_extensions(parameters: dict, where: str) -> None:
    used = [p for p in parameters if p.startswith(_UNSUPPORTED)]
    if used:
        raise InvalidInputError(
            f"{where} uses {', '.join(used)}; this server does not offer shared memory or classification: "
            "send tensor data in the body (JSON 'data' or binary_data_size)"
        )


def _declared_shape(model: ServedModel, tensor) -> tuple[int, ...]:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise InvalidInputError("each input must be an object with 'name', 'shape', 'datatype' and 'data'")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise InvalidInputError(f"input {tensor['name']!r} needs 'shape': a list of integers, got {shape!r}")
    return tuple(shape)


def _decode_input(model: ServedModel, tensor, binary: bytes, offset: int) -> tuple[np.ndarray, int]:
    """One input as an array, and how many bytes of ``binary`` (from ``offset``) it used."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise InvalidInputError("each input must be an object with 'name', 'shape', 'datatype' and 'data'")
    spec = model.input(tensor["name"])
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise InvalidInputError(f"input {spec.name!r} needs 'shape': a list of integers, got {shape!r}")
    spec.check(str(tensor.get("datatype")), tuple(shape))
    parameters = _parameters(tensor, f"input {spec.name!r}")
    _refuse_extensions(parameters, f"input {spec.name!r}")
    dtype = DATATYPES[spec.datatype]
    count = int(np.prod(shape, dtype=np.int64))
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        expected = count * dtype.itemsize
        if size != expected or offset + size > len(binary):
            raise InvalidInputError(
                f"input {spec.name!r} declares binary_data_size {size!r} ({len(binary) - offset} bytes left in the "
                f"body); shape {shape} of {spec.datatype} needs {expected}"
            )
        return np.frombuffer(binary, dtype=dtype, count=count, offset=offset).reshape(shape), size
    if "data" not in tensor:
        raise InvalidInputError(f"input {spec.name!r} has neither 'data' nor parameters.binary_data_size")
    try:
        array = np.asarray(tensor["data"], dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInputError(
            f"input {spec.name!r}: 'data' is not a list of {spec.datatype} values ({exc})"
        ) from None
    if array.size != count:
        raise InvalidInputError(
            f"input {spec.name!r} carries {array.size} values in 'data'; shape {shape} needs {count}"
        )
    return array.reshape(shape), 0


def _outputs(model: ServedModel, document: dict, all_binary: bool) -> tuple[list[str], frozenset[str]]:
    """The outputs to return, in order, and those to send as binary data."""
    asked = document.get("outputs")
    if asked is None:
        names = model.output_names()
        return names, frozenset(names if all_binary else ())
    if not isinstance(asked, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in asked):
        raise InvalidInputError("'outputs' must be a list of {name, parameters} objects")
    names = [o["name"] for o in asked]
    unknown = [n for n in names if n not in model.output_names()]
    if unknown:
        raise InvalidInputError(
            f"model {model.name!r} has no output(s) {unknown}; its outputs: "
            f"{', '.join(s.describe() for s in model.outputs)}"
        )
    binary = set()
    for o in asked:
        parameters = _parameters(o, f"output {o['name']!r}")
        _refuse_extensions(parameters, f"output {o['name']!r}")
        if parameters.get("binary_data", all_binary):
            binary.add(o["name"])
    return names, frozenset(binary)
