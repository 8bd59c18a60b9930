"""One error hierarchy for EdgeForge.

Every error a user can cause derives from :class:`EdgeForgeError` and from the
built-in type it most resembles, so callers may catch either.  Messages say
what was received, what is accepted and how to fix it; the CLI prints them
without a traceback and the server maps them to gRPC status codes in one place.
"""

from __future__ import annotations


class EdgeForgeError(Exception):
    """Root of every error EdgeForge raises on purpose."""


class UnknownNameError(EdgeForgeError, LookupError):
    """A name (profile, technique, platform...) is not registered."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidInputError(EdgeForgeError, ValueError):
    """A submitted file, option or argument cannot be used as given."""


class UnsupportedModelError(InvalidInputError):
    """A model file is corrupt, truncated, pickled or of an unknown format."""


class DataMismatchError(InvalidInputError):
    """Sample data does not match the model's inputs."""


class ProfileError(InvalidInputError):
    """A hardware profile file does not satisfy the profile schema."""


class ConversionError(EdgeForgeError, RuntimeError):
    """A converter or quantizer failed on a model it should accept."""


class TechniqueNotApplicableError(EdgeForgeError, ValueError):
    """A technique cannot be applied to the given model."""


class GateFailedError(EdgeForgeError, RuntimeError):
    """No candidate artifact passed the accuracy gate or fit the profile; ``report`` holds every candidate's numbers
    (a remote build's failure carries them already rendered, as ``table``)."""

    def __init__(self, message: str, report: dict | None = None, table: str = "") -> None:
        super().__init__(message)
        self.report, self.table = report, table
        self.results: object | None = (
            None  # the build's results when the pipeline raised it (the bundle layer reports them)
        )
