"""Named hardware profiles: one TOML file per device, validated by one schema.

Profiles are data.  Code asks a profile what it accepts (formats, precisions,
static shapes, an op allow-list), what it can hold (budgets), how fast it is
(compute figures for latency estimates) and how it is connected (network
figures for the split planner); code never branches on a profile's name.
"""

from __future__ import annotations

import functools
import tomllib
from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from compressor.errors import ProfileError, UnknownNameError

PROFILE_DIR = Path(__file__).parent
SCHEMA_VERSION = 1


class Format(str, Enum):
    TFLITE = "tflite"
    ONNX = "onnx"


class Precision(str, Enum):
    """Weight/activation precision of an artifact, ordered from largest to smallest."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8_DYNAMIC = "int8-dynamic"
    INT8_FULL = "int8-full"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class Accepts(_Frozen):
    """What the device's runtime can load."""

    formats: tuple[Format, ...] = Field(min_length=1, description="formats shipped to the device, all of them")
    precisions: tuple[Precision, ...] = Field(min_length=1)
    static_shapes: bool = Field(False, description="every tensor shape must be known at conversion time")
    integer_only: bool = Field(False, description="int8 everywhere, model inputs and outputs included")
    op_allowlist: tuple[str, ...] = Field((), description="TFLite builtin ops allowed; empty means any")
    onnx_fp16: Literal["compute", "weights"] = Field(
        "compute",
        description="what an fp16 ONNX artifact keeps in fp16: 'compute', weights and activations (a GPU or "
        "TensorRT runtime, where fp16 is the fast path); 'weights', the stored weights only, widened to fp32 once "
        "when the session loads (a CPU runtime, whose fp16 arithmetic is slower than fp32), as LiteRT's fp16 does",
    )
    onnx_int8_weight_bits: Literal[7, 8, "host"] = Field(
        8,
        description="bits of the int8 ONNX weights: 7 (onnxruntime's reduce_range) for x86 CPUs without VNNI, whose "
        "u8 x s8 kernels (vpmaddubsw) saturate their int16 pair sums on full-range weights; 8 elsewhere (VNNI, "
        "ARM dot product, GPUs); 'host': whichever the build host's own CPU needs (the host profile)",
    )

    def onnx_weight_bits(self, cpuinfo: str | None = None, machine: str | None = None) -> int:
        """:attr:`onnx_int8_weight_bits`, with ``host`` resolved for this machine (or the ``cpuinfo`` text and
        ``machine`` name given)."""
        if self.onnx_int8_weight_bits != "host":
            return self.onnx_int8_weight_bits
        return 7 if host_lacks_vnni(cpuinfo, machine) else 8

    @model_validator(mode="after")
    def _integer_only_means_int8_full(self) -> Accepts:
        if self.integer_only and set(self.precisions) != {Precision.INT8_FULL}:
            raise ValueError("integer_only profiles accept precisions = ['int8-full'] only")
        return self


def host_lacks_vnni(cpuinfo: str | None = None, machine: str | None = None) -> bool:
    """True on an x86 CPU without AVX512-VNNI or AVX-VNNI (read from ``/proc/cpuinfo``'s flags, or ``cpuinfo``);
    False on any other architecture.  An x86 CPU whose flags cannot be read counts as lacking it (7-bit weights lose
    a little accuracy everywhere; 8-bit ones can saturate there)."""
    import platform

    if (machine or platform.machine()).lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return True
    flags = next((line.partition(":")[2].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return not {"avx512_vnni", "avx_vnni"} & set(flags)


class Budgets(_Frozen):
    memory_mb: float = Field(gt=0, description="RAM a model may use: weights plus peak activations")
    storage_mb: float = Field(gt=0, description="largest artifact the app may ship")


class Compute(_Frozen):
    """Effective throughput figures used to estimate latency on the device."""

    gmacs: dict[Precision, float] = Field(description="effective giga multiply-accumulates per second")
    memory_bandwidth_gbps: float = Field(gt=0)
    op_overhead_us: float = Field(ge=0, description="fixed cost per operator dispatch")
    invoke_overhead_us: float = Field(
        ge=0,
        description="fixed cost per model invocation (runtime call, input/output copies), paid once per run "
        "however small the model: what makes a head of a few operators dearer than its work",
    )
    estimate: bool = Field(description="true when figures are derived from spec sheets, not measured")
    calibration_reference: bool = Field(
        False,
        description="true for the one profile whose figures were measured on the build host itself: its "
        "estimate's miss against measured host latency calibrates every other profile's estimates",
    )
    source: str = Field(min_length=1, description="where the figures come from")


class Selection(_Frozen):
    """How the build picks among the candidates that pass the gate and fit (``--select`` overrides it)."""

    objective: Literal["size", "latency", "balanced"] = Field(
        description="size: the smallest file (storage- or download-bound devices); latency: the fastest on the "
        "device; balanced: the least size x latency, each relative to the best candidate"
    )


class Network(_Frozen):
    uplink_mbps: float = Field(gt=0)
    downlink_mbps: float = Field(gt=0)
    rtt_ms: float = Field(ge=0)


class Power(_Frozen):
    """Optional power figures for the energy objective of the split planner."""

    compute_w: float = Field(gt=0)
    radio_tx_w: float = Field(gt=0)
    idle_w: float = Field(ge=0)


class Profile(_Frozen):
    """A named hardware target."""

    schema_version: Literal[1]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    display_name: str
    platform: Literal["android", "ios", "linux"]
    runtime: str
    delegates: tuple[str, ...] = ()
    accepts: Accepts
    budgets: Budgets
    compute: Compute
    selection: Selection
    network: Network
    power: Power | None = None
    notes: str = ""

    @model_validator(mode="after")
    def _every_precision_has_a_figure(self) -> Profile:
        missing = [p.value for p in self.accepts.precisions if p not in self.compute.gmacs]
        if missing:
            raise ValueError(f"compute.gmacs lacks a figure for accepted precision(s) {missing}")
        return self

    def estimate_latency_ms(self, macs: int, weight_bytes: int, n_ops: int, precision: Precision) -> float:
        """Roofline-style estimate: compute or weight traffic, whichever dominates, plus dispatch costs."""
        compute_s = macs / (self.compute.gmacs[precision] * 1e9)
        memory_s = weight_bytes / (self.compute.memory_bandwidth_gbps * 1e9)
        return (max(compute_s, memory_s) + n_ops * self.compute.op_overhead_us * 1e-6) * 1e3


def _read(path: Path) -> Profile:
    try:
        raw = tomllib.loads(path.read_text())
        profile = Profile.model_validate(raw)
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ProfileError(f"hardware profile {path} is invalid: {exc}") from exc
    if profile.name != path.stem:
        raise ProfileError(f"hardware profile {path} declares name {profile.name!r}; it must match the file name")
    return profile


@functools.cache
def all_profiles() -> dict[str, Profile]:
    """Every bundled profile by name."""
    return {p.stem: _read(p) for p in sorted(PROFILE_DIR.glob("*.toml"))}


def reference_profile() -> Profile:
    """The profile measured on the build host (``compute.calibration_reference``); exactly one profile is."""
    references = [p for p in all_profiles().values() if p.compute.calibration_reference]
    if len(references) != 1:
        names = ", ".join(p.name for p in references) or "none"
        raise ProfileError(f"exactly one profile must set compute.calibration_reference = true; found {names}")
    return references[0]


def get_profile(name: str) -> Profile:
    """Return the profile called ``name``; raise :class:`UnknownNameError` listing the known ones."""
    profiles = all_profiles()
    if name not in profiles:
        raise UnknownNameError(f"unknown hardware profile {name!r}; known profiles: {', '.join(profiles)}")
    return profiles[name]


def json_schema() -> dict:
    """The JSON Schema every profile file satisfies (written to profile.schema.json)."""
    return Profile.model_json_schema()
