"""CompressionService: thin proto <-> JobService glue."""

from __future__ import annotations

from compressor.errors import InvalidInputError
from compressor.profiles import all_profiles
from server.admission import IdleWatchdog
from server.auth import tenant
from server.gen.edgeforge.v1 import compression_pb2 as pb
from server.gen.edgeforge.v1 import compression_pb2_grpc as rpc
from server.jobs.service import JobService
from server.jobs.spec import from_dict
from server.jobs.store import JobRecord
from server.jobs.uploads import Header

_ROLES = {pb.FileHeader.MODEL: "model", pb.FileHeader.DATA: "data"}


def _parts(requests):
    """SubmitJob messages after the spec as ("file", Header) / ("chunk", bytes)."""
    for message in requests:
        kind = message.WhichOneof("part")
        if kind == "file":
            if message.file.role not in _ROLES:
                raise InvalidInputError("a FileHeader needs role MODEL or DATA")
            f = message.file
            yield "file", Header(_ROLES[f.role], f.filename, f.size, f.sha256)
        elif kind == "chunk":
            yield "chunk", message.chunk
        else:
            raise InvalidInputError(
                f"SubmitJob got a {kind or 'empty'} message after the job spec; send FileHeaders and chunks"
            )


class CompressionServicer(rpc.CompressionServiceServicer):
    def __init__(self, jobs: JobService, watchdog: IdleWatchdog | None = None) -> None:
        self.jobs, self.watchdog = jobs, watchdog

    def ListProfiles(self, request, context):
        return pb.ListProfilesResponse(
            profiles=[
                pb.Profile(
                    name=p.name,
                    display_name=p.display_name,
                    platform=p.platform,
                    runtime=p.runtime,
                    formats=[f.value for f in p.accepts.formats],
                    precisions=[x.value for x in p.accepts.precisions],
                    memory_mb=p.budgets.memory_mb,
                    storage_mb=p.budgets.storage_mb,
                )
                for p in all_profiles().values()
            ]
        )

    def SubmitJob(self, request_iterator, context):
        if self.watchdog is not None:
            request_iterator = self.watchdog.watch(request_iterator, context)
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "spec":
            raise InvalidInputError("SubmitJob must start with a message carrying the job spec")
        return self._job(self.jobs.submit(tenant(), first.spec, _parts(request_iterator)))

    def GetJob(self, request, context):
        return self._job(self.jobs.get(tenant(), request.job_id))

    def ListJobs(self, request, context):
        state = pb.JobState.Name(request.state) if request.state else None
        return pb.ListJobsResponse(jobs=[self._job(j) for j in self.jobs.list(tenant(), state, request.limit or 100)])

    def CancelJob(self, request, context):
        return self._job(self.jobs.cancel(tenant(), request.job_id))

    def WatchJob(self, request, context):
        for seq, event, job in self.jobs.watch(tenant(), request.job_id, request.after_seq, context.is_active):
            if job is None:
                yield pb.JobEvent(
                    job_id=request.job_id,
                    seq=seq,
                    stage=event.stage,
                    done=event.done,
                    total=event.total,
                    percent=event.percent,
                    message=event.message,
                    state=pb.RUNNING,
                )
            else:
                yield pb.JobEvent(
                    job_id=job.id,
                    seq=seq,
                    state=pb.JobState.Value(job.state),
                    message=job.error,
                    percent=100.0,
                    job=self._job(job),
                )

    def DownloadArtifact(self, request, context):
        for info, offset, data in self.jobs.download(tenant(), request.job_id, request.name, request.offset):
            yield pb.ArtifactChunk(name=info.name, size=info.size, sha256=info.sha256, offset=offset, data=data)

    def _job(self, job: JobRecord):
        event = job.last_event
        return pb.Job(
            id=job.id,
            state=pb.JobState.Value(job.state),
            spec=from_dict(job.spec),
            created_at=job.created_at,
            updated_at=job.updated_at,
            error=job.error,
            summary=job.summary,
            model_name=job.model_name,
            model_version=job.model_version,
            stage=event.stage if event else "",
            percent=event.percent if event else 0.0,
            failure=pb.FailureKind.Value(job.failure or "FAILURE_KIND_UNSPECIFIED"),
            artifacts=[
                pb.Artifact(name=a.name, size=a.size, sha256=a.sha256, archive=a.archive)
                for a in self.jobs.artifact_list(job)
            ],
        )


def add_to_server(servicer: CompressionServicer, server) -> str:
    rpc.add_CompressionServiceServicer_to_server(servicer, server)
    return pb.DESCRIPTOR.services_by_name["CompressionService"].full_name
