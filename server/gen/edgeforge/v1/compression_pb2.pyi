from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    QUEUED: _ClassVar[JobState]
    RUNNING: _ClassVar[JobState]
    SUCCEEDED: _ClassVar[JobState]
    FAILED: _ClassVar[JobState]
    CANCELLED: _ClassVar[JobState]

class FailureKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_KIND_UNSPECIFIED: _ClassVar[FailureKind]
    GATE_FAILED: _ClassVar[FailureKind]
    INVALID_INPUT: _ClassVar[FailureKind]
    BUILD_ERROR: _ClassVar[FailureKind]
    WORKER_CRASHED: _ClassVar[FailureKind]
    TIMED_OUT: _ClassVar[FailureKind]
    INTERRUPTED: _ClassVar[FailureKind]
    INTERNAL: _ClassVar[FailureKind]
JOB_STATE_UNSPECIFIED: JobState
QUEUED: JobState
RUNNING: JobState
SUCCEEDED: JobState
FAILED: JobState
CANCELLED: JobState
FAILURE_KIND_UNSPECIFIED: FailureKind
GATE_FAILED: FailureKind
INVALID_INPUT: FailureKind
BUILD_ERROR: FailureKind
WORKER_CRASHED: FailureKind
TIMED_OUT: FailureKind
INTERRUPTED: FailureKind
INTERNAL: FailureKind

class ListProfilesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Profile(_message.Message):
    __slots__ = ("name", "display_name", "platform", "runtime", "formats", "precisions", "memory_mb", "storage_mb")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    PRECISIONS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    STORAGE_MB_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    platform: str
    runtime: str
    formats: _containers.RepeatedScalarFieldContainer[str]
    precisions: _containers.RepeatedScalarFieldContainer[str]
    memory_mb: float
    storage_mb: float
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., platform: _Optional[str] = ..., runtime: _Optional[str] = ..., formats: _Optional[_Iterable[str]] = ..., precisions: _Optional[_Iterable[str]] = ..., memory_mb: _Optional[float] = ..., storage_mb: _Optional[float] = ...) -> None: ...

class ListProfilesResponse(_message.Message):
    __slots__ = ("profiles",)
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    profiles: _containers.RepeatedCompositeFieldContainer[Profile]
    def __init__(self, profiles: _Optional[_Iterable[_Union[Profile, _Mapping]]] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("profile", "platforms", "name", "package", "labels", "mode", "confidence_threshold", "cloud_endpoint", "task", "timeout_ms", "retries", "model_version", "pixel_scale", "pixel_offset", "uplink_mbps", "rtt_ms", "split_objective", "recipe")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CLOUD_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PIXEL_SCALE_FIELD_NUMBER: _ClassVar[int]
    PIXEL_OFFSET_FIELD_NUMBER: _ClassVar[int]
    UPLINK_MBPS_FIELD_NUMBER: _ClassVar[int]
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    SPLIT_OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    profile: str
    platforms: _containers.RepeatedScalarFieldContainer[str]
    name: str
    package: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    mode: str
    confidence_threshold: float
    cloud_endpoint: str
    task: str
    timeout_ms: int
    retries: int
    model_version: str
    pixel_scale: float
    pixel_offset: float
    uplink_mbps: float
    rtt_ms: float
    split_objective: str
    recipe: CompressOptions
    def __init__(self, profile: _Optional[str] = ..., platforms: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., package: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., mode: _Optional[str] = ..., confidence_threshold: _Optional[float] = ..., cloud_endpoint: _Optional[str] = ..., task: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., retries: _Optional[int] = ..., model_version: _Optional[str] = ..., pixel_scale: _Optional[float] = ..., pixel_offset: _Optional[float] = ..., uplink_mbps: _Optional[float] = ..., rtt_ms: _Optional[float] = ..., split_objective: _Optional[str] = ..., recipe: _Optional[_Union[CompressOptions, _Mapping]] = ...) -> None: ...

class CompressOptions(_message.Message):
    __slots__ = ("max_accuracy_drop", "min_cosine", "precisions", "calibration_samples", "latency_warmup", "latency_repeats", "prune", "sparsity", "criterion", "prune_scope", "distill", "temperature", "distill_alpha", "cluster", "finetune_epochs", "finetune_seconds", "finetune_seed", "target_size_kb", "target_latency_ms", "mixed_precision", "validation_fraction", "split_seed", "calibration", "bias_correction", "int8_fallback", "select", "min_top1_agreement", "qat_steps", "strict_gate", "int4_qat_steps", "int4_qat_seconds", "gptq")
    MAX_ACCURACY_DROP_FIELD_NUMBER: _ClassVar[int]
    MIN_COSINE_FIELD_NUMBER: _ClassVar[int]
    PRECISIONS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    LATENCY_WARMUP_FIELD_NUMBER: _ClassVar[int]
    LATENCY_REPEATS_FIELD_NUMBER: _ClassVar[int]
    PRUNE_FIELD_NUMBER: _ClassVar[int]
    SPARSITY_FIELD_NUMBER: _ClassVar[int]
    CRITERION_FIELD_NUMBER: _ClassVar[int]
    PRUNE_SCOPE_FIELD_NUMBER: _ClassVar[int]
    DISTILL_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    DISTILL_ALPHA_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    FINETUNE_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    FINETUNE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FINETUNE_SEED_FIELD_NUMBER: _ClassVar[int]
    TARGET_SIZE_KB_FIELD_NUMBER: _ClassVar[int]
    TARGET_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MIXED_PRECISION_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FRACTION_FIELD_NUMBER: _ClassVar[int]
    SPLIT_SEED_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    BIAS_CORRECTION_FIELD_NUMBER: _ClassVar[int]
    INT8_FALLBACK_FIELD_NUMBER: _ClassVar[int]
    SELECT_FIELD_NUMBER: _ClassVar[int]
    MIN_TOP1_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    QAT_STEPS_FIELD_NUMBER: _ClassVar[int]
    STRICT_GATE_FIELD_NUMBER: _ClassVar[int]
    INT4_QAT_STEPS_FIELD_NUMBER: _ClassVar[int]
    INT4_QAT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    GPTQ_FIELD_NUMBER: _ClassVar[int]
    max_accuracy_drop: float
    min_cosine: float
    precisions: _containers.RepeatedScalarFieldContainer[str]
    calibration_samples: int
    latency_warmup: int
    latency_repeats: int
    prune: str
    sparsity: float
    criterion: str
    prune_scope: str
    distill: bool
    temperature: float
    distill_alpha: float
    cluster: int
    finetune_epochs: int
    finetune_seconds: float
    finetune_seed: int
    target_size_kb: float
    target_latency_ms: float
    mixed_precision: bool
    validation_fraction: float
    split_seed: int
    calibration: str
    bias_correction: bool
    int8_fallback: bool
    select: str
    min_top1_agreement: float
    qat_steps: int
    strict_gate: bool
    int4_qat_steps: int
    int4_qat_seconds: float
    gptq: bool
    def __init__(self, max_accuracy_drop: _Optional[float] = ..., min_cosine: _Optional[float] = ..., precisions: _Optional[_Iterable[str]] = ..., calibration_samples: _Optional[int] = ..., latency_warmup: _Optional[int] = ..., latency_repeats: _Optional[int] = ..., prune: _Optional[str] = ..., sparsity: _Optional[float] = ..., criterion: _Optional[str] = ..., prune_scope: _Optional[str] = ..., distill: _Optional[bool] = ..., temperature: _Optional[float] = ..., distill_alpha: _Optional[float] = ..., cluster: _Optional[int] = ..., finetune_epochs: _Optional[int] = ..., finetune_seconds: _Optional[float] = ..., finetune_seed: _Optional[int] = ..., target_size_kb: _Optional[float] = ..., target_latency_ms: _Optional[float] = ..., mixed_precision: _Optional[bool] = ..., validation_fraction: _Optional[float] = ..., split_seed: _Optional[int] = ..., calibration: _Optional[str] = ..., bias_correction: _Optional[bool] = ..., int8_fallback: _Optional[bool] = ..., select: _Optional[str] = ..., min_top1_agreement: _Optional[float] = ..., qat_steps: _Optional[int] = ..., strict_gate: _Optional[bool] = ..., int4_qat_steps: _Optional[int] = ..., int4_qat_seconds: _Optional[float] = ..., gptq: _Optional[bool] = ...) -> None: ...

class FileHeader(_message.Message):
    __slots__ = ("role", "filename", "size", "sha256")
    class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ROLE_UNSPECIFIED: _ClassVar[FileHeader.Role]
        MODEL: _ClassVar[FileHeader.Role]
        DATA: _ClassVar[FileHeader.Role]
    ROLE_UNSPECIFIED: FileHeader.Role
    MODEL: FileHeader.Role
    DATA: FileHeader.Role
    ROLE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    role: FileHeader.Role
    filename: str
    size: int
    sha256: str
    def __init__(self, role: _Optional[_Union[FileHeader.Role, str]] = ..., filename: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("spec", "file", "chunk")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    spec: JobSpec
    file: FileHeader
    chunk: bytes
    def __init__(self, spec: _Optional[_Union[JobSpec, _Mapping]] = ..., file: _Optional[_Union[FileHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("name", "size", "sha256", "archive")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    sha256: str
    archive: bool
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., archive: _Optional[bool] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "state", "spec", "created_at", "updated_at", "error", "summary", "artifacts", "model_name", "model_version", "stage", "percent", "failure")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: JobState
    spec: JobSpec
    created_at: str
    updated_at: str
    error: str
    summary: str
    artifacts: _containers.RepeatedCompositeFieldContainer[Artifact]
    model_name: str
    model_version: str
    stage: str
    percent: float
    failure: FailureKind
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., error: _Optional[str] = ..., summary: _Optional[str] = ..., artifacts: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., stage: _Optional[str] = ..., percent: _Optional[float] = ..., failure: _Optional[_Union[FailureKind, str]] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "after_seq")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    after_seq: int
    def __init__(self, job_id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "seq", "stage", "done", "total", "percent", "message", "state", "job")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    seq: int
    stage: str
    done: int
    total: int
    percent: float
    message: str
    state: JobState
    job: Job
    def __init__(self, job_id: _Optional[str] = ..., seq: _Optional[int] = ..., stage: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., percent: _Optional[float] = ..., message: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("limit", "state")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    limit: int
    state: JobState
    def __init__(self, limit: _Optional[int] = ..., state: _Optional[_Union[JobState, str]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class DownloadArtifactRequest(_message.Message):
    __slots__ = ("job_id", "name", "offset")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    name: str
    offset: int
    def __init__(self, job_id: _Optional[str] = ..., name: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class ArtifactChunk(_message.Message):
    __slots__ = ("name", "size", "sha256", "offset", "data")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    sha256: str
    offset: int
    data: bytes
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...
