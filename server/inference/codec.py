"""ModelInferRequest -> validated numpy feeds, and outputs -> ModelInferResponse."""

from __future__ import annotations

import numpy as np

from compressor.errors import InvalidInputError
from server.inference.repository import ServedModel
from server.inference.tensors import datatype_of, decode


def feeds_from(model: ServedModel, request) -> tuple[dict[str, np.ndarray], list[str]]:
    """Check a request against ``model``'s inputs; return the feeds and the output names to return."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidInputError(
            f"request has {len(request.inputs)} inputs but {len(raw)} raw_input_contents "
            "entries; send one per input, in the same order, or none"
        )
    feeds: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(request.inputs):
        spec = model.input(tensor.name)
        if tensor.name in feeds:
            raise InvalidInputError(f"input {tensor.name!r} is given twice")
        shape = tuple(int(d) for d in tensor.shape)
        spec.check(tensor.datatype, shape)
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


def fill_response(response, model: ServedModel, request_id: str, names: list[str], arrays: list[np.ndarray]):
    """Write outputs as raw_output_contents (what stock clients read) into ``response``."""
    response.model_name, response.model_version, response.id = model.name, model.version, request_id
    for name, array in zip(names, arrays):
        array = np.ascontiguousarray(array)
        out = response.outputs.add(name=name, datatype=datatype_of(array))
        out.shape.extend(array.shape)
        response.raw_output_contents.append(array.tobytes())
    return response
