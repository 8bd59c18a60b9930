"""Refusals of the other formats a tenant can upload, kept beside the .pt2 ones (tests/test_security_pt2.py):
ONNX external data that leaves the model's folder, Keras objects that only unsafe deserialization builds, a
served ONNX model whose tensors live in other files.  (Plain pickles and object-array npz: tests/test_inputs.py.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compressor.errors import UnsupportedModelError
from compressor.sources import load_model


def _onnx_with_external(folder: Path, location: str) -> Path:
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4], [0.0] * 4)
    weight.data_location = TensorProto.EXTERNAL
    del weight.float_data[:]
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        weight.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("location", ["../../secret.bin", "/etc/passwd"])
def test_onnx_external_data_outside_the_model_folder_is_refused(tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(b"s3cr3t-s3cr3t-16")
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True)
    with pytest.raises(UnsupportedModelError, match=r"model\.onnx is not a valid ONNX model"):
        load_model(_onnx_with_external(folder, location))


def test_served_model_with_external_data_is_refused(tmp_path):
    """A job's output is untrusted; onnxruntime in the server process must not follow it to other files."""
    from server.inference.repository import ModelRepository

    (tmp_path / "weights.bin").write_bytes(b"\0" * 16)
    with pytest.raises(UnsupportedModelError, match=r"stored outside the file \(external data\)"):
        ModelRepository().register("m", "1", _onnx_with_external(tmp_path, "weights.bin"))


def test_keras_lambda_layer_is_refused_by_safe_mode(tmp_path):
    import keras

    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    path = tmp_path / "model.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(UnsupportedModelError, match=r"model\.keras is not a loadable Keras model"):
        load_model(path)


def test_npz_decompression_bomb_is_refused_before_decompressing(tmp_path):
    from compressor.data import read_npz
    from compressor.errors import InvalidInputError

    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((64, 1 << 20), np.uint8))  # 64 MiB of zeros in ~64 KiB
    assert path.stat().st_size < 1 << 20
    with pytest.raises(InvalidInputError, match=r"decompresses to 67108\d+ bytes; at most 1048576 are accepted"):
        read_npz(path, max_bytes=1 << 20)
