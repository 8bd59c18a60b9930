"""ModelInferRequest -> validated numpy feeds, and outputs -> ModelInferResponse."""

from __future__ import annotations

import math

import numpy as np

from compressor.errors import InvalidInputError
from server.errors import TooLargeError
from server.inference.repository import ServedModel
from server.inference.tensors import datatype_of, decode


def feeds_from(
    model: ServedModel, request, max_rows: int = 1 << 62, max_elements: int = 1 << 62
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Check a request against ``model``'s inputs and the row and element limits (before decoding anything);
    return the feeds and the output names to return."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidInputError(
            f"request has {len(request.inputs)} inputs but {len(raw)} raw_input_contents "
            "entries; send one per input, in the same order, or none"
        )
    shapes = []
    for tensor in request.inputs:
        spec = model.input(tensor.name)
        shape = tuple(int(d) for d in tensor.shape)
        spec.check(tensor.datatype, shape)
        shapes.append((spec, shape))
    check_limits(model, shapes, max_rows, max_elements)
    feeds: dict[str, np.ndarray] = {}
    for i, (tensor, (spec, shape)) in enumerate(zip(request.inputs, shapes)):
        if tensor.name in feeds:
            raise InvalidInputError(f"input {tensor.name!r} is given twice")
        feeds[tensor.name] = decode(spec, shape, raw[i] if raw else None, tensor.contents)
    missing = [s.describe() for s in model.inputs if s.name not in feeds]
    if missing:
        raise InvalidInputError(f"model {model.name!r} needs input(s) {', '.join(missing)}")
    outputs = [o.name for o in request.outputs] or model.output_names()
    unknown = [o for o in outputs if o not in model.output_names()]
    if unknown:
        raise InvalidInputError(
            f"model {model.name!r} has no output(s) {unknown}; its outputs: "
            f"{', '.join(s.describe() for s in model.outputs)}"
        )
    return feeds, outputs


def check_limits(model: ServedModel, shapes, max_rows: int, max_elements: int) -> None:
    """TooLargeError (RESOURCE_EXHAUSTED) past the model's limits; sizes are Python ints, so nothing wraps."""
    rows = max((shape[0] if shape else 1 for _, shape in shapes), default=0)
    if rows > max_rows:
        raise TooLargeError(
            f"the request to {model.name!r} has {rows} rows; this server accepts at most {max_rows} per request. "
            "Split it into smaller batches"
        )
    elements = sum(math.prod(shape) for _, shape in shapes)
    if elements > max_elements:
        raise TooLargeError(
            f"the request to {model.name!r} holds {elements} elements; this server accepts at most {max_elements} "
            "per request. Send fewer rows"
        )


def fill_response(response, model: ServedModel, request_id: str, names: list[str], arrays: list[np.ndarray]):
    """Write outputs as raw_output_contents (what stock clients read) into ``response``."""
    response.model_name, response.model_version, response.id = model.name, model.version, request_id
    for name, array in zip(names, arrays):
        array = np.ascontiguousarray(array)
        out = response.outputs.add(name=name, datatype=datatype_of(array))
        out.shape.extend(array.shape)
        response.raw_output_contents.append(array.tobytes())
    return response
