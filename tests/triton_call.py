"""Run by tests in a child process: a stock tritonclient[grpc] calling our server.

tritonclient registers its own copy of the ``inference`` protos in protobuf's default pool, so it
cannot share a process with our generated stubs; a separate process is also how real clients call.
Usage: python triton_call.py HOST:PORT MODEL INPUT.npz OUTPUT.npz
"""

import json
import sys

import numpy as np
import tritonclient.grpc as triton


def main(url: str, model: str, inputs_path: str, out_path: str) -> None:
    client = triton.InferenceServerClient(url)
    meta = client.get_model_metadata(model, as_json=True)
    arrays = dict(np.load(inputs_path))
    inputs = []
    for spec in meta["inputs"]:
        array = arrays[spec["name"]]
        tensor = triton.InferInput(spec["name"], list(array.shape), spec["datatype"])
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = client.infer(model, inputs)
    np.savez(out_path, **{o["name"]: result.as_numpy(o["name"]) for o in meta["outputs"]})
    print(json.dumps({"live": client.is_server_live(), "ready": client.is_model_ready(model), "metadata": meta}))


if __name__ == "__main__":
    main(*sys.argv[1:])
