"""`sdkgen build` input checks: bad names, packages, labels and platform/profile mismatches fail before anything is
written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from compressor.errors import InvalidInputError, UnknownNameError
from sdkgen.build import build
from sdkgen.spec import SdkSpec


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "3d-model"}, r"SDK name '3d-model' is not a valid class name.*e\.g\. DigitsClassifier"),
        ({"name": "Json"}, r"clashes with a name the SDKs or their languages already use"),
        (
            {"package": "com.Example..x"},
            r"package 'com.Example..x' is not a valid Kotlin/Java package: segment\(s\) 'Example', ''",
        ),
        ({"package": "com.example.fun"}, r"segment\(s\) 'fun' are not allowed"),
        ({"package": "digits"}, r"needs at least two segments"),
        ({"mode": "cloud"}, r"mode 'cloud' needs --cloud-endpoint"),
        ({"cloud_endpoint": "localhost"}, r"is not HOST:PORT"),
        ({"confidence_threshold": 1.5}, r"outside 0\.\.1"),
        ({"pixel_scale": 0.0}, r"pixel scale 0\.0 must be > 0"),
    ],
)
def test_bad_spec_is_refused_at_construction(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        SdkSpec(**kwargs)


def test_pixel_scale_travels_in_a_server_job_spec():
    from compressor.options import CompressOptions
    from server.jobs.spec import from_proto, to_proto

    back = from_proto(to_proto("pixel-8", SdkSpec(pixel_scale=1 / 16, pixel_offset=-0.5), CompressOptions())).sdk
    assert (back.pixel_scale, back.pixel_offset) == (1 / 16, -0.5)
    assert from_proto(to_proto("pixel-8", SdkSpec(), CompressOptions())).sdk.pixel_scale == pytest.approx(1 / 255)


def test_split_planning_figures_travel_in_a_server_job_spec():
    from compressor.options import CompressOptions
    from compressor.splitting.request import SplitRequest
    from server.jobs.spec import from_proto, to_proto

    sent = SplitRequest(objective="energy", uplink_mbps=2.5, rtt_ms=40.0)
    back = from_proto(to_proto("pixel-8", SdkSpec(mode="auto"), CompressOptions(), sent)).split
    assert (back.objective, back.uplink_mbps, back.rtt_ms) == ("energy", 2.5, 40.0)
    default = from_proto(to_proto("pixel-8", SdkSpec(), CompressOptions())).split
    assert (default.objective, default.uplink_mbps, default.rtt_ms) == ("latency", None, None)
    bad = to_proto("pixel-8", SdkSpec(), CompressOptions())
    bad.uplink_mbps = -1
    with pytest.raises(InvalidInputError, match="positive bandwidth"):
        from_proto(bad)


def test_unknown_platform_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown SDK platform 'windows'; known: android, ios, python"):
        SdkSpec(platforms=("windows",))


def test_labels_count_mismatch_fails_before_writing(digits_files, tmp_path):
    out = tmp_path / "out"
    spec = SdkSpec(name="Digits", package="com.example.digits", labels=("a", "b", "c"))
    with pytest.raises(InvalidInputError, match="has 10 classes but got 3 labels; pass a labels file with exactly 10"):
        build(digits_files / "model.pt2", "pixel-8", out, spec, data=digits_files / "data.npz")
    assert not out.exists()


def test_platform_that_cannot_load_the_profiles_format_fails_before_writing(digits_files, tmp_path):
    out = tmp_path / "out"
    spec = SdkSpec(platforms=("android",))
    with pytest.raises(InvalidInputError, match=r"profile 'jetson-orin-nano' ships onnx only.*android loads tflite"):
        build(digits_files / "model.pt2", "jetson-orin-nano", out, spec, data=digits_files / "data.npz")
    assert not out.exists()


def test_cli_prints_the_error_without_traceback(digits_files, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sdkgen.cli",
            "build",
            str(digits_files / "model.pt2"),
            "--profile",
            "pixel-8",
            "--name",
            "3d-model",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    err = " ".join(done.stderr.split())
    assert "SDK name '3d-model' is not a valid class name" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
