"""Build options (the recipe): frozen, validated at construction."""

from __future__ import annotations

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

    @model_validator(mode="after")
    def _no_duplicates(self) -> "CompressOptions":
        if self.precisions is not None and len(set(self.precisions)) != len(self.precisions):
            raise ValueError("precisions lists a value twice")
        return self


__all__ = ["CompressOptions", "Format", "Precision"]
