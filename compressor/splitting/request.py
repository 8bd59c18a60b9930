"""What a build asks of the split planner, validated at construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from compressor.errors import InvalidInputError
from compressor.profiles import Format

SPLIT_MODES = ("auto", "split")
OBJECTIVES = ("latency", "energy")


@dataclass(frozen=True)
class SplitRequest:
    """``mode`` auto lets the planner choose all-edge, a split or all-cloud; split forces the best cut.

    ``uplink_mbps``/``rtt_ms`` override the profile's network figures; ``format`` is the head's artifact format
    (default: the first format the build selected an artifact for).
    """

    mode: str = "auto"
    objective: str = "latency"
    uplink_mbps: float | None = None
    rtt_ms: float | None = None
    format: Format | None = field(default=None)

    def __post_init__(self) -> None:
        if self.mode not in SPLIT_MODES:
            raise InvalidInputError(f"unknown split mode {self.mode!r}; choose from {', '.join(SPLIT_MODES)}")
        if self.objective not in OBJECTIVES:
            raise InvalidInputError(f"unknown split objective {self.objective!r}; choose from {', '.join(OBJECTIVES)}")
        if self.uplink_mbps is not None and not self.uplink_mbps > 0:
            raise InvalidInputError(f"uplink {self.uplink_mbps} Mbps: give a positive bandwidth, e.g. 10")
        if self.rtt_ms is not None and not self.rtt_ms >= 0:
            raise InvalidInputError(f"RTT {self.rtt_ms} ms: give zero or more milliseconds, e.g. 50")
