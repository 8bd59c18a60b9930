"""Measure each artifact: size (raw and deflated), graph figures, host latency, device estimate, profile fit."""

from __future__ import annotations

import zlib

import numpy as np

from compressor.analysis import artifact_figures
from compressor.loaders import sha256_file
from compressor.profiles import Precision, Profile, get_profile
from compressor.runtimes import TFLiteRunner, measure_latency_ms, open_artifact
from compressor.state import BuildState, Candidate

HOST_PROFILE = "host"
MB = 1024 * 1024


def run(state: BuildState) -> None:
    pending = [c for c in state.candidates if c.error is None]
    stage = state.progress.stage("measure", len(pending))
    host = get_profile(HOST_PROFILE)
    for candidate in pending:
        blob = candidate.path.read_bytes()
        candidate.size_bytes = len(blob)
        candidate.download_size_bytes = len(zlib.compress(blob, 9))
        candidate.sha256 = sha256_file(candidate.path)
        figures = artifact_figures(candidate.path, candidate.format.value)
        candidate.n_ops, candidate.op_types = figures.n_ops, figures.op_types
        candidate.weight_bytes, candidate.peak_activation_bytes = figures.weight_bytes, figures.peak_activation_bytes
        runner = open_artifact(candidate.path, candidate.format.value)
        candidate.io = describe_io(runner)
        candidate.host_latency_ms = measure_latency_ms(
            runner, state.sample(), state.options.latency_warmup, state.options.latency_repeats
        )
        candidate.estimated_device_latency_ms = estimate_device_latency(
            candidate, candidate.macs or state.macs or 0, state.profile, host
        )
        candidate.fit_problems = fit_problems(candidate, state.profile)
        stage.advance(candidate.name)


def estimate_device_latency(candidate: Candidate, macs: int, profile: Profile, host: Profile) -> float:
    """The profile's roofline estimate, scaled by how far the host's own estimate missed its measured latency."""
    measured = candidate.host_latency_ms["p50"]
    if profile.name == host.name:
        return measured
    args = (macs, candidate.weight_bytes, candidate.n_ops)
    host_precision = candidate.precision if candidate.precision in host.compute.gmacs else Precision.FP32
    calibration = measured / max(host.estimate_latency_ms(*args, host_precision), 1e-6)
    return profile.estimate_latency_ms(*args, candidate.precision) * calibration


def fit_problems(candidate: Candidate, profile: Profile) -> list[str]:
    """Why the artifact does not fit the profile (empty when it fits)."""
    accepts, budgets = profile.accepts, profile.budgets
    problems = []
    if candidate.precision not in accepts.precisions:
        problems.append(f"precision {candidate.precision.value} not accepted")
    if candidate.size_bytes > budgets.storage_mb * MB:
        problems.append(f"size {candidate.size_bytes / MB:.1f} MB exceeds storage budget {budgets.storage_mb} MB")
    memory = candidate.weight_bytes + candidate.peak_activation_bytes
    if memory > budgets.memory_mb * MB:
        problems.append(f"memory {memory / MB:.1f} MB exceeds budget {budgets.memory_mb} MB")
    if accepts.op_allowlist:
        outside = sorted(set(candidate.op_types) - set(accepts.op_allowlist))
        if outside:
            problems.append(f"ops outside the allow-list: {', '.join(outside)}")
    tensors = candidate.io.get("inputs", []) + candidate.io.get("outputs", [])
    if accepts.static_shapes and any(d is None for t in tensors for d in t["shape"]):
        problems.append("dynamic shapes, profile needs static ones")
    if accepts.integer_only and any(not np.issubdtype(np.dtype(t["dtype"]), np.integer) for t in tensors):
        problems.append("float model inputs/outputs, profile is integer-only")
    return problems


def describe_io(runner) -> dict:
    """Inputs and outputs of an artifact as its runtime reports them, with quantization for integer tensors."""
    quant_in = runner.quantization("inputs") if isinstance(runner, TFLiteRunner) else [None] * len(runner.inputs)
    quant_out = runner.quantization("outputs") if isinstance(runner, TFLiteRunner) else [None] * len(runner.outputs)
    return {
        "inputs": [{**s.to_json(), "quantization": q} for s, q in zip(runner.inputs, quant_in)],
        "outputs": [{**s.to_json(), "quantization": q} for s, q in zip(runner.outputs, quant_out)],
    }
