"""``DigitsClassifier``: the bundled model with the manifest's edge-cloud fallback."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Optional, Union

from digits_classifier import images
from digits_classifier.engine import open_engine
from digits_classifier.manifest import load_bundled
from digits_classifier.policy import FallbackPredictor, Prediction, SplitParts


class DigitsClassifier:
    """Construct with no arguments to run the bundled model; pass ``cloud_endpoint`` (HOST:PORT) and ``token``
    to enable or redirect the cloud fallback.  TLS is on unless the endpoint is loopback (``tls`` overrides it;
    ``ca_cert``, a PEM path or bytes, replaces the system's roots).  ``model_path`` replaces the bundled model file
    (it must still match the manifest's sha256, or it is never run).  Safe to share between threads."""

    def __init__(self, cloud_endpoint: Optional[str] = None, token: Optional[str] = None, *,
                 tls: Optional[bool] = None, ca_cert: Union[str, Path, bytes, None] = None,
                 num_threads: int = 1, model_path: Optional[Union[str, Path]] = None) -> None:
        self.manifest = load_bundled()
        assets = resources.files(__package__).joinpath("assets")
        model_bytes = Path(model_path).read_bytes() if model_path else assets.joinpath(self.manifest["model"]["file"]).read_bytes()
        endpoint = cloud_endpoint or self.manifest["cloud"]["endpoint"]
        self._cloud = self._tail = None
        if endpoint:
            from digits_classifier.cloud import OipCloudClient

            self._cloud = OipCloudClient(endpoint, self.manifest["cloud"], token, tls, ca_cert)
            if self.manifest["split"]:
                self._tail = OipCloudClient(endpoint, self.manifest["split"]["tail"], token, tls, ca_cert)
        engine = lambda b: open_engine(b, num_threads)  # noqa: E731
        split = None
        if self.manifest["split"]:
            head = assets.joinpath(self.manifest["split"]["head"]["file"]).read_bytes()
            split = SplitParts(head, engine, self._tail)
        self._predictor = FallbackPredictor(self.manifest, model_bytes, engine, self._cloud, split)

    @property
    def labels(self) -> Optional[list]:
        return self.manifest["labels"]

    @property
    def below_gate(self) -> bool:
        """Whether the build shipped this model although it missed the accuracy gate (an integer-only target's
        closest candidate; the build report says what was lost)."""
        return bool(self.manifest["model"].get("below_gate", False))

    @property
    def edge_problem(self) -> Optional[str]:
        """Why the on-device model cannot run (``model_integrity_failed``, ``model_load_failed``), or ``None``."""
        return self._predictor.edge_problem

    def predict(self, x) -> Prediction:
        """Predict one sample: an array of shape [1, 8, 8] (a leading batch axis of 1 is
        accepted), or a list/dict with one array per input.  Raises ``InvalidInput`` (a ``ValueError``) before
        anything runs when an input does not fit the manifest, ``PredictionError`` when nothing answered."""
        specs = self.manifest["inputs"]
        if isinstance(x, dict):
            missing = [s["name"] for s in specs if s["name"] not in x]
            if missing:
                from digits_classifier.tensors import InvalidInput

                raise InvalidInput(f"inputs {missing} are missing; the model takes {[s['name'] for s in specs]}")
            x = [x[s["name"]] for s in specs]
        elif not isinstance(x, (list, tuple)):
            x = [x]
        return self._predictor.predict(list(x))

    def predict_pixels(self, pixels) -> Prediction:
        """Predict from raw image pixels (HxW grey or HxWxC RGB/RGBA, 0..255) of any size: resized to the model's
        input, made grey by luma where the model takes one channel, scaled and laid out as the manifest says."""
        return self.predict(images.to_input(pixels, self.manifest["preprocessing"], self.manifest["inputs"][0]))

    def close(self) -> None:
        for client in (self._cloud, self._tail):
            if client is not None:
                client.close()

    def __enter__(self) -> "DigitsClassifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
