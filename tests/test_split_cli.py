"""`sdkgen plan` and `sdkgen build --mode auto` on the command line: the per-cut table, the marked choice, a bad
profile, and an auto build that ships what the printed plan chose."""

from __future__ import annotations

import json
import re

import pytest

from sdkgen.cli import EXIT_BAD_INPUT, main

pytestmark = pytest.mark.slow  # builds or serves real models: not part of make test-fast

CHOICE = re.compile(r"choice: (\S+) \((edge|split|cloud)\), estimated")


def _plan(capsys, model, *args: str) -> tuple[str, str, str]:
    """Run `sdkgen plan`; (output, chosen label, its kind)."""
    assert main(["plan", str(model), *args]) == 0
    text = capsys.readouterr().out
    found = CHOICE.search(text)
    assert found, text
    return text, found.group(1), found.group(2)


def test_plan_prints_every_cut_and_marks_the_choice(digits_files, capsys):
    text, label, _ = _plan(
        capsys, digits_files / "model.pt2", "--profile", "pixel-8", "--uplink-mbps", "1", "--rtt-ms", "20"
    )
    assert "split plan for pixel-8" in text and "1 Mbps up, 20 ms RTT; objective latency" in text
    for column in ("cut", "head MMAC", "bytes sent", "head ms", "transfer ms", "tail ms", "total ms"):
        assert column in text
    rows = [line for line in text.splitlines() if re.search(r"│ .? *│ (all-cloud|all-edge|conv2d|relu_2) ", line)]
    assert len(rows) >= 4, text
    [marked] = [line for line in text.splitlines() if "▶" in line]
    assert f" {label} " in marked
    assert "█" in next(line for line in rows if " all-cloud " in line)  # the bar chart, longest way full width


def test_plan_with_an_unknown_profile_exits_2_and_lists_the_known_ones(digits_files, capsys):
    assert main(["plan", str(digits_files / "model.pt2"), "--profile", "pixel-9"]) == EXIT_BAD_INPUT
    err = " ".join(capsys.readouterr().err.split())
    assert "unknown hardware profile 'pixel-9'; known profiles:" in err and "raspberry-pi-zero-2w" in err
    assert "Traceback" not in err


def test_build_mode_auto_ships_what_the_plan_chose(digits_files, capsys, tmp_path):
    """A fast link to a slow device: the printed plan picks a way, and the auto build's manifest says the same."""
    network = ["--profile", "raspberry-pi-zero-2w", "--uplink-mbps", "1000", "--rtt-ms", "0"]
    _, label, kind = _plan(capsys, digits_files / "model.pt2", *network)
    assert kind != "edge"  # the Pi Zero 2 W is slower than shipping 256 bytes over a 1 Gbps link
    out = tmp_path / "out"
    code = main(
        [
            "build",
            str(digits_files / "model.pt2"),
            *network,
            "--data",
            str(digits_files / "data.npz"),
            "--labels",
            str(digits_files / "labels.txt"),
            "--platform",
            "python",
            "--precision",
            "int8-full",
            "--mode",
            "auto",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "model-manifest.json").read_text())
    assert manifest["policy"]["mode"] == kind
    if kind == "split":
        assert manifest["split"]["cut"] == label and (out / manifest["split"]["tail"]["file"]).is_file()
    else:
        assert manifest["split"] is None
