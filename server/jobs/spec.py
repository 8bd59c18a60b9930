"""A job's spec: the proto JobSpec <-> (profile, SdkSpec, CompressOptions), validated before any upload is kept."""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.protobuf import json_format
from pydantic import ValidationError

from compressor.errors import InvalidInputError
from compressor.options import CompressOptions
from compressor.profiles import Profile, get_profile
from compressor.splitting.request import SplitRequest
from sdkgen.spec import SdkSpec
from server.gen.edgeforge.v1 import compression_pb2 as pb

_SDK_DEFAULTS = SdkSpec()
_VERSION = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # the manifest schema's pattern, checked before any upload


@dataclass(frozen=True)
class BuildRequest:
    profile: Profile
    sdk: SdkSpec
    options: CompressOptions
    split: SplitRequest


def to_proto(profile: str, sdk: SdkSpec, options: CompressOptions, split: SplitRequest | None = None) -> pb.JobSpec:
    """The JobSpec a client sends for ``sdkgen build``'s arguments."""
    spec = pb.JobSpec(
        profile=profile,
        platforms=sdk.platforms,
        name=sdk.name,
        package=sdk.package,
        labels=sdk.labels or (),
        mode=sdk.mode,
        cloud_endpoint=sdk.cloud_endpoint or "",
        task=sdk.task or "",
        timeout_ms=sdk.timeout_ms,
        retries=sdk.retries,
        model_version=sdk.model_version,
        pixel_scale=sdk.pixel_scale,
        pixel_offset=sdk.pixel_offset,
    )
    if sdk.confidence_threshold is not None:
        spec.confidence_threshold = sdk.confidence_threshold
    split = split or SplitRequest()
    spec.split_objective = split.objective
    if split.uplink_mbps is not None:
        spec.uplink_mbps = split.uplink_mbps
    if split.rtt_ms is not None:
        spec.rtt_ms = split.rtt_ms
    spec.recipe.CopyFrom(options_to_proto(options))
    return spec


def from_proto(spec: pb.JobSpec) -> BuildRequest:
    """Check every field; raise InvalidInputError/UnknownNameError naming the bad one."""
    if not spec.profile:
        raise InvalidInputError("the job spec names no profile; set JobSpec.profile (see ListProfiles)")
    profile = get_profile(spec.profile)
    if spec.model_version and not _VERSION.match(spec.model_version):
        raise InvalidInputError(
            f"model_version {spec.model_version[:80]!r} is not allowed; use up to 64 letters, digits, '.', '_' or '-' "
            "(e.g. 1 or 2024.05)"
        )
    sdk = SdkSpec(
        name=spec.name or _SDK_DEFAULTS.name,
        package=spec.package or _SDK_DEFAULTS.package,
        platforms=tuple(spec.platforms) or _SDK_DEFAULTS.platforms,
        labels=tuple(spec.labels) or None,
        task=spec.task or None,
        mode=spec.mode or _SDK_DEFAULTS.mode,
        confidence_threshold=spec.confidence_threshold
        if spec.HasField("confidence_threshold")
        else _SDK_DEFAULTS.confidence_threshold,
        timeout_ms=spec.timeout_ms if spec.HasField("timeout_ms") else _SDK_DEFAULTS.timeout_ms,
        retries=spec.retries if spec.HasField("retries") else _SDK_DEFAULTS.retries,
        cloud_endpoint=spec.cloud_endpoint or None,
        model_version=spec.model_version or _SDK_DEFAULTS.model_version,
        pixel_scale=spec.pixel_scale if spec.HasField("pixel_scale") else _SDK_DEFAULTS.pixel_scale,
        pixel_offset=spec.pixel_offset if spec.HasField("pixel_offset") else _SDK_DEFAULTS.pixel_offset,
    )
    split = SplitRequest(
        objective=spec.split_objective or SplitRequest.objective,
        uplink_mbps=spec.uplink_mbps if spec.HasField("uplink_mbps") else None,
        rtt_ms=spec.rtt_ms if spec.HasField("rtt_ms") else None,
    )
    return BuildRequest(profile, sdk, options_from_proto(spec.recipe), split)


def options_to_proto(options: CompressOptions) -> pb.CompressOptions:
    """The options that were asked for (``model_fields_set``), field by field; raises for a local-only one."""
    message = pb.CompressOptions()
    for name in sorted(options.model_fields_set):
        extra = CompressOptions.model_fields[name].json_schema_extra
        value = getattr(options, name)
        if isinstance(extra, dict) and not extra.get("wire", True):
            if value is not None:
                raise InvalidInputError(
                    f"{name} names a file on your machine, which a server cannot read; a remote job trains on the "
                    "uploaded data file instead, so leave it out"
                )
            continue
        if value is None:
            continue
        if isinstance(value, tuple):
            getattr(message, name).extend(v.value if hasattr(v, "value") else v for v in value)
        else:
            setattr(message, name, value)
    return message


def options_from_proto(message: pb.CompressOptions) -> CompressOptions:
    """The options a job spec carries, checked; raises :class:`InvalidInputError` naming a bad field."""
    fields = {}
    for field in message.DESCRIPTOR.fields:
        if field.is_repeated:
            if len(getattr(message, field.name)):
                fields[field.name] = tuple(getattr(message, field.name))
        elif message.HasField(field.name):
            fields[field.name] = getattr(message, field.name)
    try:
        return CompressOptions(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(map(str, error["loc"]))
        raise InvalidInputError(
            f"recipe option {where or '(combination)'} is invalid: {error['msg'].removeprefix('Value error, ')}"
        ) from None


def to_dict(spec: pb.JobSpec) -> dict:
    return json_format.MessageToDict(spec, preserving_proto_field_name=True)


def from_dict(data: dict) -> pb.JobSpec:
    return json_format.ParseDict(data, pb.JobSpec())
