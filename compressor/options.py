"""Build options (the recipe): frozen, validated at construction."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from compressor.profiles import Format, Precision


class CompressOptions(BaseModel):
    """What to try and how strict the accuracy gate is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_accuracy_drop: float = Field(1.0, ge=0, le=100, description="allowed top-1 accuracy drop, percentage points")
    min_cosine: float = Field(0.99, ge=-1, le=1, description="gate for unlabeled data: minimum mean cosine similarity")
    precisions: tuple[Precision, ...] | None = Field(None, description="restrict the precisions tried")
    calibration_samples: int = Field(128, ge=1, description="samples used to calibrate full-integer quantization")
    latency_warmup: int = Field(10, ge=0)
    latency_repeats: int = Field(50, ge=1)
    # pruning, distillation and budgeted search (issue 6); the defaults leave the model as submitted
    prune: Literal["none", "unstructured", "structured", "blocks"] = Field("none", description="pruning kind")
    sparsity: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="fraction removed: weights (unstructured), channels/heads (structured) or residual blocks (blocks)",
    )
    criterion: str = Field("l2", description="importance criterion (see compressor.importance.criteria)")
    prune_scope: Literal["global", "layer"] = Field("global", description="rank weights across all layers or per layer")
    distill: bool = Field(False, description="train the pruned student on the teacher's soft targets")
    temperature: float = Field(2.0, gt=0, description="distillation temperature")
    distill_alpha: float = Field(0.5, ge=0, le=1, description="weight of the soft-target loss when labels exist")
    cluster: int | None = Field(
        None,
        ge=2,
        le=256,
        description="weight clustering: at most this many distinct non-zero weights per layer, centroids fine-tuned",
    )
    finetune_epochs: int = Field(10, ge=0, description="fine-tuning epochs after pruning")
    finetune_seconds: float = Field(300.0, gt=0, description="wall-clock bound on fine-tuning per variant")
    finetune_seed: int = 0
    train_data: Path | None = Field(None, description=".npz used for fine-tuning (default: the validation data)")
    target_size_kb: float | None = Field(None, gt=0, description="search: largest acceptable download size")
    target_latency_ms: float | None = Field(None, gt=0, description="search: largest acceptable host p50 latency")
    mixed_precision: bool = Field(
        False, description="add a per-layer int4/int8/fp16 TFLite candidate chosen by sensitivity"
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

    @property
    def searching(self) -> bool:
        """Targets were given: try several sparsities and keep the most compressed one that meets the budget."""
        return self.target_size_kb is not None or self.target_latency_ms is not None


__all__ = ["CompressOptions", "Format", "Precision"]
