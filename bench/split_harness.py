"""Measure every way to run a model end to end on loopback, with the uplink shaped in the client transport.

The server is the project's own gRPC server (onnxruntime behind OIP v2 ``ModelInfer``) serving the whole model
and one tail per cut.  The client sleeps ``bytes * 8 / bandwidth`` before each request (uplink) and after each
response (downlink), so the wire behaves like the link being studied while the bytes and the protocol are real.

Device side: there is no phone here.  Each head (and the whole model, for all-edge) really runs in onnxruntime
on this host, and the client then waits until the elapsed time equals what the planner's device model
(:meth:`Calibration.emulated_device_ms`) makes of it: this host's fixed cost of a runtime call (measured) stays,
the rest of the measured time is stretched by the profile-to-host ratio of the roofline estimates for that head's
work, and the profile's extra fixed cost per invocation (``compute.invoke_overhead_us``) is added: an emulated
device that is as much slower than this host as the profile's figures say, a tiny head included.
Used by bench/split.py and tests/test_split_regret.py.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compressor.native_output import captured
from compressor.profiles import Precision, get_profile
from compressor.runtimes import OnnxRunner
from compressor.splitting.costs import Calibration, Work, node_work, split_work
from compressor.splitting.export import TransferQuantization, _DequantizedTail
from compressor.splitting.graph import export_graph, find_cuts, split_modules
from compressor.splitting.planner import Plan, measure_invoke_ms, measure_whole_ms, network_for, plan_split
from compressor.torch_export import export_torch


class BenchCNN(nn.Module):
    """A VGG-style CNN over 3x32x32 images (about 115 MMAC): heavy enough that where it runs matters."""

    def __init__(self) -> None:
        super().__init__()
        layers, channels = [], 3
        for width, stride in ((64, 1), (64, 1), (128, 2), (128, 1), (256, 2)):
            layers += [nn.Conv2d(channels, width, 3, stride=stride, padding=1), nn.ReLU()]
            channels = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MobileCNN(BenchCNN):
    """A mobile-style CNN over 3x32x32 images (about 70 MMAC): a cheap strided stem shrinks the image to a 2 KB
    int8 tensor, then a heavy body does the work, the shape where cutting after the stem pays off."""

    def __init__(self) -> None:
        nn.Module.__init__(self)
        layers, channels = [], 3
        for width, stride in ((16, 2), (32, 2), (128, 1), (128, 1), (256, 1), (256, 1)):
            layers += [nn.Conv2d(channels, width, 3, stride=stride, padding=1), nn.ReLU()]
            channels = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, 10)


@dataclass
class Way:
    """One way to run the model: ``tail`` is the served model name (None for all-edge)."""

    label: str
    head: OnnxRunner | None
    head_work: Work
    tail: str | None
    transfer: TransferQuantization | None


class SplitHarness:
    """Exports every cut of ``module``, serves the tails, and measures any way to run it end to end."""

    def __init__(self, module, sample_args: tuple, profile: str = "raspberry-pi-5") -> None:
        from server.app import create_server
        from server.inference.repository import ModelRepository

        torch.manual_seed(0)
        self.module, self.args = module.eval(), sample_args
        self.profile, self.host = get_profile(profile), get_profile("host")
        self.work_dir = Path(tempfile.mkdtemp(prefix="edgeforge-split-bench-"))
        self.gm = export_graph(self.module, sample_args)
        self.work = node_work(self.gm, sample_args)
        self.invoke_ms = measure_invoke_ms()
        # the faster of two p50s: load from other work only ever adds time, and it would scale every estimate
        self.whole_ms = min(measure_whole_ms(self.module, sample_args) for _ in range(2))
        self.device = Calibration.measure(
            self.host, split_work(self.work, len(self.work))[0], self.whole_ms, self.invoke_ms
        )
        self.repository = ModelRepository()
        self.ways = self._export_all()
        self.server, port = create_server("127.0.0.1:0", repository=self.repository)
        self.server.start()
        self.client = _Client(f"127.0.0.1:{port}")
        self.rtt_ms = self._measure_rtt()

    def _export(self, module, args: tuple, name: str) -> Path:
        path = self.work_dir / f"{name}.onnx"
        with captured(self.work_dir / "converter.log"):
            export_torch(module, args, path, dynamic_batch=False)
        return path

    def _export_all(self) -> dict[str, Way]:
        whole = self._export(self.module, self.args, "whole")
        self.repository.register("whole", "1", whole)
        ways = {"all-cloud": Way("all-cloud", None, Work(), "whole", None)}
        for cut in find_cuts(self.gm):
            head, tail = split_modules(self.gm, cut)
            with torch.no_grad():
                middle = head(*self.args).numpy()
            transfer = TransferQuantization.calibrate(middle)
            head_path = self._export(head, self.args, f"head-{cut.node}")
            q = torch.from_numpy(transfer.quantize(middle))
            self.repository.register(
                f"tail-{cut.node}", "1", self._export(_DequantizedTail(tail, transfer), (q,), f"tail-{cut.node}")
            )
            ways[cut.node] = Way(
                cut.node, OnnxRunner(head_path, 1), split_work(self.work, cut.index)[0], f"tail-{cut.node}", transfer
            )
        ways["all-edge"] = Way("all-edge", OnnxRunner(whole, 1), split_work(self.work, len(self.work))[0], None, None)
        return ways

    def _measure_rtt(self) -> float:
        """Median ModelInfer round trip of the smallest tail (the last cut's): the loopback RTT the planner gets."""
        last = [w for w in self.ways.values() if w.transfer is not None][-1]
        x = [self.args[0].numpy()]
        [middle] = last.head.run({"x": x[0]})
        sent = last.transfer.quantize(middle)
        times = []
        for _ in range(30):
            start = time.perf_counter()
            self.client.infer(last.tail, [sent], None)
            times.append((time.perf_counter() - start) * 1e3)
        return float(np.median(times))

    def run_once(self, way: Way, x: np.ndarray, uplink_mbps: float) -> tuple[float, np.ndarray]:
        """One end-to-end inference: (milliseconds, outputs)."""
        call = way.head.bind({"x": x}) if way.head is not None else None  # as measure_whole_ms times a call
        start = time.perf_counter()
        sent = [x]
        if call is not None:
            [middle] = call()
            host_ms = (time.perf_counter() - start) * 1e3
            _wait_until(
                start, self.device.emulated_device_ms(host_ms, way.head_work, self.profile, Precision.FP32) / 1e3
            )
            if way.tail is None:
                return (time.perf_counter() - start) * 1e3, middle
            sent = [way.transfer.quantize(middle)]
        out = self.client.infer(way.tail, sent, uplink_mbps)
        return (time.perf_counter() - start) * 1e3, out

    def measure_all(self, uplink_mbps: float, repeats: int = 5) -> dict[str, float]:
        """Median end-to-end milliseconds of every way, runs interleaved so that load on the host hits all alike."""
        x = self.args[0].numpy()
        times: dict[str, list[float]] = {label: [] for label in self.ways}
        for way in self.ways.values():
            self.run_once(way, x, 1e6)  # warm-up
        for _ in range(repeats):
            for label, way in self.ways.items():
                times[label].append(self.run_once(way, x, uplink_mbps)[0])
        return {label: float(np.median(t)) for label, t in times.items()}

    def plan(self, uplink_mbps: float) -> Plan:
        network = network_for(self.profile, uplink_mbps, self.rtt_ms)
        return plan_split(
            self.gm,
            self.args,
            self.profile,
            Precision.FP32,
            self.whole_ms,
            network=network,
            measured_invoke_ms=self.invoke_ms,
        )

    def close(self) -> None:
        self.client.close()
        self.server.stop(0)


def _wait_until(start: float, elapsed_s: float) -> None:
    while time.perf_counter() - start < elapsed_s:
        pass


class _Client:
    """``ModelInfer`` with raw contents through the server's own stubs, delaying by bytes / bandwidth each way."""

    DOWNLINK_RATIO = 5.0  # downlink = 5x uplink, as in the bundled phone profiles

    def __init__(self, address: str) -> None:
        import grpc

        from server.gen.inference import grpc_service_pb2 as pb
        from server.gen.inference import grpc_service_pb2_grpc as rpc

        self.pb, self.channel = pb, grpc.insecure_channel(address)
        self.stub = rpc.GRPCInferenceServiceStub(self.channel)
        self.names: dict[str, str] = {}

    def infer(self, model: str, arrays: list[np.ndarray], uplink_mbps: float | None) -> np.ndarray:
        pb = self.pb
        request = pb.ModelInferRequest(model_name=model)
        for i, array in enumerate(arrays):
            datatype = "INT8" if array.dtype == np.int8 else "FP32"
            request.inputs.add(name=self._input_name(model, i), datatype=datatype, shape=list(array.shape))
            request.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
        if uplink_mbps:
            time.sleep(sum(a.nbytes for a in arrays) * 8 / (uplink_mbps * 1e6))
        response = self.stub.ModelInfer(request)
        raw = response.raw_output_contents[0]
        if uplink_mbps:
            time.sleep(len(raw) * 8 / (uplink_mbps * self.DOWNLINK_RATIO * 1e6))
        return np.frombuffer(raw, np.float32).reshape(tuple(response.outputs[0].shape))

    def _input_name(self, model: str, i: int) -> str:
        key = f"{model}/{i}"
        if key not in self.names:
            meta = self.stub.ModelMetadata(self.pb.ModelMetadataRequest(name=model))
            for j, tensor in enumerate(meta.inputs):
                self.names[f"{model}/{j}"] = tensor.name
        return self.names[key]

    def close(self) -> None:
        self.channel.close()
