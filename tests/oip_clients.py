"""Run by tests in a child process: Triton's stock clients (``tritonclient.http`` or ``tritonclient.grpc``) call an
OIP v2 server and write the outputs they got.

tritonclient registers its own copy of the ``inference`` protos in protobuf's default pool, so it cannot share a
process with our generated stubs; a separate process is also how real clients call.

Usage: python oip_clients.py http|grpc URL MODEL VERSION INPUTS.npz OUTPUTS.npz [--json] [--token T]
``VERSION`` may be ``""`` (the server's latest); ``--json`` sends and asks for JSON tensors instead of binary data
(http only).  Prints one JSON line: live, ready, metadata.
"""

import argparse
import json

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("protocol", choices=("http", "grpc"))
    for name in ("url", "model", "version", "inputs", "outputs"):
        parser.add_argument(name)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--token")
    args = parser.parse_args()
    if args.protocol == "http":
        import tritonclient.http as triton
    else:
        import tritonclient.grpc as triton
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
    client = triton.InferenceServerClient(args.url)
    meta = client.get_model_metadata(args.model, args.version, headers=headers, **_as_json(args.protocol))
    arrays = dict(np.load(args.inputs))
    binary = {"binary_data": not args.json} if args.protocol == "http" else {}
    inputs = []
    for spec in meta["inputs"]:
        array = arrays[spec["name"]]
        tensor = triton.InferInput(spec["name"], list(array.shape), spec["datatype"])
        tensor.set_data_from_numpy(array, **binary)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput(o["name"], **binary) for o in meta["outputs"]]
    result = client.infer(args.model, inputs, args.version, outputs=outputs, request_id="req-1", headers=headers)
    np.savez(args.outputs, **{o["name"]: result.as_numpy(o["name"]) for o in meta["outputs"]})
    report = {
        "live": client.is_server_live(headers=headers),
        "ready": client.is_model_ready(args.model, args.version, headers=headers),
        "other_ready": client.is_model_ready("no-such-model", headers=headers),
        "metadata": meta,
        "id": result.get_response(**_as_json(args.protocol)).get("id"),
    }
    print(json.dumps(report))


def _as_json(protocol: str) -> dict:
    return {"as_json": True} if protocol == "grpc" else {}


if __name__ == "__main__":
    main()
