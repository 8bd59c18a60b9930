"""Figures of one artifact: sizes, graph figures, host latency, the device estimate and how it fits a profile."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from compressor.analysis import artifact_figures
from compressor.profiles import Precision, Profile, reference_profile
from compressor.runtimes import ArtifactRunner, measure_latency_ms, open_artifact
from compressor.sources import sha256_file
from compressor.state import Candidate

MB = 1024 * 1024


LATENCY_ROUNDS = 5  # interleaved rounds over a build's candidates (drift and other load hit them alike)


def measure(
    candidate: Candidate,
    sample: dict[str, np.ndarray],
    macs: int,
    profile: Profile,
    warmup: int,
    repeats: int,
    latency: bool = True,
) -> None:
    """Fill ``candidate``'s size, graph, latency, device-estimate and fit fields from its file (without
    ``latency``: all but the latency and the device estimate, which :func:`time_interleaved` then fills)."""
    path = candidate.require_path()
    blob = path.read_bytes()
    candidate.size_bytes = len(blob)
    candidate.download_size_bytes = len(zlib.compress(blob, 9))
    candidate.sha256 = sha256_file(path)
    figures = artifact_figures(path, candidate.format.value)
    candidate.n_ops, candidate.op_types = figures.n_ops, figures.op_types
    candidate.weight_bytes, candidate.peak_activation_bytes = figures.weight_bytes, figures.peak_activation_bytes
    runner = open_artifact(path, candidate.format.value)
    candidate.io = describe_io(runner)
    if latency:
        candidate.host_latency_ms = measure_latency_ms(runner, sample, warmup, repeats)
        candidate.estimated_device_latency_ms = estimate_device_latency(candidate, macs, profile, reference_profile())
    candidate.fit_problems = fit_problems(candidate, profile)


def time_interleaved(
    candidates: list[tuple[Candidate, int]], sample: dict[str, np.ndarray], profile: Profile, warmup: int, repeats: int
) -> None:
    """Host latency (p50, p90) and the device estimate of each ``(candidate, macs)``: :data:`LATENCY_ROUNDS`
    rounds that time every candidate in turn (``repeats`` runs per candidate in all), the median of each figure
    over the rounds, so that drift and other load on the machine hit all candidates alike."""
    runners = [open_artifact(c.require_path(), c.format.value) for c, _ in candidates]
    per_round = max(1, repeats // LATENCY_ROUNDS)
    figures: list[list[dict[str, float]]] = [[] for _ in candidates]
    for _ in range(LATENCY_ROUNDS):
        for i, runner in enumerate(runners):
            figures[i].append(measure_latency_ms(runner, sample, warmup, per_round))
    host = reference_profile()
    for (candidate, macs), rounds in zip(candidates, figures):
        candidate.host_latency_ms = {key: float(np.median([r[key] for r in rounds])) for key in ("p50", "p90")}
        candidate.estimated_device_latency_ms = estimate_device_latency(candidate, macs, profile, host)


def estimate_device_latency(candidate: Candidate, macs: int, profile: Profile, host: Profile) -> float:
    """The profile's roofline estimate, scaled by how far the host's own estimate missed its measured latency."""
    measured = (candidate.host_latency_ms or {})["p50"]
    if profile.compute.calibration_reference:
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


def describe_io(runner: ArtifactRunner) -> dict:
    """Inputs and outputs of an artifact as its runtime reports them, with quantization for integer tensors."""
    return {
        "inputs": [{**s.to_json(), "quantization": q} for s, q in zip(runner.inputs, runner.quantization("inputs"))],
        "outputs": [{**s.to_json(), "quantization": q} for s, q in zip(runner.outputs, runner.quantization("outputs"))],
    }


def describe_file(path: Path, fmt: str) -> dict:
    """:func:`describe_io` of an artifact file."""
    return describe_io(open_artifact(path, fmt))
