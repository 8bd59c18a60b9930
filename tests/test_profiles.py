"""Hardware profiles: schema, lookup, and one real build per profile (completeness-checked)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from compressor import CompressOptions, compress
from compressor.errors import ProfileError, UnknownNameError
from compressor.profiles import PROFILE_DIR, Format, Precision, _read, all_profiles, get_profile, json_schema

# What each profile must produce for the small digits CNN: format -> allowed selected precisions.
EXPECTED = {
    "pixel-8": {"tflite": {"int8-dynamic", "int8-full"}},
    "galaxy-s24": {"tflite": {"int8-dynamic", "int8-full"}},
    "iphone-15-pro": {"tflite": {"int8-dynamic", "int8-full"}},
    "coral-edgetpu": {"tflite": {"int8-full"}},
    "raspberry-pi-5": {"tflite": {"int8-dynamic", "int8-full"}},
    "raspberry-pi-zero-2w": {"tflite": {"int8-dynamic", "int8-full"}},
    "jetson-orin-nano": {"onnx": {"fp16"}},
    "host": {"tflite": {"int8-dynamic", "int8-full"}, "onnx": {"int8-dynamic", "int8-full"}},
}


def test_every_profile_has_a_build_test():
    assert set(EXPECTED) == set(all_profiles()), "add the new profile to EXPECTED so it gets a real build test"


def test_profile_files_validate_and_schema_is_current():
    profiles = all_profiles()
    assert len(profiles) >= 7
    for name, profile in profiles.items():
        assert profile.name == name
        assert all(p in profile.compute.gmacs for p in profile.accepts.precisions)
        assert profile.compute.source
    written = json.loads((PROFILE_DIR / "profile.schema.json").read_text())
    assert written == json_schema(), (
        "regenerate with: python -m compressor.profiles > compressor/profiles/profile.schema.json"
    )


EPYC_FLAGS = "flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma bmi2 sha_ni\n"  # AMD EPYC 7B12 (Zen 2)


@pytest.mark.parametrize(
    ("cpuinfo", "machine", "bits"),
    [
        (EPYC_FLAGS, "x86_64", 7),  # AVX2 without VNNI: u8 x s8 pair sums saturate
        (EPYC_FLAGS.replace("avx2", "avx2 avx512f avx512_vnni"), "x86_64", 8),
        (EPYC_FLAGS.replace("avx2", "avx2 avx_vnni"), "x86_64", 8),  # Alder Lake and later
        ("processor\t: 0\nFeatures\t: fp asimd asimddp\n", "aarch64", 8),  # ARM: no such kernels
        ("", "x86_64", 7),  # flags unreadable: the safe choice
    ],
)
def test_the_host_profile_picks_its_onnx_weight_bits_from_the_cpu(cpuinfo, machine, bits):
    assert get_profile("host").accepts.onnx_weight_bits(cpuinfo, machine) == bits
    assert get_profile("jetson-orin-nano").accepts.onnx_weight_bits(cpuinfo, machine) == 8  # fixed in its file


def test_unknown_profile_lists_known_ones():
    with pytest.raises(UnknownNameError, match=r"unknown hardware profile 'pixel-9'; known profiles: .*pixel-8"):
        get_profile("pixel-9")


def test_invalid_profile_file_is_rejected(tmp_path):
    good = (PROFILE_DIR / "coral-edgetpu.toml").read_text()
    bad = tmp_path / "coral-edgetpu.toml"
    bad.write_text(good.replace('precisions = ["int8-full"]', 'precisions = ["int8-full", "fp32"]'))
    with pytest.raises(ProfileError, match="integer_only profiles accept precisions"):
        _read(bad)
    renamed = tmp_path / "other.toml"
    renamed.write_text(good)
    with pytest.raises(ProfileError, match="must match the file name"):
        _read(renamed)


def test_latency_estimate_follows_the_figures():
    pi, coral = get_profile("raspberry-pi-5"), get_profile("coral-edgetpu")
    slow = pi.estimate_latency_ms(10**9, 10**6, 10, Precision.INT8_FULL)
    fast = coral.estimate_latency_ms(10**9, 10**6, 10, Precision.INT8_FULL)
    assert slow == pytest.approx(1e3 * (1e9 / 30e9) + 10 * 6e-3)
    assert fast < slow


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_profile_builds_and_selects_what_it_accepts(name, digits_files, tmp_path):
    profile = get_profile(name)
    # the smallest that passes: what each profile accepts decides (objectives have their own tests, and on this
    # dispatch-bound toy CNN a balanced pick may rightly be fp32)
    options = CompressOptions(latency_repeats=5, latency_warmup=2, select="size")
    result = compress(
        digits_files / "model.pt2", name, tmp_path / "out", data=digits_files / "data.npz", options=options
    )
    report = result.report
    assert set(report["outputs"]) == set(EXPECTED[name])
    for fmt, index in report["selected_by_format"].items():
        chosen = report["artifacts"][index]
        assert chosen["precision"] in EXPECTED[name][fmt]
        assert chosen["passed_gate"] and chosen["fits_profile"]
        assert chosen["metrics"]["accuracy_drop"] <= 1.0
        assert (result.out_dir / report["outputs"][fmt]).read_bytes() == (result.out_dir / chosen["path"]).read_bytes()
    tried = {(a["format"], a["precision"]) for a in report["artifacts"]}
    assert tried == {(f.value, p.value) for f in profile.accepts.formats for p in profile.accepts.precisions}
    if profile.accepts.integer_only:
        io = report["artifacts"][report["selected"]]["io"]
        assert all(np.dtype(t["dtype"]) == np.int8 and t["quantization"] for t in io["inputs"] + io["outputs"])
    if profile.accepts.op_allowlist:
        assert set(report["artifacts"][report["selected"]]["op_types"]) <= set(profile.accepts.op_allowlist)
    if profile.accepts.formats == (Format.ONNX,):
        assert report["artifacts"][report["selected"]]["estimated_device_latency_ms"] > 0
