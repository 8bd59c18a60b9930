"""The Neurosurgeon-style cost model: per-node work, then head, transfer and tail cost for every cut.

Per-node work (multiply-accumulates from torch's FlopCounterMode, weight bytes of the parameters a node is the
first to read, one dispatch per operator) is summed either side of a cut.  One device model (:class:`Calibration`)
serves the planner and the loopback emulator (bench/split_harness.py): a run costs a fixed per-invocation cost
(the profile's ``compute.invoke_overhead_us``; on this host, measured) plus its work cost, the profile's roofline
estimate scaled by how far the ``host`` profile's estimate of the whole model missed its measured onnxruntime
latency here once the host's own invocation cost is taken off.  The tail runs on the server: the measured
whole-model work cost apportioned by the host estimate of the tail's share (its invocation is in the RTT).
Transfer is the int8 intermediate (plus float side inputs) over the uplink, the output over the downlink, plus RTT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compressor.profiles import Network, Precision, Profile

TRANSFER_BYTES_PER_ELEMENT = 1  # int8 transfer quantization


@dataclass(frozen=True)
class NodeWork:
    macs: int
    weight_bytes: int
    ops: int


@dataclass(frozen=True)
class Work:
    macs: int = 0
    weight_bytes: int = 0
    ops: int = 0

    def estimate_ms(self, profile: Profile, precision: Precision) -> float:
        if self.ops == 0:
            return 0.0
        return profile.estimate_latency_ms(self.macs, self.weight_bytes, self.ops, precision)


def node_work(gm, sample_args: tuple) -> list[NodeWork]:
    """Work of each node of ``gm`` (in graph order) for one forward pass on ``sample_args``."""
    import torch
    import torch.fx as fx
    from torch.utils.flop_counter import FlopCounterMode

    nodes = list(gm.graph.nodes)
    position = {n: i for i, n in enumerate(nodes)}
    weights = [0] * len(nodes)
    for node in nodes:
        if node.op == "get_attr" and node.users:
            value = getattr_path(gm, node.target)
            if isinstance(value, torch.Tensor):
                weights[min(position[u] for u in node.users)] += value.numel() * value.element_size()
    macs = [0] * len(nodes)

    class Counting(fx.Interpreter):
        def run_node(self, node):
            if node.op != "call_function":
                return super().run_node(node)
            counter = FlopCounterMode(display=False)
            with counter:
                result = super().run_node(node)
            macs[position[node]] = int(counter.get_total_flops() // 2)
            return result

    with torch.no_grad():
        Counting(gm).run(*sample_args)
    return [NodeWork(macs[i], weights[i], int(n.op == "call_function")) for i, n in enumerate(nodes)]


def getattr_path(module, target: str):
    for part in target.split("."):
        module = getattr(module, part)
    return module


def split_work(work: list[NodeWork], index: int) -> tuple[Work, Work]:
    """(head, tail) work for a cut after node ``index`` (-1: everything in the tail)."""

    def total(items: list[NodeWork]) -> Work:
        return Work(sum(w.macs for w in items), sum(w.weight_bytes for w in items), sum(w.ops for w in items))

    return total(work[: index + 1]), total(work[index + 1 :])


@dataclass(frozen=True)
class Calibration:
    """The device model shared by the planner and the emulator: latency = fixed invocation cost + work cost.

    ``factor`` is how far the host profile's roofline estimate is from the measured whole-model latency on this
    machine less ``host_invoke_ms``, this machine's measured fixed cost of one runtime call.
    """

    host: Profile
    factor: float
    host_invoke_ms: float = 0.0

    @classmethod
    def measure(cls, host: Profile, whole: Work, measured_ms: float, invoke_ms: float = 0.0) -> Calibration:
        """Calibrate from the whole model's measured latency and the measured cost of a trivial call."""
        work_ms = max(measured_ms - invoke_ms, 0.1 * measured_ms)  # a noisy invoke figure must not zero the work
        return cls(host, work_ms / max(whole.estimate_ms(host, Precision.FP32), 1e-6), invoke_ms)

    def device_ms(self, work: Work, profile: Profile, precision: Precision) -> float:
        """Estimated latency of ``work`` run as one model on ``profile``'s device (0 for no work)."""
        if work.ops == 0:
            return 0.0
        return profile.compute.invoke_overhead_us * 1e-3 + work.estimate_ms(profile, precision) * self.factor

    def server_ms(self, work: Work) -> float:
        """Work cost of ``work`` on the server; its invocation is part of the measured round trip."""
        return work.estimate_ms(self.host, Precision.FP32) * self.factor

    def emulated_device_ms(self, host_ms: float, work: Work, profile: Profile, precision: Precision) -> float:
        """How long the device would take for ``work`` that took ``host_ms`` here, by the same model as
        :meth:`device_ms`: the work part (``host_ms`` less the host's invocation cost) is stretched by the
        profile/host roofline ratio, the host's invocation cost stays (it was spent) and the device's extra
        invocation cost is added."""
        ratio = work.estimate_ms(profile, precision) / max(work.estimate_ms(self.host, Precision.FP32), 1e-9)
        host_invoke = min(self.host_invoke_ms, host_ms)
        extra_invoke = max(profile.compute.invoke_overhead_us * 1e-3 - host_invoke, 0.0)
        return host_invoke + (host_ms - host_invoke) * ratio + extra_invoke


def transfer_ms(up_bytes: int, down_bytes: int, network: Network) -> float:
    """Milliseconds to send ``up_bytes`` and receive ``down_bytes`` plus one round trip."""
    bits_per_ms_up, bits_per_ms_down = network.uplink_mbps * 1e3, network.downlink_mbps * 1e3
    return up_bytes * 8 / bits_per_ms_up + down_bytes * 8 / bits_per_ms_down + network.rtt_ms


def tensor_bytes(shape: tuple[int, ...], itemsize: int) -> int:
    return int(np.prod(shape)) * itemsize
