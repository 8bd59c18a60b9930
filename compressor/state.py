"""The state every pass reads and extends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressor.data import SampleData
from compressor.loaders import SourceModel
from compressor.options import CompressOptions
from compressor.profiles import Format, Precision, Profile
from compressor.progress import Progress


@dataclass
class Candidate:
    """One converted artifact and everything measured about it."""

    format: Format
    precision: Precision
    path: Path
    error: str | None = None
    metrics: dict | None = None
    passed_gate: bool = False
    size_bytes: int = 0
    download_size_bytes: int = 0
    sha256: str = ""
    n_ops: int = 0
    op_types: tuple[str, ...] = ()
    weight_bytes: int = 0
    peak_activation_bytes: int = 0
    host_latency_ms: dict | None = None
    estimated_device_latency_ms: float | None = None
    fit_problems: list[str] = field(default_factory=list)
    io: dict = field(default_factory=dict)  # inputs/outputs with dtype and quantization, for manifests
    variant: str = ""  # empty for the model as submitted; e.g. "structured-50-l2-distill" for a pruned one
    technique: dict | None = None  # how the variant was made (pruning, fine-tuning, per-layer precisions)
    params: int | None = None  # the variant's own figures; None means the source model's
    macs: int | None = None

    @property
    def name(self) -> str:
        base = f"{self.precision.value}.{self.format.value}"
        return f"{self.variant}.{base}" if self.variant else base

    @property
    def usable(self) -> bool:
        return self.error is None and self.passed_gate and not self.fit_problems


@dataclass
class Variant:
    """A transformed copy of the source model (pruned, distilled) that the converters turn into more candidates."""

    label: str
    module: Any  # torch.nn.Module
    params: int
    technique: dict = field(default_factory=dict)
    masks: dict | None = None  # unstructured pruning: parameter name -> 0/1 mask that training must keep
    clusters: dict | None = None  # weight clustering: parameter name -> each weight's cluster index that training ties


@dataclass
class BuildState:
    source: SourceModel
    profile: Profile
    options: CompressOptions
    data: SampleData
    workdir: Path
    progress: Progress
    macs: int | None = None
    reference_outputs: list[np.ndarray] | None = None
    candidates: list[Candidate] = field(default_factory=list)
    selected: dict[Format, int] = field(default_factory=dict)
    variants: list[Variant] = field(default_factory=list)
    student: Any = None  # torch.nn.Module given through the Python API: distilled into one more variant
    split_request: Any = None  # compressor.splitting.request.SplitRequest: plan (and export) a split
    split: Any = None  # compressor.passes.split_model_pass.SplitOutcome, once planned
    per_tensor_weights: bool = False  # one int8 weight scale per tensor (clustered variants: k centroids, k bytes)

    def precisions_for(self, fmt: Format) -> list[Precision]:
        """The profile's precisions for ``fmt``, narrowed by the options, largest first."""
        wanted = self.options.precisions or tuple(Precision)
        return [p for p in Precision if p in self.profile.accepts.precisions and p in wanted]

    def calibration(self) -> SampleData:
        return self.data.take(0, min(len(self.data), self.options.calibration_samples))

    def sample(self) -> dict[str, np.ndarray]:
        return self.data.take(0, 1).inputs

    def torch_sample_args(self) -> tuple:
        import torch

        return tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in self.sample().values())


Pass = Callable[[BuildState], None]
