"""Honest splits: nothing a candidate was calibrated or fine-tuned on validates it."""

from __future__ import annotations

import numpy as np
import pytest

from compressor.api import plan_data
from compressor.data import SampleData
from compressor.errors import InvalidInputError
from compressor.holdout import fingerprints, holdout, overlap
from compressor.options import CompressOptions
from compressor.sources import from_module


def numbered(count: int, classes: int | None = 3) -> SampleData:
    """Samples whose single value is their row number, so any reuse shows."""
    x = np.arange(count, dtype=np.float32).reshape(count, 1)
    labels = None if classes is None else (np.arange(count) % classes).astype(np.int64)
    return SampleData({"x": x}, labels)


@pytest.fixture(scope="module")
def source():
    import torch

    return from_module(torch.nn.Linear(1, 3), (torch.zeros(1, 1),))


def rows(data: SampleData) -> set[int]:
    return {int(v) for v in next(iter(data.inputs.values()))[:, 0]}


@pytest.mark.parametrize("classes", [3, None])
def test_default_split_holds_validation_out_of_calibration_and_training(source, classes):
    data = numbered(200, classes)
    planned = plan_data(source, data, CompressOptions(calibration_samples=64))
    validation, calibration, training = rows(planned.validation), rows(planned.calibration), rows(planned.training)
    assert len(validation) == 60 and len(training) == 140 and len(calibration) == 64
    assert not validation & calibration and not validation & training
    assert calibration <= training and validation | training == set(range(200))
    assert planned.split["overlap_with_validation"] == {"calibration": 0, "training": 0}
    assert planned.split["validation"]["samples"] == 60 and "30%" in planned.split["validation"]["from"]
    if classes:  # stratified: each class keeps its share on both sides
        counts = np.bincount(planned.validation.labels, minlength=3)
        assert counts.min() >= 19 and counts.max() <= 21
        values = next(iter(planned.validation.inputs.values()))[:, 0].astype(int)
        assert planned.validation.labels.tolist() == [v % 3 for v in values]


def test_split_is_seeded(source):
    data = numbered(100)
    first = plan_data(source, data, CompressOptions())
    again = plan_data(source, data, CompressOptions())
    other = plan_data(source, data, CompressOptions(split_seed=1))
    assert rows(first.validation) == rows(again.validation) != rows(other.validation)


def test_train_file_fits_and_the_whole_data_file_validates(source, tmp_path):
    np.savez(tmp_path / "train.npz", x=np.arange(1000, 1100, dtype=np.float32).reshape(-1, 1))
    planned = plan_data(source, numbered(50), CompressOptions(prune="unstructured", train_data=tmp_path / "train.npz"))
    assert rows(planned.validation) == set(range(50))
    assert rows(planned.training) == set(range(1000, 1100)) and rows(planned.calibration) <= rows(planned.training)
    assert planned.split["overlap_with_validation"] == {"calibration": 0, "training": 0}


def test_validation_file_validates_and_the_data_file_fits(source, tmp_path):
    np.savez(tmp_path / "val.npz", x=np.arange(500, 540, dtype=np.float32).reshape(-1, 1))
    planned = plan_data(source, numbered(80), CompressOptions(val_data=tmp_path / "val.npz"))
    assert rows(planned.validation) == set(range(500, 540))
    assert rows(planned.training) == set(range(80)) and len(planned.calibration) == 80


def test_files_that_share_samples_are_reported(source, tmp_path):
    np.savez(tmp_path / "val.npz", x=np.arange(40, 60, dtype=np.float32).reshape(-1, 1))
    planned = plan_data(source, numbered(50), CompressOptions(val_data=tmp_path / "val.npz"))
    assert planned.split["overlap_with_validation"] == {"calibration": 10, "training": 10}


def test_one_sample_cannot_be_split(source):
    with pytest.raises(InvalidInputError, match="at least 2 are needed"):
        plan_data(source, numbered(1), CompressOptions())


def test_holdout_keeps_a_sample_of_each_class_on_each_side():
    data = numbered(7, classes=3)  # classes of 3, 2 and 2 samples
    fit, held = holdout(data, 0.3, 0)
    assert set(data.labels[held]) == set(data.labels[fit]) == {0, 1, 2}
    assert not set(fit) & set(held) and len(fit) + len(held) == 7


def test_fingerprints_see_through_row_order():
    data = numbered(10)
    shuffled = SampleData({"x": data.inputs["x"][::-1].copy()})
    assert fingerprints(data) == fingerprints(shuffled) and overlap(data, shuffled) == 10


def test_a_build_validates_on_the_held_out_part_only(digits_files, tmp_path):
    """The real pipeline: int8 calibration, validation and the report all follow the split."""
    from compressor import Precision, compress

    options = CompressOptions(precisions=(Precision.INT8_FULL,), latency_repeats=2, latency_warmup=1)
    result = compress(
        digits_files / "model.pt2", "pixel-8", tmp_path / "out", data=digits_files / "data.npz", options=options
    )
    data = result.report["data"]
    assert data["validation_samples"] == 108 and data["training_samples"] == 252
    assert data["split"]["overlap_with_validation"] == {"calibration": 0, "training": 0}
    int8 = next(a for a in result.report["artifacts"] if a["precision"] == "int8-full" and not a["variant"])
    assert int8["technique"]["int8"]["calibration"]["samples"] == data["calibration_samples"] == 128
