"""What a build is given (:class:`BuildInputs`, frozen) and what it finds out (:class:`BuildResults`, append-only).

Passes read the inputs and extend the results; each pass declares which result fields it reads and writes
(:class:`~compressor.pipeline.Pass`), and the pipeline holds it to that on every run.  Results only grow: a list
field gains items, a mapping gains keys, a figure is set once; a candidate's measurement fields are filled in by
the validate and measure passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compressor.data import SampleData
from compressor.metrics import Gate
from compressor.options import CompressOptions
from compressor.profiles import Format, Precision, Profile
from compressor.progress import Progress
from compressor.sources import Source

if TYPE_CHECKING:
    import torch

    from compressor.constraints import Constraint
    from compressor.splitting.outcome import SplitOutcome
    from compressor.splitting.request import SplitRequest


@dataclass(frozen=True)
class BuildData:
    """The user's samples, by use: validation judges candidates, calibration feeds full-integer quantization,
    training fine-tunes and distils.  ``split`` says how they were obtained (for the report)."""

    validation: SampleData
    calibration: SampleData
    training: SampleData
    split: dict = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return self.validation.synthetic


@dataclass(frozen=True)
class BuildInputs:
    """Everything a build is given; nothing here changes while it runs."""

    source: Source
    profile: Profile
    options: CompressOptions
    data: BuildData
    workdir: Path
    progress: Progress
    student: torch.nn.Module | None = None
    split_request: SplitRequest | None = None

    @property
    def objective(self) -> str:
        """What selection optimizes: ``--select``, else the profile's ``selection.objective``."""
        return self.options.select or self.profile.selection.objective

    def precisions(self) -> tuple[Precision, ...]:
        """The profile's precisions, narrowed by the options, largest first."""
        wanted = self.options.precisions or tuple(Precision)
        return tuple(p for p in Precision if p in self.profile.accepts.precisions and p in wanted)

    def sample(self) -> dict[str, np.ndarray]:
        """One validation sample (batch of one), keyed by input name."""
        return self.data.validation.take(0, 1).inputs

    def sample_args(self) -> tuple:
        """:meth:`sample` as torch tensors, one per model input: what tracing and export take."""
        import torch

        return tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in self.sample().values())

    @property
    def gate(self) -> Gate:
        """The options' gate; top-1 agreement is not gated on synthetic inputs (their top-1 means nothing)."""
        gate = self.options.gate
        return Gate(gate.max_accuracy_drop, gate.min_cosine, None) if self.data.synthetic else gate

    @property
    def log(self) -> Path:
        return self.workdir / "converter.log"


@dataclass
class Candidate:
    """One converted artifact and everything measured about it."""

    format: Format
    precision: Precision
    path: Path | None
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
    variant: str = ""  # empty for the model as submitted; e.g. "structured50-l2-distill" for a pruned one
    technique: dict | None = None  # how the variant was made (pruning, fine-tuning, per-layer precisions)
    params: int | None = None  # the variant's own figures; None means the source model's
    macs: int | None = None
    route: str = ""  # the converters that made it

    @property
    def name(self) -> str:
        base = f"{self.precision.value}.{self.format.value}"
        return f"{self.variant}.{base}" if self.variant else base

    def require_path(self) -> Path:
        """The artifact's file; only candidates without an error have one."""
        if self.path is None:
            raise ValueError(f"candidate {self.name} has no file ({self.error})")
        return self.path

    @property
    def usable(self) -> bool:
        return self.error is None and self.passed_gate and not self.fit_problems

    def missed_as_int8_full(self, remedy: str) -> bool:
        """A measured full-integer TFLite artifact that failed the gate, not itself made by ``remedy`` (the variant
        suffix of a pass that offers another int8 candidate in its place: mixed-int8, int8-qat)."""
        return (
            self.format is Format.TFLITE
            and self.precision is Precision.INT8_FULL
            and self.error is None
            and self.metrics is not None
            and not self.passed_gate
            and not self.variant.endswith(remedy)
        )


@dataclass(frozen=True)
class Variant:
    """A transformed copy of the source model (pruned, distilled, clustered) that the converters also convert.

    ``parent`` names the variant it was made from (empty: the model as submitted); a variant that another one
    was made from is an intermediate step, not converted itself.  ``constraints`` are what training must keep
    (pruning masks, weight clusters)."""

    label: str
    module: Any  # torch.nn.Module
    params: int
    technique: dict = field(default_factory=dict)
    constraints: tuple[Constraint, ...] = ()
    parent: str | None = None
    per_tensor_weights: bool = False  # one int8 scale per weight tensor (clustered: k centroids stay k bytes)


@dataclass
class BuildResults:
    """What the passes found; each field is written by the passes that declare it."""

    macs: int | None = None
    reference_outputs: list[np.ndarray] | None = None
    variants: list[Variant] = field(default_factory=list)
    bases: dict[tuple[str, Format], Path] = field(default_factory=dict)  # (variant label, format) -> fp32 artifact
    candidates: list[Candidate] = field(default_factory=list)
    selected: dict[Format, int] = field(default_factory=dict)
    selection: dict[Format, dict] = field(default_factory=dict)  # per format: objective, runner-up, the sentence
    unshipped: dict[Format, str] = field(default_factory=dict)  # formats the profile takes that no candidate made
    split: SplitOutcome | None = None

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def leaves(self) -> list[Variant]:
        """The variants to convert: those no other variant was made from, in the order they were made."""
        parents = {v.parent for v in self.variants}
        return [v for v in self.variants if v.label not in parents]


PassFunction = Callable[[BuildInputs, BuildResults], None]
