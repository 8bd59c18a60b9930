"""Selection by objective: size, latency or balanced, the default from the profile, the reason in the report."""

from __future__ import annotations

import pytest

from compressor.options import CompressOptions
from compressor.profiles import Format, Precision, all_profiles, get_profile
from compressor.selection import explain, ranked
from compressor.state import Candidate


def candidate(precision: Precision, size: int, ms: float) -> Candidate:
    c = Candidate(Format.TFLITE, precision, None, passed_gate=True, size_bytes=size)
    c.host_latency_ms, c.estimated_device_latency_ms = {"p50": ms, "p90": ms}, ms
    return c


# int8-dynamic is the smallest; int8-full 4% bigger and 0.6x the latency; fp32 4x bigger and a little faster still
CANDIDATES = [
    candidate(Precision.FP32, 400_000, 0.009),
    candidate(Precision.INT8_DYNAMIC, 100_000, 0.020),
    candidate(Precision.INT8_FULL, 104_000, 0.012),
]


@pytest.mark.parametrize(
    ("objective", "first"),
    [("size", Precision.INT8_DYNAMIC), ("latency", Precision.FP32), ("balanced", Precision.INT8_FULL)],
)
def test_each_objective_picks_its_best(objective, first):
    assert CANDIDATES[ranked(CANDIDATES, objective)[0]].precision is first


def test_ties_within_noise_go_to_the_other_figure():
    a, b = candidate(Precision.INT8_FULL, 100_000, 0.0100), candidate(Precision.INT8_DYNAMIC, 90_000, 0.0102)
    assert ranked([a, b], "latency") == [1, 0]  # 2% slower is as fast: the smaller wins
    c, d = candidate(Precision.INT8_FULL, 100_000, 0.020), candidate(Precision.INT8_DYNAMIC, 100_500, 0.010)
    assert ranked([c, d], "size") == [1, 0]  # 0.5% bigger is as small: the faster wins


def test_the_reason_names_the_runner_up_with_ratios():
    order = ranked(CANDIDATES, "balanced")
    choice = explain(CANDIDATES, order, "balanced", "profile pixel-8")
    assert choice.chosen == "int8-full.tflite" and choice.runner_up == "int8-dynamic.tflite"
    assert choice.latency_ratio == pytest.approx(0.6) and choice.size_ratio == pytest.approx(1.04)
    assert "int8-full.tflite chosen" in choice.sentence
    assert "0.60x the latency of int8-dynamic.tflite at +4% size" in choice.sentence


def test_unknown_objective_is_refused():
    with pytest.raises(ValueError, match="known: size, latency, balanced"):
        ranked(CANDIDATES, "speed")


def test_every_profile_states_its_objective_and_select_overrides_it():
    objectives = {name: p.selection.objective for name, p in all_profiles().items()}
    assert objectives["pixel-8"] == "balanced" and objectives["coral-edgetpu"] == "size"
    assert objectives["raspberry-pi-zero-2w"] == "size"
    from compressor.state import BuildData, BuildInputs

    def objective(options: CompressOptions, profile: str) -> str:
        inputs = BuildInputs(None, get_profile(profile), options, BuildData(None, None, None), None, None)  # type: ignore[arg-type]
        return inputs.objective

    assert objective(CompressOptions(), "coral-edgetpu") == "size"
    assert objective(CompressOptions(select="latency"), "coral-edgetpu") == "latency"


@pytest.mark.slow
def test_a_build_explains_its_pick(digits_files, tmp_path):
    from compressor import compress

    options = CompressOptions(
        precisions=(Precision.INT8_DYNAMIC, Precision.INT8_FULL), latency_repeats=5, latency_warmup=2, select="size"
    )
    report = compress(
        digits_files / "model.pt2", "pixel-8", tmp_path / "out", data=digits_files / "data.npz", options=options
    ).report
    selection = report["selection"]
    assert selection["objective"] == "size" and selection["objective_from"] == "--select"
    choice = selection["by_format"]["tflite"]
    chosen = report["artifacts"][report["selected_by_format"]["tflite"]]
    # the two asked precisions and the mixed-precision candidate that selecting for size adds
    assert choice["chosen"] == chosen["name"] and choice["usable"] == 3
    assert "mixed.int8-dynamic.tflite" in {a["name"] for a in report["artifacts"]}
    assert chosen["size_bytes"] <= min(a["size_bytes"] for a in report["artifacts"] if a["passed_gate"]) * 1.01
    assert choice["sentence"].startswith(f"{chosen['name']} chosen (the smallest file; objective size, --select)")
