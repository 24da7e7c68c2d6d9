"""Sweeps: search a space of job specs, in parallel across workers, and rank the trials."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from api.deps import StateDep, TenantDep
from api.errors import ApiError, field_errors, invalid
from api.schemas.problems import responses
from api.schemas.sweeps import SweepCreate, SweepList, SweepPublic, TrialResult
from api.search_space import probe_points, trial_parameters
from api.services import jobs as jobs_service
from api.state import AppState
from api.streams import EventStream
from engine.errors import ConfigError
from store.errors import NotFound
from store.jobspec import JobSpec
from store.queue import send_run_job
from store.search import apply
from store.statuses import SWEEP_TERMINAL

router = APIRouter(prefix="/sweeps", tags=["sweeps"])
EVENTS_POLL_SECONDS = 0.5


def view(sweep: dict[str, Any], trials: list[dict[str, Any]]) -> SweepPublic:
    """The sweep with its counts and leaderboard (trials sorted by objective, best first)."""
    spec = sweep["spec"] or {}
    objective = spec.get("objective", {"metric": "val_loss", "mode": "min"})
    sign = 1.0 if objective.get("mode") == "min" else -1.0
    rows = []
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial["status"]] = counts.get(trial["status"], 0) + 1
        best = trial["best"] or {}
        rows.append(
            TrialResult(
                trial_id=trial["trial_id"],
                index=trial["index"],
                parameters=trial["parameters"],
                status=trial["status"],
                objective=best.get("objective"),
                best_epoch=best.get("epoch"),
                train_val_gap=best.get("gap"),
                epochs_run=trial["epochs_run"],
                started_at=trial["started_at"],
                finished_at=trial["finished_at"],
                error=trial["error"],
            )
        )
    rows.sort(key=lambda r: (r.objective is None, sign * (r.objective or 0.0), r.index))
    best_trial = next((r for r in rows if r.status == "succeeded" and r.objective is not None), None)
    return SweepPublic(
        id=sweep["id"],
        name=sweep["name"],
        status=sweep["status"],
        created_at=sweep["created_at"],
        finished_at=sweep.get("finished_at") or None,
        strategy=spec.get("strategy", "grid"),
        objective=objective,
        n_trials=len(trials),
        counts=counts,
        best_trial=best_trial,
        leaderboard=rows,
        spec=spec,
        importance=sweep.get("importance"),
    )


def _trial_specs(
    state: AppState, tenant: str, body: SweepCreate, assignments: list[dict[str, Any]], dataset: dict[str, Any]
) -> list[tuple[dict, dict]]:
    """Validate each assignment as a trial's job spec; a bad one is a 422 naming the parameter and value."""
    base = body.base.model_dump(mode="json")
    trials = []
    name = body.name or "sweep"
    for index, assignment in enumerate(assignments):
        raw = apply(base, assignment)  # a SpaceError is a 422 naming the parameter (api/errors.py)
        raw["name"] = f"{name}/trial-{index}"
        try:
            job = JobSpec.model_validate(raw)
            jobs_service.admit(state, tenant, job, dataset)
        except ValidationError as exc:
            first = field_errors(list(exc.errors()))[0]
            raise _bad_value(assignment, first["field"], first["message"]) from None
        except ConfigError as exc:
            raise _bad_value(assignment, exc.field, exc.message) from None
        except ApiError as exc:
            field = exc.errors[0]["field"] if exc.errors else "base"
            raise _bad_value(assignment, field, exc.detail) from None
        trials.append((assignment, job.normalized()))
    return trials


def _bad_value(assignment: dict[str, Any], field: str, message: str) -> ApiError:
    for path, value in assignment.items():
        if field == path or field.startswith(path + ".") or path.startswith(field + "."):
            return invalid(f"parameters.{path}", f"value {value!r} gives an invalid job: {message}")
    return invalid(f"base.{field}", message)


@router.post("", status_code=202, summary="Start a sweep", responses=responses(400, 401, 413, 422, 503))
def create_sweep(body: SweepCreate, response: Response, tenant: TenantDep, state: StateDep) -> SweepPublic:
    dataset = jobs_service.resolve_dataset(state, tenant, body.base.dataset, field="base.dataset")
    if body.strategy == "tpe":
        if body.max_trials is None:
            raise invalid("max_trials", "strategy tpe needs max_trials")
        # Trials are asked one by one as slots free up: validate the points that bound the space now.
        _trial_specs(state, tenant, body, probe_points(body), dataset)
        trials: list[tuple[dict, dict]] = []
    else:
        trials = _trial_specs(state, tenant, body, trial_parameters(body), dataset)
    spec = body.model_dump(mode="json")
    spec["base"] = body.base.normalized()
    spec["max_trials"] = body.max_trials if body.strategy == "tpe" else len(trials)
    spec["objective"]["mode"] = "min" if body.objective.smaller_is_better else "max"
    sweep = state.sweeps.create(tenant, spec, trials, jobs_service.dataset_summary(dataset))
    if not state.catalog.exists(tenant, body.base.dataset):
        # Deleted since it was resolved; a deletion after this point sees the running sweep.
        state.sweeps.request_cancel(tenant, sweep["id"])
        raise jobs_service.unknown_dataset(body.base.dataset, "base.dataset")
    try:
        for trial in state.sweeps.dispatch(sweep["id"]):
            send_run_job(state.producer, state.jobs, trial, max_runtime_seconds=body.base.training.max_runtime_seconds)
    except jobs_service.QUEUE_ERRORS as exc:
        state.sweeps.request_cancel(tenant, sweep["id"])
        raise jobs_service.queue_unavailable() from exc
    response.headers["Location"] = f"/v1/sweeps/{sweep['id']}"
    sweep = state.sweeps.get(tenant, sweep["id"])  # a tpe sweep's first trials exist only now
    return view(sweep, state.sweeps.trial_states(sweep))


@router.get("", summary="List sweeps, newest first", responses=responses(401, 422))
def list_sweeps(tenant: TenantDep, state: StateDep, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> SweepList:
    sweeps = state.sweeps.list(tenant, limit)
    return SweepList(items=[view(s, state.sweeps.trial_states(s)) for s in sweeps])


@router.get("/{sweep_id}", summary="A sweep: status, counts, leaderboard, best trial", responses=responses(401, 404))
def get_sweep(sweep_id: str, tenant: TenantDep, state: StateDep) -> SweepPublic:
    sweep = state.sweeps.get(tenant, sweep_id)
    return view(sweep, state.sweeps.trial_states(sweep))


@router.post("/{sweep_id}/cancel", status_code=202, summary="Cancel a sweep", responses=responses(401, 404, 409))
def cancel_sweep(sweep_id: str, tenant: TenantDep, state: StateDep) -> SweepPublic:
    state.sweeps.request_cancel(tenant, sweep_id)
    sweep = state.sweeps.get(tenant, sweep_id)
    return view(sweep, state.sweeps.trial_states(sweep))


@router.get(
    "/{sweep_id}/events",
    summary="Server-Sent Events: one `trial` event per finished trial, then one `end` event",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}, **responses(401, 404, 429)},
)
async def sweep_events(
    sweep_id: str,
    tenant: TenantDep,
    state: StateDep,
    request: Request,
    last_event_id: Annotated[str | None, Header(max_length=20, description="Resume after this many trials.")] = None,
) -> StreamingResponse:
    """429 past the open streams allowed per tenant (`TRAINAPI_MAX_STREAMS_PER_TENANT`) or in all."""
    await anyio.to_thread.run_sync(state.sweeps.get, tenant, sweep_id)
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    release = request.app.state.streams.take(tenant)

    def snapshot(position: int) -> tuple[list[str], dict[str, Any], list[dict[str, Any]]]:
        # Status first: a sweep turns terminal in the same step that records its last trial,
        # so a terminal status read before the list guarantees the list is complete.
        sweep = state.sweeps.get(tenant, sweep_id)
        finished = state.sweeps.finished(sweep_id, position)
        return finished, sweep, state.sweeps.trial_states(sweep)

    async def stream() -> AsyncIterator[str]:
        sent = start
        while True:
            try:
                finished, sweep, trials = await anyio.to_thread.run_sync(snapshot, sent)
            except NotFound:
                return
            public = view(sweep, trials)
            rows = {row.trial_id: row for row in public.leaderboard}
            for trial in finished:
                sent += 1
                row = rows.get(trial)
                data = row.model_dump_json() if row else json.dumps({"trial_id": trial})
                yield f"id: {sent}\nevent: trial\ndata: {data}\n\n"
            if sweep["status"] in SWEEP_TERMINAL and not finished:
                yield f"event: end\ndata: {public.model_dump_json()}\n\n"
                return
            await asyncio.sleep(EVENTS_POLL_SECONDS)

    return EventStream(stream(), release)
