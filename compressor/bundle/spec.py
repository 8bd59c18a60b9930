"""What a bundle is asked for beyond compression: names, labels, task, fallback policy and the cloud model.

Checked at construction, before anything runs; ``sdkgen.spec.SdkSpec`` adds the SDK platforms.
"""

from __future__ import annotations

import keyword
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from compressor.bundle.manifest import MODES, TASKS
from compressor.errors import InvalidInputError

BUILD_MODES = ("auto", *MODES)  # auto: the split planner chooses edge, split or cloud
_NAME = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")
_PACKAGE_SEGMENT = re.compile(r"^[a-z][a-z0-9_]*$")
_ENDPOINT = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:[0-9]{1,5}$")
# Names the generated code itself declares, or that shadow built-ins in Python, Kotlin or Swift.
_RESERVED_NAMES = {
    "Prediction",
    "Manifest",
    "EdgeEngine",
    "CloudClient",
    "FallbackPredictor",
    "PredictionError",
    "Json",
    "None",
    "True",
    "False",
    "Any",
    "Self",
    "Type",
    "Protocol",
    "Unit",
    "Nothing",
    "String",
    "Int",
    "Float",
    "Array",
    "List",
    "Map",
    "Error",
    "Result",
    "Data",
    "Bundle",
    "Context",
    "Object",
}
_JVM_KEYWORDS = set(
    [
        "as",
        "break",
        "class",
        "continue",
        "do",
        "else",
        "false",
        "for",
        "fun",
        "if",
        "in",
        "interface",
        "is",
        "null",
        "object",
        "package",
        "return",
        "super",
        "this",
        "throw",
        "true",
        "try",
        "typealias",
        "typeof",
        "val",
        "var",
        "when",
        "while",
        "abstract",
        "assert",
        "boolean",
        "byte",
        "case",
        "catch",
        "char",
        "const",
        "default",
        "double",
        "enum",
        "extends",
        "final",
        "finally",
        "float",
        "goto",
        "implements",
        "import",
        "instanceof",
        "int",
        "long",
        "native",
        "new",
        "private",
        "protected",
        "public",
        "short",
        "static",
        "strictfp",
        "switch",
        "synchronized",
        "throws",
        "transient",
        "void",
        "volatile",
    ]
)


def snake_case(name: str) -> str:
    """``DigitsClassifier`` -> ``digits_classifier`` (the Python package and cloud model name)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


@dataclass(frozen=True)
class BundleSpec:
    """The bundle part of a build; raises :class:`InvalidInputError` at construction on any bad value."""

    name: str = "Model"
    package: str = "com.example.model"
    labels: tuple[str, ...] | None = None
    task: str | None = None  # None: classification when labels are given, raw tensors otherwise
    mode: str = "edge"  # one of BUILD_MODES
    confidence_threshold: float | None = 0.6
    timeout_ms: int = 2000
    retries: int = 1
    cloud_endpoint: str | None = None
    model_version: str = "1"
    pixel_scale: float = 1.0 / 255.0  # image helpers: model value = pixel (0..255) * scale + offset
    pixel_offset: float = 0.0

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_package(self.package)
        if self.resolved_task not in TASKS:
            raise InvalidInputError(f"unknown task {self.task!r}; choose from {', '.join(TASKS)}")
        if self.mode not in BUILD_MODES:
            raise InvalidInputError(f"unknown fallback mode {self.mode!r}; choose from {', '.join(BUILD_MODES)}")
        if self.confidence_threshold is not None and not 0 <= self.confidence_threshold <= 1:
            raise InvalidInputError(f"confidence threshold {self.confidence_threshold} is outside 0..1")
        if not 1 <= self.timeout_ms <= 600_000 or not 0 <= self.retries <= 10:
            raise InvalidInputError(
                f"timeout {self.timeout_ms} ms / retries {self.retries}: use 1..600000 ms and 0..10 retries"
            )
        if self.cloud_endpoint is not None and not _ENDPOINT.match(self.cloud_endpoint):
            raise InvalidInputError(
                f"cloud endpoint {self.cloud_endpoint!r} is not HOST:PORT (e.g. infer.example.com:8001)"
            )
        if self.mode == "cloud" and self.cloud_endpoint is None:
            raise InvalidInputError("mode 'cloud' needs --cloud-endpoint HOST:PORT")
        if not (self.pixel_scale > 0 and abs(self.pixel_offset) < 1e6):
            raise InvalidInputError(
                f"pixel scale {self.pixel_scale} must be > 0 (model value = pixel * scale + offset)"
            )
        if self.labels is not None and (not self.labels or any(not label.strip() for label in self.labels)):
            raise InvalidInputError("the labels file must hold one non-empty class name per line")

    @property
    def plans_split(self) -> bool:
        """Modes auto and split run the split planner during the build."""
        return self.mode in ("auto", "split")

    @property
    def resolved_task(self) -> str:
        return self.task or ("classification" if self.labels else "raw")

    @property
    def python_package(self) -> str:
        return snake_case(self.name)

    @property
    def cloud_model_name(self) -> str:
        """The name the server serves the cloud model under (the Python package name)."""
        return self.python_package


def read_labels(path: str | Path) -> tuple[str, ...]:
    """Class names, one per line, from a labels file (blank trailing lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"labels file {path} does not exist; write one class name per line, in output order")
    lines = path.read_text().rstrip("\n").split("\n")
    return tuple(line.strip() for line in lines)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidInputError(
            f"SDK name {name!r} is not a valid class name in Kotlin, Swift and Python; use UpperCamelCase letters "
            "and digits starting with a capital letter, e.g. DigitsClassifier"
        )
    python_package = snake_case(name)
    if name in _RESERVED_NAMES or keyword.iskeyword(python_package) or python_package in sys.stdlib_module_names:
        raise InvalidInputError(
            f"SDK name {name!r} clashes with a name the SDKs or their languages already use "
            f"(class {name} / Python package {python_package}); choose a more specific name, e.g. {name}Model"
        )


def _check_package(package: str) -> None:
    segments = package.split(".")
    bad = [s for s in segments if not _PACKAGE_SEGMENT.match(s) or s in _JVM_KEYWORDS]
    if len(segments) < 2 or bad:
        detail = (
            f"segment(s) {', '.join(repr(s) for s in bad)} are not allowed" if bad else "it needs at least two segments"
        )
        raise InvalidInputError(
            f"package {package!r} is not a valid Kotlin/Java package: {detail}; use lowercase dot-separated "
            "identifiers that are not keywords, e.g. com.example.digits"
        )
