"""Build options (the recipe): one definition, frozen, validated at construction."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from compressor.metrics import Gate
from compressor.profiles import Format, Precision


def _option(
    default,
    description: str,
    group: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    wire: bool = True,
    **constraints,
):
    """A recipe field and how it surfaces: ``group`` titles its CLI section, ``flag`` overrides the flag name
    (``--field-name`` by default), ``wire`` False keeps it off the job spec (it names a file on the caller's
    machine)."""
    extra: dict[str, JsonValue] = {"group": group, "wire": wire}
    if flag:
        extra["flag"] = flag
    if metavar:
        extra["metavar"] = metavar
    return Field(default, description=description, json_schema_extra=extra, **constraints)


GATE, DATA, MEASURE, PRUNING, SEARCH = (
    "accuracy gate",
    "data splits",
    "quantization and measurement",
    "pruning, distillation and clustering",
    "search and selection",
)
CALIBRATION_METHODS = ("auto", "minmax", "moving-average", "percentile", "entropy", "mse")
Calibration = Literal["auto", "minmax", "moving-average", "percentile", "entropy", "mse"]
Objective = Literal["size", "latency", "balanced"]


class CompressOptions(BaseModel):
    """What to try and how strict the accuracy gate is.

    This one definition drives the CLI flags (``sdkgen.option_flags``), the job spec on the wire (the typed
    ``edgeforge.v1.CompressOptions`` message, ``server.jobs.spec``) and the ``options`` block of ``report.json``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_accuracy_drop: float = _option(1.0, "allowed top-1 accuracy drop, percentage points", GATE, ge=0, le=100)
    min_cosine: float = _option(0.99, "gate for unlabeled data: minimum mean cosine similarity", GATE, ge=-1, le=1)
    min_top1_agreement: float = _option(
        0.99,
        "gate for unlabeled classifier outputs: least share of samples (of positions, for sequence outputs) "
        "whose top-1 class the artifact keeps; not applied to synthetic inputs",
        GATE,
        ge=0,
        le=1,
    )
    strict_gate: bool = _option(
        False,
        "integer-only profiles (an Edge TPU runs nothing else): fail the build (exit 3) when no full-integer "
        "candidate passes the gate, instead of shipping the closest one marked below the gate",
        GATE,
    )
    precisions: tuple[Precision, ...] | None = _option(
        None, "only try these precisions (repeatable)", MEASURE, flag="--precision"
    )
    validation_fraction: float = _option(
        0.3,
        "share of --data held out to validate candidates when --val-data is not given (the rest calibrates and, "
        "without --train-data, fine-tunes); split seeded and by label",
        DATA,
        gt=0,
        lt=1,
    )
    split_seed: int = _option(0, "seed of the calibration/validation split", DATA)
    val_data: Path | None = _option(
        None, ".npz that validates candidates (default: a held-out part of --data)", DATA, wire=False
    )
    calibration_samples: int = _option(128, "samples used to calibrate full-integer quantization", MEASURE, ge=1)
    calibration: Calibration = _option(
        "auto",
        "activation ranges of full-integer quantization: minmax (over all calibration samples), moving-average "
        "(ai-edge-quantizer's own), percentile, entropy (KL), mse; auto tries them on the calibration split",
        MEASURE,
    )
    bias_correction: bool = _option(
        True, "correct each layer's output mean for its int8 weight error (full-integer candidates)", MEASURE
    )
    gptq: bool = _option(
        True,
        "offer int8-dynamic TFLite weights rounded by GPTQ for their layer's measured inputs (same bytes and kernels); "
        "the int8-dynamic file closest to fp32 on the calibration samples ships",
        MEASURE,
    )
    int8_fallback: bool = _option(
        True,
        "when a full-integer candidate misses the gate, keep its most sensitive layers in float (mixed-int8); "
        "integer-only profiles get the best full-integer result and a report of what was lost where; int8-dynamic "
        "keeps the layers that lose the most to run-time activation quantization on float activations, within 5 percent "
        "of the model's multiply-accumulates",
        MEASURE,
    )
    qat_steps: int = _option(
        0,
        "integer-only profiles: when a full-integer candidate misses the gate, fine-tune the PyTorch model with int8 "
        "fake quantization for this many steps against its own float outputs (an int8-qat candidate; 0, the "
        "default: off; try 300 with a few hundred --train-data samples)",
        MEASURE,
        ge=0,
    )
    latency_warmup: int = _option(10, "untimed runs before host latency is measured", MEASURE, ge=0)
    latency_repeats: int = _option(50, "timed runs per host latency figure", MEASURE, ge=1)
    prune: Literal["none", "unstructured", "structured", "blocks"] = _option("none", "pruning kind", PRUNING)
    sparsity: float | None = _option(
        None,
        "fraction removed: weights (unstructured), channels/heads (structured) or residual blocks (blocks); "
        "default 0.5",
        PRUNING,
        gt=0,
        lt=1,
    )
    criterion: str = _option("l2", "structured importance: l1, l2, taylor, entropy, correlation, fpgm", PRUNING)
    prune_scope: Literal["global", "layer"] = _option("global", "rank weights across all layers or per layer", PRUNING)
    distill: bool = _option(False, "train the pruned model on the original's soft targets", PRUNING)
    temperature: float = _option(2.0, "distillation temperature", PRUNING, gt=0)
    distill_alpha: float = _option(0.5, "weight of the soft-target loss when labels exist", PRUNING, ge=0, le=1)
    cluster: int | None = _option(
        None,
        "weight clustering: share K values per layer (2-256), centroids fine-tuned; int8 artifacts get one "
        "scale per tensor",
        PRUNING,
        metavar="K",
        ge=2,
        le=256,
    )
    finetune_epochs: int = _option(10, "fine-tuning epochs after pruning", PRUNING, ge=0)
    finetune_seconds: float = _option(300.0, "time bound on fine-tuning per variant", PRUNING, gt=0)
    finetune_seed: int = _option(0, "seed of fine-tuning (initial order and mixup draws)", PRUNING)
    train_data: Path | None = _option(
        None, ".npz for fine-tuning and calibration (default: the part of --data not held out)", DATA, wire=False
    )
    target_size_kb: float | None = _option(None, "largest acceptable download (deflated) size in KB", SEARCH, gt=0)
    target_latency_ms: float | None = _option(None, "largest acceptable host p50 latency in ms", SEARCH, gt=0)
    select: Objective | None = _option(
        None,
        "what the selection optimizes among passing candidates: size, latency or balanced (default: the profile's)",
        SEARCH,
    )
    mixed_precision: bool = _option(
        False,
        "add a TFLite candidate with int4/int8/fp16 weights chosen per layer by sensitivity (on by default when "
        "selecting for size)",
        MEASURE,
    )
    int4_qat_steps: int = _option(
        1200,
        "mixed precision of a PyTorch-trainable model, when its smallest plan misses the gate: train it on the int4 "
        "grid (blocks of 32) by distillation for this many steps, within --int4-qat-seconds, as a mixed-qat "
        "candidate (0: off)",
        MEASURE,
        ge=0,
    )
    int4_qat_seconds: float = _option(
        900.0, "time bound on that training (all-MiniLM-L6-v2: 1200 steps in about 9 minutes on 2 cores)", MEASURE, gt=0
    )

    @model_validator(mode="after")
    def _no_duplicates(self) -> CompressOptions:
        if self.precisions is not None and len(set(self.precisions)) != len(self.precisions):
            raise ValueError("precisions lists a value twice")
        return self

    @model_validator(mode="after")
    def _pruning_consistent(self) -> CompressOptions:
        if self.prune == "none":
            if self.sparsity is not None:
                raise ValueError("sparsity needs a pruning kind: set prune to 'unstructured', 'structured' or 'blocks'")
            if self.distill:
                raise ValueError(
                    "distill trains the pruned model (the student); set prune to 'structured', 'unstructured' or "
                    "'blocks' (a student module of your own goes to compress(..., student=module))"
                )
            return self
        if self.prune == "blocks":
            if "criterion" in self.model_fields_set:
                raise ValueError(
                    "block pruning ranks residual blocks by how much bypassing each changes the outputs on your data; "
                    f"criterion {self.criterion!r} ranks channels, so use it with prune='structured'"
                )
            return self
        from compressor.importance import MAGNITUDE_CRITERIA, criteria  # loads torch: only for builds that prune

        if self.criterion not in criteria:
            raise ValueError(f"unknown importance criterion {self.criterion!r}; known: {', '.join(criteria.names())}")
        if self.prune == "unstructured" and self.criterion not in MAGNITUDE_CRITERIA:
            raise ValueError(
                f"unstructured pruning ranks single weights by magnitude ({', '.join(MAGNITUDE_CRITERIA)}); criterion "
                f"{self.criterion!r} ranks channels, so use it with prune='structured'"
            )
        return self

    @classmethod
    def flag(cls, name: str) -> str:
        """The command-line flag of option ``name`` (``--field-name`` unless the field declares another)."""
        extra = cls.model_fields[name].json_schema_extra
        declared = extra.get("flag") if isinstance(extra, dict) else None
        return str(declared) if declared else f"--{name.replace('_', '-')}"

    @property
    def gate(self) -> Gate:
        """The accuracy gate these options set."""
        return Gate(self.max_accuracy_drop, self.min_cosine, self.min_top1_agreement)

    @property
    def searching(self) -> bool:
        """Targets were given: try several sparsities and keep the most compressed one that meets the budget."""
        return self.target_size_kb is not None or self.target_latency_ms is not None


__all__ = ["CompressOptions", "Format", "Precision"]
