"""Choose where to split: every cut's estimated head, transfer and tail cost, plus all-edge and all-cloud."""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compressor.errors import InvalidInputError
from compressor.profiles import Network, Precision, Profile, reference_profile
from compressor.splitting.costs import (
    TRANSFER_BYTES_PER_ELEMENT,
    Calibration,
    Work,
    node_work,
    split_work,
    tensor_bytes,
    transfer_ms,
)
from compressor.splitting.graph import Cut, find_cuts, model_outputs
from compressor.splitting.request import OBJECTIVES

# A split model runs once per request, not back to back: its calls are timed after this much idle time, which
# both the device head and the server's tail see (measured here: 1.4x / 1.9x the back-to-back p50 of two CNNs).
IDLE_MS = 10.0


@dataclass(frozen=True)
class PlanRow:
    """One way to run the model: ``kind`` is cloud (all on the server), split (``cut``) or edge (all on the device)."""

    label: str
    kind: str
    cut: Cut | None
    head: Work
    tail: Work
    up_bytes: int
    head_ms: float
    transfer_ms: float
    tail_ms: float
    energy_mj: float | None

    @property
    def total_ms(self) -> float:
        return self.head_ms + self.transfer_ms + self.tail_ms


@dataclass(frozen=True)
class Plan:
    rows: tuple[PlanRow, ...]
    choice: int
    objective: str
    network: Network
    profile: str
    precision: Precision
    calibration_factor: float

    @property
    def chosen(self) -> PlanRow:
        return self.rows[self.choice]

    def row(self, label: str) -> PlanRow:
        return next(r for r in self.rows if r.label == label)


def network_for(profile: Profile, uplink_mbps: float | None = None, rtt_ms: float | None = None) -> Network:
    """The profile's network figures, with the uplink and RTT overridden when given."""
    changes = {k: v for k, v in (("uplink_mbps", uplink_mbps), ("rtt_ms", rtt_ms)) if v is not None}
    try:
        return Network(**{**profile.network.model_dump(), **changes})
    except ValueError as exc:
        raise InvalidInputError(
            f"network figures {changes} are not usable: uplink must be > 0 Mbps and RTT >= 0 ms"
        ) from exc


def plan_split(
    gm,
    sample_args: tuple,
    profile: Profile,
    precision: Precision,
    measured_whole_ms: float,
    *,
    network: Network | None = None,
    objective: str = "latency",
    measured_invoke_ms: float = 0.0,
) -> Plan:
    """Cost every cut of ``gm`` (from :func:`~compressor.splitting.graph.export_graph`) and pick the cheapest.

    ``measured_whole_ms`` is the whole model's measured latency on this machine (onnxruntime), which calibrates
    the estimates; ``measured_invoke_ms`` is this machine's fixed cost of one runtime call
    (:func:`measure_invoke_ms`), taken off before calibrating the work part.  Raises :class:`InvalidInputError`
    for an unknown objective, or energy without power figures.
    """
    if objective not in OBJECTIVES:
        raise InvalidInputError(f"unknown split objective {objective!r}; choose from {', '.join(OBJECTIVES)}")
    if objective == "energy" and profile.power is None:
        raise InvalidInputError(
            f"objective 'energy' needs power figures, and profile {profile.name!r} has no [power] section; "
            "use objective 'latency' or a profile with power figures"
        )
    network = network or profile.network
    work = node_work(gm, sample_args)
    whole = split_work(work, len(work))[0]
    calibration = Calibration.measure(reference_profile(), whole, measured_whole_ms, measured_invoke_ms)
    inputs = {
        name: tuple(a.shape) for name, a in zip([n.name for n in gm.graph.nodes if n.op == "placeholder"], sample_args)
    }
    out_bytes = sum(tensor_bytes(_shape(gm, name), 4) for name in model_outputs(gm))

    def row(label: str, kind: str, cut: Cut | None, index: int, up_bytes: int) -> PlanRow:
        head, tail = split_work(work, index)
        head_ms = calibration.device_ms(head, profile, precision)
        tail_ms = calibration.server_ms(tail)
        moved = transfer_ms(up_bytes, out_bytes, network) if kind != "edge" else 0.0
        energy = None
        if profile.power is not None:
            energy = (
                head_ms * profile.power.compute_w + moved * profile.power.radio_tx_w + tail_ms * profile.power.idle_w
            )
        return PlanRow(label, kind, cut, head, tail, up_bytes, head_ms, moved, tail_ms, energy)

    rows = [row("all-cloud", "cloud", None, -1, sum(tensor_bytes(s, 4) for s in inputs.values()))]
    for cut in find_cuts(gm):
        up = tensor_bytes(cut.shape, TRANSFER_BYTES_PER_ELEMENT) + sum(
            tensor_bytes(inputs[s], 4) for s in cut.side_inputs
        )
        rows.append(row(cut.node, "split", cut, cut.index, up))
    rows.append(row("all-edge", "edge", None, len(work), 0))
    key = (lambda r: r.energy_mj) if objective == "energy" else (lambda r: r.total_ms)
    choice = min(range(len(rows)), key=lambda i: key(rows[i]))
    return Plan(tuple(rows), choice, objective, network, profile.name, precision, calibration.factor)


def _shape(gm, name: str) -> tuple[int, ...]:
    node = next(n for n in gm.graph.nodes if n.name == name)
    return tuple(int(d) for d in node.meta["val"].shape)


def measure_whole_ms(module, sample_args: tuple, repeats: int = 50) -> float:
    """The whole model's p50 latency in onnxruntime on this machine (fp32 ONNX export, batch of one), each call
    after :data:`IDLE_MS` of idle time."""
    from compressor.native_output import captured
    from compressor.runtimes import OnnxRunner, measure_latency_ms
    from compressor.torch_export import export_torch

    with tempfile.TemporaryDirectory(prefix="edgeforge-plan-") as work:
        path = Path(work) / "whole.onnx"
        with captured(Path(work) / "converter.log"):
            export_torch(module, sample_args, path, dynamic_batch=False)
        runner = OnnxRunner(path)
        feeds = {s.name: np.ascontiguousarray(a.numpy()) for s, a in zip(runner.inputs, sample_args)}
        return measure_latency_ms(runner, feeds, warmup=10, repeats=repeats, idle_ms=IDLE_MS)["p50"]


@functools.cache
def measure_invoke_ms(repeats: int = 100) -> float:
    """This machine's fixed cost of one onnxruntime call: the p50 latency of a one-operator model, each call after
    :data:`IDLE_MS` of idle time (cached)."""
    import onnx
    from onnx import TensorProto, helper

    from compressor.runtimes import OnnxRunner, measure_latency_ms

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "invoke",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with tempfile.TemporaryDirectory(prefix="edgeforge-invoke-") as work:
        path = Path(work) / "invoke.onnx"
        onnx.save(model, path)
        runner = OnnxRunner(path, 1)
        return measure_latency_ms(
            runner, {"x": np.zeros((1, 4), np.float32)}, warmup=20, repeats=repeats, idle_ms=IDLE_MS
        )["p50"]
