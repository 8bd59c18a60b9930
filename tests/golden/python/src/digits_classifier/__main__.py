"""``python -m digits_classifier predict input.npy``: one prediction, printed as JSON."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from digits_classifier import DigitsClassifier, ManifestError, PredictionError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m digits_classifier", description="DigitsClassifier predictions")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="predict one sample stored with numpy.save")
    predict.add_argument("input", help=".npy file holding one sample of shape [1, 8, 8]")
    predict.add_argument("--cloud-endpoint", help="HOST:PORT of the fallback server (default: the manifest's)")
    predict.add_argument("--token", help="bearer token for the fallback server (sent only over TLS or to loopback)")
    predict.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None,
                         help="TLS to the server (default: on unless the endpoint is loopback)")
    predict.add_argument("--ca-cert", help="PEM file of the CA that signed the server's certificate")
    args = parser.parse_args(argv)
    try:
        with DigitsClassifier(cloud_endpoint=args.cloud_endpoint, token=args.token, tls=args.tls, ca_cert=args.ca_cert) as model:
            result = model.predict(np.load(args.input, allow_pickle=False))
    except (ManifestError, PredictionError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({
        "label": result.label, "confidence": result.confidence, "source": result.source,
        "latency_ms": round(result.latency_ms, 3), "fallback_reason": result.fallback_reason,
        "low_confidence": result.low_confidence, "cloud_error": result.cloud_error,
        "outputs": [np.asarray(o).tolist() for o in result.outputs],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
