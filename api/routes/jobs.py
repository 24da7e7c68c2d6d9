"""Training jobs: submit, list, inspect, follow, cancel, delete, download, predict."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, get_args

import anyio
import redis
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from api.deps import JobsDep, StateDep, TenantDep
from api.errors import ApiError, invalid
from api.schemas.jobs import (
    JobList,
    JobPublic,
    JobSpec,
    JobStatus,
    MetricsList,
    PathPublic,
    PredictRequest,
    PredictResponse,
)
from api.schemas.problems import responses
from api.services import jobs as jobs_service
from api.services.jobs import job_json, view
from api.streams import EventStream
from engine import export
from engine.inference import Model
from engine.paths import job as path_job
from store.artifacts import Artifacts
from store.errors import NotFound
from store.statuses import TERMINAL
from store.storage import ObjectMissing
from trainapi import logs

log = logging.getLogger(__name__)
router = APIRouter(prefix="/jobs", tags=["jobs"])

#: How often an event stream looks for new epochs.
EVENTS_POLL_SECONDS = 0.25
EVENTS_KEEPALIVE_SECONDS = 15.0


@router.post(
    "",
    status_code=202,
    summary="Submit a training job",
    responses=responses(400, 401, 404, 413, 422, 429, 503),
    response_model_exclude_unset=True,
)
def create_job(
    job: JobSpec,
    response: Response,
    tenant: TenantDep,
    state: StateDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=200,
            description="Retries with the same body return the same job (for 24 h); the key with a different "
            "body is a 422.",
        ),
    ] = None,
) -> JobPublic:
    record = jobs_service.create(state, tenant, job, idempotency_key)
    response.headers["Location"] = f"/v1/jobs/{record['id']}"
    return view(record)


@router.get("", summary="List jobs, newest first", responses=responses(401, 422), response_model_exclude_unset=True)
def list_jobs(
    tenant: TenantDep,
    jobs: JobsDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=30, pattern=r"^[0-9]+$", description="`next_cursor` of the previous page.")
    ] = None,
) -> JobList:
    position = None if cursor is None else int(cursor)  # digits: the pattern is checked first
    items, next_cursor = jobs.list(tenant, status=status, limit=limit, cursor=position)
    return JobList(items=[view(r) for r in items], next_cursor=None if next_cursor is None else str(next_cursor))


@router.get(
    "/{job_id}",
    summary="A job: status, progress, metrics, spec",
    response_model=JobPublic,
    responses=responses(401, 404),
)
async def get_job(job_id: str, tenant: TenantDep, jobs: JobsDep) -> Response:
    # Served by api.job_status.JobStatusRoute in front of FastAPI; this route is its
    # documentation and the fallback for requests that route leaves to FastAPI.
    body = job_json(await jobs.get_async(tenant, job_id))
    return Response(body, media_type="application/json")


@router.get(
    "/{job_id}/metrics",
    summary="Per-epoch metrics",
    responses=responses(401, 404, 422),
    response_model_exclude_unset=True,
)
def get_metrics(
    job_id: str,
    tenant: TenantDep,
    jobs: JobsDep,
    since_epoch: Annotated[int, Query(ge=0, le=10_000_000, description="Only epochs after this one.")] = 0,
) -> MetricsList:
    return MetricsList(items=jobs.metrics(tenant, job_id, since_epoch))


@router.get(
    "/{job_id}/events",
    summary="Server-Sent Events: one `epoch` event per epoch, then one `end` event",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}, **responses(401, 404, 429)},
)
async def job_events(
    job_id: str,
    tenant: TenantDep,
    state: StateDep,
    request: Request,
    last_event_id: Annotated[str | None, Header(max_length=20, description="Resume after this epoch.")] = None,
) -> StreamingResponse:
    """429 past the open streams allowed per tenant (`TRAINAPI_MAX_STREAMS_PER_TENANT`) or in all."""
    await state.jobs.get_async(tenant, job_id)  # 404 before the stream starts
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    release = request.app.state.streams.take(tenant)

    async def stream() -> AsyncIterator[str]:
        sent = start
        idle = 0.0
        while True:
            try:
                record, records = await state.jobs.progress_async(tenant, job_id, sent)
            except NotFound:
                yield 'event: end\ndata: {"status": "deleted"}\n\n'
                return
            except redis.RedisError as exc:
                # The response has started: end the stream; the client resumes with Last-Event-ID.
                log.warning("event stream of job %s ended, Redis failed: %s", job_id, exc)
                return
            for item in records:
                sent = int(item["epoch"])
                yield f"id: {sent}\nevent: epoch\ndata: {json.dumps(item)}\n\n"
            if record["status"] in TERMINAL:
                yield f"event: end\ndata: {view(record).model_dump_json()}\n\n"
                return
            idle = 0.0 if records else idle + EVENTS_POLL_SECONDS
            if idle >= EVENTS_KEEPALIVE_SECONDS:
                idle = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(EVENTS_POLL_SECONDS)

    return EventStream(stream(), release)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    summary="Cancel a job",
    responses=responses(401, 404, 409),
    response_model_exclude_unset=True,
)
def cancel_job(job_id: str, tenant: TenantDep, jobs: JobsDep) -> JobPublic:
    status = jobs.request_cancel(tenant, job_id)
    with logs.bind(job_id=job_id, tenant=tenant):
        log.info("job %s: cancel requested, now %s", job_id, status)
    return view(jobs.get(tenant, job_id))


@router.delete(
    "/{job_id}", status_code=204, summary="Delete a finished job and its files", responses=responses(401, 404, 409)
)
def delete_job(job_id: str, tenant: TenantDep, state: StateDep) -> Response:
    jobs_service.delete(state, tenant, job_id)
    return Response(status_code=204)


def _succeeded(record: dict[str, Any]) -> int:
    if record["status"] != "succeeded":
        raise ApiError(409, "Conflict", f"the job is {record['status']}; weights exist once it has succeeded")
    return int(record["weights_attempt"])


LambdaIndex = Annotated[
    int | None,
    Query(
        ge=0,
        le=999,
        description="A path job's point to use instead of its selected one: an index into "
        "`GET /v1/jobs/{id}/path`'s `points` (422 out of range, or for a job without a path).",
    ),
]


def _check_lambda_index(record: dict[str, Any], index: int) -> None:
    """422 unless the job is a path job whose path has a point ``index``."""
    summary = record.get("path")
    if (record.get("spec") or {}).get("path") is None:
        raise invalid("lambda_index", "applies to path jobs (a spec with `path`); this job trained one model")
    if summary is not None and not 0 <= index < int(summary["n_lambdas"]):
        raise invalid("lambda_index", f"must be in [0, {int(summary['n_lambdas']) - 1}]: the path has that many points")


def _path_document(state: StateDep, record: dict[str, Any]) -> dict[str, Any]:
    """The stored path of a succeeded path job."""
    key = state.artifacts.path_key(record["id"], int(record["weights_attempt"]))
    document: dict[str, Any] = json.loads(state.artifacts.storage.get(key))
    return document


def _path_model(state: StateDep, record: dict[str, Any], npz: str, index: int) -> Model:
    """The job's model moved to point ``index`` of its path."""
    model = export.loads(state.artifacts.storage.get(npz), "npz")
    return path_job.model_at(model, _path_document(state, record), index)


@router.get(
    "/{job_id}/path",
    summary="A path job's regularization path: per λ the validation curve and the coefficients",
    responses=responses(401, 404, 409),
)
def get_path(job_id: str, tenant: TenantDep, state: StateDep) -> PathPublic:
    """404 for a job without a `path` in its spec; 409 until the job has succeeded."""
    record = state.jobs.get(tenant, job_id)
    if (record.get("spec") or {}).get("path") is None:
        raise ApiError(404, "Not found", f"job {job_id} has no regularization path (its spec has no `path`)")
    _succeeded(record)
    try:
        document = _path_document(state, record)
    except ObjectMissing:
        raise NotFound("path of job", job_id) from None
    return PathPublic.model_validate(document)


#: What ``/weights`` serves: the stored files, and ONNX built from the npz on request.
WeightFormat = Literal["npz", "safetensors", "json", "onnx"]
FORMATS: tuple[str, ...] = get_args(WeightFormat)
Checkpoint = Literal["best", "last"]
CHECKPOINTS: tuple[str, ...] = get_args(Checkpoint)


def _weights_key(record: dict[str, Any], checkpoint: str | None, artifacts: Artifacts) -> str:
    """The npz object to serve: a succeeded job's weights, or a cancelled job's ``checkpoint``."""
    if checkpoint is None:
        if record["status"] == "cancelled" and record.get("weights_attempt"):
            raise ApiError(
                409, "Conflict", "the job was cancelled; ?checkpoint=best or ?checkpoint=last serves its weights"
            )
        return artifacts.weights_key(record["id"], _succeeded(record), "npz")
    if record["status"] != "cancelled":
        raise invalid("checkpoint", f"applies to cancelled jobs; this job is {record['status']}")
    if not record.get("weights_attempt"):
        raise ApiError(409, "Conflict", "the job was cancelled before it completed an epoch; it has no weights")
    key = artifacts.checkpoint_weights_key(record["id"], int(record["weights_attempt"]), checkpoint)
    if not artifacts.storage.exists(key):
        raise ApiError(409, "Conflict", f"the {checkpoint} epoch's parameters of this job were not kept")
    return key


@router.get(
    "/{job_id}/weights",
    summary="Download the trained parameters",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file: npz, safetensors and onnx as application/octet-stream, json as application/json",
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("application/octet-stream", "application/json")
            },
        },
        **responses(401, 404, 409, 422, 503),
    },
)
def get_weights(
    job_id: str,
    tenant: TenantDep,
    state: StateDep,
    format: Annotated[WeightFormat, Query(description="npz, safetensors and json are stored; onnx is built.")] = "npz",
    checkpoint: Annotated[
        Checkpoint | None,
        Query(
            description="A cancelled job's `best` (best epoch by the early-stopping monitor) or `last` "
            "(last completed epoch) parameters; their metadata says which under `checkpoint`."
        ),
    ] = None,
    lambda_index: LambdaIndex = None,
) -> Response:
    record = state.jobs.get(tenant, job_id)
    npz = _weights_key(record, checkpoint, state.artifacts)
    suffix = f"-{checkpoint}" if checkpoint else ""
    if lambda_index is not None:
        _check_lambda_index(record, lambda_index)
        suffix = f"-lambda-{lambda_index}"
    filename = f"{job_id}{suffix}.{format}"
    try:
        if lambda_index is not None:
            model = state.model(f"{job_id}{suffix}", lambda: _path_model(state, record, npz, lambda_index))
        elif format in export.FORMATS and checkpoint is None:
            stored = state.artifacts.storage.open(
                state.artifacts.weights_key(job_id, int(record["weights_attempt"]), format)
            )
            # Streamed from storage chunk by chunk: the API never holds the whole file.
            return StreamingResponse(
                stored.chunks,
                media_type=export.MEDIA_TYPES[format],
                headers={
                    "Content-Length": str(stored.size),
                    "Content-Disposition": f'attachment; filename="{filename}"',
                },
            )
        else:
            model = state.model(f"{job_id}{suffix}", lambda: export.loads(state.artifacts.storage.get(npz), "npz"))
    except ObjectMissing:
        raise NotFound("weights of job", job_id) from None
    if format == "onnx":
        from api import onnx_export  # onnx takes a while to import; only this format needs it

        try:
            body, media_type = onnx_export.dumps(model), onnx_export.MEDIA_TYPE
        except onnx_export.NameClash as exc:
            raise ApiError(409, "Conflict", f"{exc}; use npz, safetensors or json with the NumPy recipe") from None
    else:
        body, media_type = export.dumps(model, format), export.MEDIA_TYPES[format]
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


#: A prediction of at most this many rows x parameters runs on the event loop (about a millisecond at
#: most): a thread hop would cost more than the work, and a pool of threads contending for the GIL is what
#: made single-row throughput fall with many concurrent clients. Larger ones go to two threads.
INLINE_PREDICT_WORK = 2_000_000


@router.post("/{job_id}/predict", summary="Predict with the trained model", responses=responses(401, 404, 409, 422))
async def predict(
    job_id: str, body: PredictRequest, tenant: TenantDep, state: StateDep, lambda_index: LambdaIndex = None
) -> PredictResponse:
    record = await state.jobs.get_async(tenant, job_id)
    attempt = _succeeded(record)
    name = job_id
    if lambda_index is not None:
        _check_lambda_index(record, lambda_index)
        name = f"{job_id}-lambda-{lambda_index}"
    model = state.cached_model(name)
    if model is None:
        key = state.artifacts.weights_key(job_id, attempt, "npz")
        if lambda_index is not None:
            index = lambda_index
            model = await anyio.to_thread.run_sync(
                lambda: _path_model(state, record, key, index), limiter=state.predictions
            )
        else:
            model = await anyio.to_thread.run_sync(
                lambda: export.loads(state.artifacts.storage.get(key), "npz"), limiter=state.predictions
            )
        state.keep_model(name, model)
    if len(body.inputs) * model.n_parameters <= INLINE_PREDICT_WORK:
        return _predict(model, body)
    return await anyio.to_thread.run_sync(_predict, model, body, limiter=state.predictions)


def _predict(model: Model, body: PredictRequest) -> PredictResponse:
    predictions = model.predict(body.inputs)
    if model.head == "identity":
        return PredictResponse(predictions=predictions, probabilities=None, classes=None)
    return PredictResponse(
        predictions=predictions,
        probabilities=model.predict_proba(body.inputs).tolist(),
        classes=model.metadata["classes"],
    )
