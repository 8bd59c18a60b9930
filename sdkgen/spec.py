"""What an SDK build is asked for: the bundle spec plus the SDK platforms, checked before anything runs."""

from __future__ import annotations

from dataclasses import dataclass

from compressor.bundle.spec import BUILD_MODES, BundleSpec, read_labels, snake_case
from compressor.errors import InvalidInputError
from sdkgen.platforms import platforms


@dataclass(frozen=True)
class SdkSpec(BundleSpec):
    """The SDK part of a build; raises :class:`InvalidInputError` at construction on any bad value."""

    platforms: tuple[str, ...] = ("python",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.platforms:
            raise InvalidInputError(f"no SDK platform given; choose from {', '.join(platforms.names())}")
        for platform in self.platforms:
            platforms.get(platform)
        if len(set(self.platforms)) != len(self.platforms):
            raise InvalidInputError(f"platforms {', '.join(self.platforms)} list a platform twice")


__all__ = ["BUILD_MODES", "SdkSpec", "read_labels", "snake_case"]
