"""Shared fixtures: tiny real models trained in seconds, and the digits example."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "digits"))
from support import IN_CI, require  # noqa: E402,F401 - re-exported for older imports


@pytest.fixture(scope="session")
def digits_split():
    from model import load_digits_split

    return load_digits_split()


@pytest.fixture(scope="session")
def digits_module(digits_split):
    """The example CNN, trained briefly (same architecture as examples/digits); the same whichever test asks first."""
    import torch
    from model import DigitsCNN, train

    x_train, y_train, _, _ = digits_split
    torch.manual_seed(0)  # the initial weights: otherwise they depend on what earlier tests drew
    return train(DigitsCNN(width=8), x_train, y_train, epochs=8)


@pytest.fixture(scope="session")
def digits_files(tmp_path_factory, digits_module, digits_split):
    """``model.pt2``, ``data.npz`` (held-out x + labels) and ``labels.txt`` for the small digits CNN."""
    import torch
    from model import CLASSES

    _, _, x_test, y_test = digits_split
    root = tmp_path_factory.mktemp("digits")
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(digits_module, (torch.from_numpy(x_test[:2]),), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, root / "model.pt2")
    np.savez(root / "data.npz", x=x_test, labels=y_test)  # all 360: a 30% validation split of 108 samples
    (root / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    return root
