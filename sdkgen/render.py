"""Render ``templates/<platform>/`` into an SDK directory.

Python builds a typed :class:`RenderContext`; the templates own every line and every
output path (a template's path is itself a template).  Templates at a platform's top level whose
name starts with ``_`` are partials (macros, dependency versions) that other templates import; they render to no
file.  Each
platform's ``_files.j2`` renders to directives for files that are not text templates: ``copy ASSET DEST``
copies a build asset (model, manifest, schema, proto) and ``descriptor-set DEST`` writes the inference
proto as a serialized ``FileDescriptorSet`` (the Python SDK builds its messages from it in a private pool).
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2

from compressor.errors import EdgeForgeError, InvalidInputError
from compressor.profiles import get_profile
from compressor.registry import Registry
from sdkgen.proto_spec import ProtoSpec, descriptor_set, proto_spec
from sdkgen.schema_rules import SchemaRules, schema_rules
from sdkgen.spec import SdkSpec

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"  # package data: the repository's templates/ (linked in a checkout)
PROTO = HERE / "protos" / "inference" / "grpc_service.proto"
DIRECTIVES = "_files.j2"
# Profile delegates an SDK's LiteRT CompiledModel can ask for, as LiteRT's accelerator names; CPU always follows.
ACCELERATORS = {"gpu": "gpu"}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int | None, ...]
    dtype: str
    quantization: dict | None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample for examples: the batch axis dropped, dynamic dimensions read as 1."""
        return tuple(d or 1 for d in self.shape[1:])

    @property
    def dynamic(self) -> bool:
        """Whether a dimension past the batch axis is dynamic (its size comes with each input)."""
        return any(d is None for d in self.shape[1:])

    @property
    def sample_size(self) -> int:
        size = 1
        for d in self.sample_shape:
            size *= d
        return size


@dataclass(frozen=True)
class RenderContext:
    """Everything a template may use; templates see it as ``ctx``."""

    name: str
    package: str
    python_package: str
    task: str
    labels: tuple[str, ...] | None
    model_file: str
    model_format: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    cloud_model_name: str
    versions: dict[str, str]
    schema: SchemaRules
    proto: ProtoSpec
    accelerators: tuple[str, ...]  # LiteRT accelerators in order of preference, from the profile; "cpu" last
    head_file: str | None = None  # the split head, when the manifest has a split section

    @property
    def package_path(self) -> str:
        return self.package.replace(".", "/")

    @property
    def dist_name(self) -> str:
        return self.python_package.replace("_", "-")

    @property
    def input(self) -> TensorInfo:
        return self.inputs[0]

    @property
    def swift_prefix(self) -> str:
        """The prefix of this SDK's Swift proto types (protoc-gen-swift's ``swift_prefix``), one per SDK."""
        return f"{self.name}OIP_"

    @property
    def java_proto_package(self) -> str:
        """This SDK's ``java_package`` for the inference proto, so two SDKs in one app do not share classes."""
        return f"{self.package}.oip"


def context_for(spec: SdkSpec, manifest: dict) -> RenderContext:
    """The render context for ``spec`` and the (validated) ``manifest``."""

    def tensors(entries: list[dict]) -> tuple[TensorInfo, ...]:
        return tuple(TensorInfo(t["name"], tuple(t["shape"]), t["dtype"], t["quantization"]) for t in entries)

    return RenderContext(
        name=spec.name,
        package=spec.package,
        python_package=spec.python_package,
        task=manifest["task"],
        labels=tuple(manifest["labels"]) if manifest["labels"] else None,
        model_file=manifest["model"]["file"],
        model_format=manifest["model"]["format"],
        inputs=tensors(manifest["inputs"]),
        outputs=tensors(manifest["outputs"]),
        cloud_model_name=manifest["cloud"]["model_name"],
        versions=_versions(),
        schema=schema_rules(),
        proto=proto_spec(PROTO),
        accelerators=accelerators_for(manifest.get("profile")),
        head_file=manifest["split"]["head"]["file"] if manifest["split"] else None,
    )


def accelerators_for(profile: str | None) -> tuple[str, ...]:
    """LiteRT accelerators for the profile's delegates (GPU where it lists one), then the CPU fallback."""
    try:
        delegates = get_profile(profile).delegates if profile else ()
    except EdgeForgeError:
        delegates = ()
    chosen = [ACCELERATORS[d] for d in delegates if d in ACCELERATORS]
    return (*dict.fromkeys(chosen), "cpu")


def _versions() -> dict[str, str]:
    names = {
        "grpcio": "grpcio",
        "protobuf": "protobuf",
        "numpy": "numpy",
        "ai_edge_litert": "ai-edge-litert",
        "onnxruntime": "onnxruntime",
        "jsonschema": "jsonschema",
        "edgeforge": "edgeforge",
    }
    return {key: importlib.metadata.version(dist) for key, dist in names.items()}


def kotlin_string(text: str) -> str:
    """``text`` as a Kotlin string literal (``$`` escaped, so no template expression starts in it)."""
    return json.dumps(text).replace("$", "\\$")


def swift_string(text: str) -> str:
    """``text`` (ASCII) as a Swift string literal."""
    if not text.isascii():
        raise InvalidInputError(f"{text!r} is not ASCII; Swift literals here are rendered from ASCII only")
    return json.dumps(text)


def environment(platform: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES / platform),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(kstr=kotlin_string, sstr=swift_string)
    return env


def render_platform(platform: str, ctx: RenderContext, assets: dict[str, Path], dest: Path) -> list[Path]:
    """Write the ``platform`` SDK into ``dest``; return the paths (relative to ``dest``) rendered from templates."""
    env = environment(platform)
    rendered = []
    for template in sorted((TEMPLATES / platform).rglob("*.j2")):
        rel = template.relative_to(TEMPLATES / platform).as_posix()
        if "/" not in rel and rel.startswith("_"):
            continue
        out_rel = Path(env.from_string(rel[: -len(".j2")]).render(ctx=ctx))
        target = dest / out_rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(env.get_template(rel).render(ctx=ctx))
        rendered.append(out_rel)
    for line in env.get_template(DIRECTIVES).render(ctx=ctx).splitlines():
        if line.strip():
            verb, *args = line.split()
            file_actions.get(verb)(assets, dest, *args)
    return rendered


FileAction = Callable[..., None]
file_actions: Registry[FileAction] = Registry("SDK file directive")


@file_actions.register("copy")
def _copy(assets: dict[str, Path], dest: Path, key: str, rel: str) -> None:
    if key not in assets:
        raise InvalidInputError(f"template directive copies unknown asset {key!r}; known: {', '.join(sorted(assets))}")
    target = dest / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(assets[key], target)


@file_actions.register("descriptor-set")
def _descriptor_set(assets: dict[str, Path], dest: Path, rel: str) -> None:
    """Write the inference proto (asset ``proto``) compiled to a serialized ``FileDescriptorSet`` at ``rel``."""
    target = dest / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(descriptor_set(assets["proto"]))
