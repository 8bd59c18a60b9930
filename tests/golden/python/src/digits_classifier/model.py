"""``DigitsClassifier``: the bundled model with the manifest's edge-cloud fallback."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Optional, Union

import numpy as np

from digits_classifier.engine import open_engine
from digits_classifier.manifest import load_bundled
from digits_classifier.policy import FallbackPredictor, Prediction, SplitParts


class DigitsClassifier:
    """Construct with no arguments to run the bundled model; pass ``cloud_endpoint`` (HOST:PORT) and ``token``
    to enable or redirect the cloud fallback.  ``model_path`` replaces the bundled model file (it must still
    match the manifest's sha256, or it is never run)."""

    def __init__(self, cloud_endpoint: Optional[str] = None, token: Optional[str] = None, *, tls: bool = False,
                 num_threads: int = 1, model_path: Optional[Union[str, Path]] = None) -> None:
        self.manifest = load_bundled()
        if model_path is None:
            model_bytes = resources.files(__package__).joinpath("assets", self.manifest["model"]["file"]).read_bytes()
        else:
            model_bytes = Path(model_path).read_bytes()
        endpoint = cloud_endpoint or self.manifest["cloud"]["endpoint"]
        self._cloud = self._tail = None
        if endpoint:
            from digits_classifier.cloud import OipCloudClient

            self._cloud = OipCloudClient(endpoint, self.manifest["cloud"], token, tls)
            if self.manifest["split"]:
                self._tail = OipCloudClient(endpoint, self.manifest["split"]["tail"], token, tls)
        engine = lambda b: open_engine(b, num_threads)  # noqa: E731
        split = None
        if self.manifest["split"]:
            head = resources.files(__package__).joinpath("assets", self.manifest["split"]["head"]["file"]).read_bytes()
            split = SplitParts(head, engine, self._tail)
        self._predictor = FallbackPredictor(self.manifest, model_bytes, engine, self._cloud, split)

    @property
    def labels(self) -> Optional[list]:
        return self.manifest["labels"]

    @property
    def edge_problem(self) -> Optional[str]:
        """Why the on-device model cannot run (``model_integrity_failed``, ``model_load_failed``), or ``None``."""
        return self._predictor.edge_problem

    def predict(self, x) -> Prediction:
        """Predict one sample: an array of shape [1, 8, 8] (a leading batch axis of 1 is
        accepted)."""
        return self._predictor.predict(self._inputs(x))

    def predict_pixels(self, pixels) -> Prediction:
        """Predict from raw image pixels (HxW or HxWxC, 0..255), scaled and laid out as the manifest says."""
        pre = self.manifest["preprocessing"]
        image = np.asarray(pixels, dtype=np.float32) * pre["pixel_scale"] + pre["pixel_offset"]
        if image.ndim == 2:
            image = image[..., None]
        if pre["layout"] == "NCHW":
            image = np.transpose(image, (2, 0, 1))
        return self.predict(image)

    def _inputs(self, x) -> list:
        specs = self.manifest["inputs"]
        if isinstance(x, dict):
            x = [x[s["name"]] for s in specs]
        elif not isinstance(x, (list, tuple)):
            x = [x]
        if len(x) != len(specs):
            raise ValueError(f"DigitsClassifier takes {len(specs)} input(s), got {len(x)}")
        arrays = []
        for spec, array in zip(specs, x):
            array = np.asarray(array, dtype=np.float32)
            sample = spec["shape"][1:]
            if array.ndim == len(sample):
                array = array[None]
            fits = array.ndim == len(sample) + 1 and array.shape[0] == 1
            if not fits or any(d is not None and d != n for d, n in zip(sample, array.shape[1:])):
                raise ValueError(f"input {spec['name']!r} must have shape {sample} (or [1, ...]), got {list(array.shape)}")
            arrays.append(array)
        return arrays

    def close(self) -> None:
        for client in (self._cloud, self._tail):
            if client is not None:
                client.close()

    def __enter__(self) -> "DigitsClassifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
