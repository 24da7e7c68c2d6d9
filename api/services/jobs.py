"""Jobs: admission, create + enqueue (or discard), delete, and the public view of a record.

Routes (``api/routes/jobs.py``, ``api/routes/sweeps.py``) and the raw status
route (``api/job_status.py``) call these; storage is the business of
:class:`store.jobs.JobStore`, sending of :func:`store.queue.send_run_job`.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import kombu.exceptions
import pydantic_core
import redis

from api.errors import ApiError, invalid
from api.schemas.jobs import JobPublic
from api.state import AppState
from store.errors import NotFound
from store.jobs import eta_seconds
from store.jobspec import JobSpec
from store.queue import send_run_job
from trainapi import logs
from trainapi.settings import Settings

log = logging.getLogger(__name__)

#: The fields of a dataset that a job record keeps (``JobPublic.dataset``).
SUMMARY_FIELDS = ("id", "name", "source", "n_samples", "n_features", "task", "target_name")
#: What sending to the queue raises when the broker is away.
QUEUE_ERRORS = (kombu.exceptions.KombuError, redis.RedisError, OSError)


def queue_unavailable() -> ApiError:
    return ApiError(503, "Service unavailable", "the job queue is unreachable; retry shortly")


# -- admission -----------------------------------------------------------------


def unknown_dataset(ident: str, field: str = "dataset") -> ApiError:
    return invalid(field, f"no dataset {ident!r}; GET /v1/datasets lists them")


def resolve_dataset(state: AppState, tenant: str, ident: str, field: str = "dataset") -> dict[str, Any]:
    """The summary of the dataset a job names; a 422 on ``field`` when the tenant has none by that name."""
    try:
        return state.catalog.resolve(tenant, ident)
    except NotFound:
        raise unknown_dataset(ident, field) from None


def dataset_summary(dataset: dict[str, Any], target: str | None = None) -> dict[str, Any]:
    """The part of a dataset's summary stored with each job that uses it (``target``: the job's, if its own)."""
    name = target or dataset["target_name"]
    missing = next((int(c["missing"]) for c in dataset.get("columns") or () if c["name"] == name), 0)
    return {**{k: dataset[k] for k in SUMMARY_FIELDS}, "rows_missing_target": missing}


def admit(state: AppState, tenant: str, job: JobSpec, dataset: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every rule a job must pass before it is stored; returns the summary of its dataset.

    In order: the spec's cross-field rules, the dataset (resolved for the tenant unless given, as a
    sweep does once for all its trials), the target column, the operator's budget. Raises ConfigError
    or a 422 ApiError naming the field to change.
    """
    job.engine_spec()  # cross-field rules; a ConfigError becomes a 422 naming the field
    if dataset is None:
        dataset = resolve_dataset(state, tenant, job.dataset)
    check_target(job, dataset)
    if job.path is not None:
        check_path(job, dataset)
    check_budget(job, dataset, state.settings)
    return dataset


def check_path(job: JobSpec, dataset: dict[str, Any]) -> None:
    """A path job's dataset: two classes for a logistic path, and the fold column, if named, among its columns."""
    classes = dataset.get("classes")
    if job.model.type == "logistic" and not job.target and classes and len(classes) > 2:
        raise invalid("path", f"a logistic path fits two classes; dataset {dataset['id']!r} has {len(classes)}")
    cv = job.training.cross_validation
    if cv is not None and cv.fold_column is not None:
        available = _feature_columns(job, dataset)
        if cv.fold_column not in available:
            raise invalid(
                "training.cross_validation.fold_column",
                f"no feature column {cv.fold_column!r} in dataset {dataset['id']!r} (columns: {', '.join(available)})",
            )


def check_budget(job: JobSpec, dataset: dict[str, Any], settings: Settings) -> None:
    """Reject a job over the operator's resource budget, naming the field to change."""
    hidden = job.model.hidden_layers if job.model.type == "mlp" else []
    classes = dataset.get("classes")
    outputs = len(classes) if classes and len(classes) > 2 and not job.target and job.task != "regression" else 1
    sizes = [input_width(job, dataset), *hidden, outputs]
    params = sum((a + 1) * b for a, b in itertools.pairwise(sizes))
    if params > settings.max_parameters:
        raise invalid(
            "model.hidden_layers", f"the model has {params:,} parameters; the limit is {settings.max_parameters:,}"
        )
    t = job.training
    n_train = dataset["n_samples"] * (1.0 - t.validation_fraction - t.test_fraction)
    if job.path is not None:
        # A path solves each λ once on the full training rows and once per fold.
        folds = t.cross_validation.folds if t.cross_validation is not None else 0
        lambdas = len(job.path.lambdas) if job.path.lambdas is not None else job.path.n_lambdas
        work = lambdas * (folds + 1) * dataset["n_samples"] * params
        if work > settings.max_work:
            raise invalid(
                "path.n_lambdas",
                f"lambdas x (folds + 1) x rows x parameters = {work:.3g}, over the limit of {settings.max_work:.3g}",
            )
    else:
        work = t.epochs * n_train * params
    if work > settings.max_work:
        raise invalid(
            "training.epochs",
            f"epochs x training rows x parameters = {work:.3g}, over the limit of {settings.max_work:.3g}",
        )
    if t.max_runtime_seconds > settings.max_runtime_seconds:
        raise invalid(
            "training.max_runtime_seconds", f"must be at most {settings.max_runtime_seconds:g} on this service"
        )


def check_target(job: JobSpec, dataset: dict[str, Any]) -> None:
    """The target and the feature columns exist, and the preprocessing can fill every gap in them."""
    if job.target and job.target != dataset["target_name"]:
        if job.target not in dataset["feature_names"]:
            columns = ", ".join([*dataset["feature_names"], dataset["target_name"]])
            raise invalid("target", f"no column {job.target!r} in dataset {dataset['id']!r} (columns: {columns})")
        if not dataset.get("target_numeric", True):
            raise invalid("target", f"column {dataset['target_name']!r} holds labels and cannot become a feature")
    available = _feature_columns(job, dataset)
    for name in job.features or ():
        if name not in available:
            why = "it is the target" if name == (job.target or dataset["target_name"]) else "no such column"
            raise invalid("features", f"{name!r}: {why}; columns: {', '.join(available)}")
    summaries = {c["name"]: c for c in dataset.get("columns") or ()}
    p = job.preprocessing
    for name in job.features or available:
        column = summaries.get(name)
        if column is None or not column["missing"]:
            continue
        categorical = column["type"] == "categorical"
        if (p.impute_categorical if categorical else p.impute_numeric) == "none":
            field = "preprocessing.impute_categorical" if categorical else "preprocessing.impute_numeric"
            raise invalid(field, f"column {name!r} has {column['missing']} missing value(s); 'none' cannot fill them")


def _feature_columns(job: JobSpec, dataset: dict[str, Any]) -> list[str]:
    """The dataset's feature columns once the job's target is taken out."""
    names = list(dataset["feature_names"])
    if job.target and job.target != dataset["target_name"]:
        names = [n for n in names if n != job.target] + [dataset["target_name"]]
    return names


def input_width(job: JobSpec, dataset: dict[str, Any]) -> int:
    """Model inputs the job's columns become: one per numeric column, up to ``max_categories`` per categorical one."""
    names = job.features or _feature_columns(job, dataset)
    summaries = {c["name"]: c for c in dataset.get("columns") or ()}
    p = job.preprocessing
    width = 0
    for name in names:
        column = summaries.get(name, {"type": "numeric", "missing": 0})
        if column["type"] == "categorical":
            width += min(int(column["distinct"]), p.max_categories) + (p.impute_categorical == "missing_level")
        else:
            width += 1
        width += bool(p.missing_indicators and column["missing"])
    return width


# -- lifecycle -----------------------------------------------------------------


def create(state: AppState, tenant: str, job: JobSpec, idempotency_key: str | None = None) -> dict[str, Any]:
    """Admit, store and send a job; returns its record (the earlier one for a reused idempotency key).

    A reused key whose normalized spec differs from the earlier job's is a 422 (``IdempotencyKeyReused``).

    A job the queue cannot take is discarded again and the caller gets a 503: nothing is left queued
    that no worker will ever see.
    """
    dataset = admit(state, tenant, job)
    record, created = state.jobs.create(
        tenant,
        job.normalized(),
        dataset_summary(dataset, job.target),
        max_active=state.settings.max_active_jobs,
        idempotency_key=idempotency_key,
    )
    if created and not state.catalog.exists(tenant, job.dataset):
        # The dataset was deleted between admission and now; a deletion after this point sees the job.
        state.jobs.discard(tenant, record["id"], idempotency_key)
        raise unknown_dataset(job.dataset)
    if created:
        with logs.bind(job_id=record["id"], tenant=tenant, attempt=0):
            log.info("job %s: created, queued", record["id"])
        try:
            send_run_job(state.producer, state.jobs, record["id"], max_runtime_seconds=job.training.max_runtime_seconds)
        except QUEUE_ERRORS as exc:
            log.error("could not enqueue job %s: %s", record["id"], exc)
            state.jobs.discard(tenant, record["id"], idempotency_key)
            raise queue_unavailable() from exc
    return record


def delete(state: AppState, tenant: str, job_id: str) -> None:
    """Delete a finished job: its record, its files and its cached models (409 while it is active)."""
    # Objects first: if the storage fails, the record stays and the delete can be retried.
    state.jobs.check_deletable(state.jobs.get(tenant, job_id))
    state.artifacts.delete_job(job_id)
    state.jobs.delete(tenant, job_id)
    for cached in [name for name in state.models if name == job_id or name.startswith(f"{job_id}-")]:
        state.models.pop(cached, None)


# -- the public view ---------------------------------------------------------------


def document(record: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a stored job record: :class:`JobPublic`'s fields, in its order, as plain data.

    Every value already has the type the model gives it, so validating the
    document changes nothing and :func:`job_json` may skip the model.
    """
    spec = record["spec"] or {}
    epochs = int(spec.get("training", {}).get("epochs", 0))
    done = record["epochs_done"]
    steps = record.get("path_progress")
    if spec.get("path") is not None:
        # A path reports the λ solves done of all it has to do (the path, then each fold) in place of epochs.
        done, epochs = (int(steps["done"]), int(steps["total"])) if steps else (0, 0)
    latest = record.get("latest")
    eta = eta_seconds(record)
    best = record.get("best")
    error = record.get("error")
    return {
        "id": record["id"],
        "name": record["name"],
        "status": record["status"],
        "created_at": record["created_at"],
        "started_at": record.get("started_at") or None,
        "finished_at": record.get("finished_at") or None,
        "attempt": record["attempt"],
        "queue_position": record.get("queue_position") if record["status"] == "queued" else None,
        "progress": {
            "epoch": done,
            "epochs": epochs,
            "fraction": round(done / epochs, 4) if epochs else 0.0,
            "eta_seconds": eta,
        },
        "latest_metrics": latest,
        "best_metrics": best,
        "best_epoch": int(best["epoch"]) if best else None,
        "stopped_early": record["stopped_early"],
        "stop_reason": record.get("stop_reason") or None,
        "test_metrics": record.get("test_metrics"),
        "error": {"type": str(error["type"]), "message": str(error["message"])} if error else None,
        "spec": spec,
        # Jobs stored before rows_missing_target was recorded had none left out.
        "dataset": {**record["dataset"], "rows_missing_target": record["dataset"].get("rows_missing_target", 0)}
        if record["dataset"]
        else {},
        "sweep_id": record.get("sweep_id"),
        "tags": record.get("tags") or {},
        "path": record.get("path"),
    }


def view(record: dict[str, Any]) -> JobPublic:
    """The public shape of a stored job record, as the model."""
    return JobPublic.model_validate(document(record))


def job_json(record: dict[str, Any]) -> bytes:
    """The JSON body of ``GET /v1/jobs/{id}``: what FastAPI makes of ``view(record)``, without the model.

    pydantic's own encoder, with the non-finite floats as ``null`` as the model's serializer writes them;
    ``tests/api/test_job_status.py`` checks the bytes against FastAPI's encoding of the model.
    """
    return pydantic_core.to_json(document(record), inf_nan_mode="null")
