"""Run one attempt of a job: claim it, train with the engine, record every epoch, export.

The Celery task hands a job id to :meth:`JobRunner.run`; everything the job
needs is read back from the store. Each epoch the runner writes a checkpoint
file into this attempt's directory, then records the epoch's metrics together
with a pointer to that checkpoint in one fenced Redis step; a later attempt
resumes from the pointer, so the metrics list and the checkpoint always agree
and no epoch is recorded twice.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import redis

import engine
from engine import export
from engine.paths import job as path_job
from store import metrics
from store.errors import NotFound, StaleAttempt, StorageFull
from store.jobs import Claim
from store.jobspec import JobSpec
from store.statuses import TERMINAL
from store.storage import ObjectMissing, StorageUnavailable
from store.stores import Stores
from trainapi import logs
from trainapi.settings import Settings
from worker import pruning

log = logging.getLogger(__name__)
#: A job status the attempt ended in, its hand-back (released), why it lost or abandoned the job
#: (stale, interrupted), or why it did not run (the claim's answer, or missing).
OutcomeStatus = Literal[
    "succeeded", "failed", "cancelled", "pruned", "released", "stale", "interrupted",
    "missing", "terminal", "leased", "exhausted", "unclaimed",
]  # fmt: skip
#: How long an attempt that met a Redis outage before it claimed its job waits for Redis to come back
#: (``trainapi serve`` restarts its Redis within seconds). Before the claim no lease exists to run out,
#: and the message is already out of the queue, so giving up would leave the job queued with no message.
REDIS_OUTAGE_WAIT_SECONDS = 300.0

#: How often, at most, a running job asks Redis whether to stop (cancelled, worker draining).
STOP_POLL_SECONDS = 0.2
#: Pause before handing back a job whose attempt the object storage failed, times the attempt number.
STORAGE_BACKOFF_SECONDS = 1.0
#: The job's ETA is the median duration of this many last epochs times the epochs left.
ETA_EPOCHS = 5
#: How often, at most, a running job sends its epoch timings to Redis (store.metrics).
METRICS_FLUSH_SECONDS = 1.0


def _timestamp(iso: str | None) -> float | None:
    """Unix time of a record's ISO 8601 time, None when unset."""
    return datetime.fromisoformat(iso).timestamp() if iso else None


@dataclass
class Outcome:
    """What an attempt ended with: a job status, or why it did not run."""

    status: OutcomeStatus
    detail: str = ""
    retry_after: float = 0.0


class JobRunner:
    """Runs jobs against one store and data directory.

    Parameters
    ----------
    settings : Settings
    stores : Stores
    worker : str
        This worker's name (Celery hostname): a draining worker hands its jobs back.
    requeue : callable(job_id)
        Sends a job to the queue again (after handing it back on shutdown).
    """

    def __init__(
        self, settings: Settings, stores: Stores, worker: str = "", requeue: Callable[[str], None] | None = None
    ) -> None:
        self.settings = settings
        self.jobs = stores.jobs
        self.artifacts = stores.artifacts
        self.catalog = stores.catalog
        self.sweeps = stores.sweeps
        self.worker = worker
        self.requeue = requeue
        # Epoch and job durations for GET /metrics, sent to Redis about once a second and after each attempt.
        self.recorder = metrics.Recorder()

    def run(self, job_id: str) -> Outcome:
        """One attempt at ``job_id``; safe to call again for the same job (idempotent)."""
        with logs.bind(job_id=job_id):
            deadline = time.monotonic() + REDIS_OUTAGE_WAIT_SECONDS
            while True:
                outcome = self._run(job_id)
                if outcome.status != "unclaimed" or not self._redis_back(deadline):
                    return outcome
                log.info("job %s: Redis is back; trying the claim again", job_id)

    def _redis_back(self, deadline: float) -> bool:
        """Wait until Redis answers (True) or ``deadline`` (time.monotonic) passes (False)."""
        while time.monotonic() < deadline:
            try:
                if self.jobs.r.ping():
                    return True
            except redis.RedisError:
                pass
            time.sleep(0.5)
        return False

    def _run(self, job_id: str) -> Outcome:
        claimed = False
        try:
            record = self.jobs.load(job_id)
            if record is None:
                return Outcome("missing")
            claim = self.jobs.claim(
                job_id,
                record["tenant"],
                lease_seconds=self.settings.lease_seconds,
                max_attempts=self.settings.max_attempts,
                worker=self.worker,
                pid=os.getpid(),
            )
            if claim.outcome != "ok":
                if claim.outcome in ("terminal", "cancelled", "exhausted"):
                    self._trial_done(record)
                    self.jobs.archive_metrics(job_id)
                return Outcome(claim.outcome, retry_after=claim.retry_after)
            claimed, claimed_at = True, time.time()
            with logs.bind(tenant=record["tenant"], attempt=claim.attempt):
                log.info("job %s: attempt %d started", job_id, claim.attempt)
                try:
                    outcome = self._train(record, claim)
                except StorageUnavailable as exc:
                    outcome = self._storage_down(record, claim, exc)
                except StorageFull as exc:
                    outcome = self._storage_full(record, claim, exc)
            if outcome.status in TERMINAL:
                started = _timestamp(record.get("started_at")) or claimed_at
                self.recorder.observe("job_duration_seconds", (outcome.status,), max(time.time() - started, 0.0))
                self._trial_done(record, outcome.status)
                self.jobs.archive_metrics(job_id)
            self.send_metrics()
            return outcome
        except StaleAttempt as exc:
            log.warning("job %s: this attempt lost the job: %s", job_id, exc)
            return Outcome("stale", str(exc))
        except redis.RedisError as exc:
            if not claimed:
                log.error("job %s: Redis unreachable before the claim; waiting for it: %s", job_id, exc)
                return Outcome("unclaimed", str(exc))
            # Without Redis nothing can be recorded; the lease runs out and the job is requeued.
            log.error("job %s: Redis unreachable, abandoning this attempt: %s", job_id, exc)
            return Outcome("interrupted", str(exc))

    def send_metrics(self) -> None:
        """Send the recorded timings to Redis; kept for the next try if Redis is away (never fails the job)."""
        try:
            self.recorder.flush(self.jobs.r)
        except redis.RedisError as exc:
            log.warning("could not send metrics to Redis: %s", exc)

    def _train(self, record: dict[str, Any], claim: Claim) -> Outcome:
        job_id, tenant = record["id"], record["tenant"]
        try:
            job = JobSpec.model_validate(record["spec"])
            spec = job.engine_spec()
            dataset = self.catalog.load(tenant, job.dataset, job.target)
        except (engine.EngineError, NotFound, ValueError) as exc:
            return self._fail(record, claim, exc)
        if spec.path is not None:
            return self._fit_path(record, claim, spec, dataset)

        resume = self._checkpoint(record)
        progress = _Progress(self, record, claim)
        result: engine.TrainResult | None = None
        try:
            result = engine.train(
                spec, dataset, on_epoch=progress.on_epoch, should_stop=progress.should_stop, resume_from=resume
            )
            stop_reason = result.stop_reason
        except engine.TrainingStopped as exc:
            if exc.reason not in ("cancelled", "stale", "shutdown", "pruned"):
                return self._fail(record, claim, exc)
            stop_reason = exc.reason
        except engine.EngineError as exc:
            return self._fail(record, claim, exc)
        if progress.stale is not None:
            raise progress.stale
        if stop_reason == "cancelled":
            kept = {}
            if result is not None and self._keep_cancelled(job_id, claim.attempt, result, progress):
                kept = {"weights_attempt": claim.attempt}
            self.jobs.finish(job_id, tenant, claim.token, "cancelled", **kept)
            self._delete_leftovers(job_id, claim.attempt if kept else None)
            return Outcome("cancelled")
        if stop_reason == "pruned":
            self.jobs.finish(
                job_id,
                tenant,
                claim.token,
                "pruned",
                latest=progress.latest,
                best=progress.best(progress.best_epoch, progress.history),
                best_epoch=progress.best_epoch or "",
                stop_reason="pruned",
            )
            log.info("job %s: pruned after epoch %d", job_id, progress.epochs_done)
            return Outcome("pruned")
        if stop_reason == "shutdown":
            # The worker is stopping: the last epoch's checkpoint is recorded; hand the job back.
            self._hand_back(job_id, claim)
            log.info("job %s: handed back at epoch %d (worker shutting down)", job_id, progress.epochs_done)
            return Outcome("released")

        assert result is not None  # every stop without a result returned above
        model = export.to_model(result)
        self._store_weights(job_id, claim.attempt, model)
        self.jobs.finish(
            job_id,
            tenant,
            claim.token,
            "succeeded",
            weights_attempt=claim.attempt,
            latest=result.final_metrics,
            best=progress.best(result.best_epoch, result.history),
            best_epoch=result.best_epoch or "",
            stopped_early=result.stopped_early,
            stop_reason=result.stop_reason or "",
            test_metrics=result.test_metrics,
        )
        self._delete_leftovers(job_id, claim.attempt)
        log.info("job %s: succeeded after %d epochs", job_id, len(result.history))
        return Outcome("succeeded")

    def _store_weights(self, job_id: str, attempt: int, model: Any) -> None:
        """The model in every stored format, each one whole object; the record names this attempt's only after
        all of them exist."""
        for fmt in export.FORMATS:
            self.artifacts.storage.put(self.artifacts.weights_key(job_id, attempt, fmt), export.dumps(model, fmt))

    def _hand_back(self, job_id: str, claim: Claim) -> None:
        """The worker is stopping: release the job and send it to the queue again."""
        self.jobs.release(job_id, claim.token)
        if self.requeue is not None:
            self.requeue(job_id)

    def _fit_path(
        self, record: dict[str, Any], claim: Claim, spec: engine.TrainSpec, dataset: engine.Dataset
    ) -> Outcome:
        """A regularization path: fit and validate it, store it and the model at ``select``, finish.

        The computation is deterministic and leaves no checkpoint: an attempt after a lost one computes it
        again, to the same result.
        """
        job_id, tenant = record["id"], record["tenant"]
        progress = _PathProgress(self, record, claim, path_job.steps(spec, path_job.n_lambdas(spec)))
        started = time.monotonic()
        try:
            result = path_job.run(spec, dataset, on_lambda=progress.on_lambda)
        except engine.TrainingStopped as exc:
            if exc.reason == "stale":
                raise progress.stale or StaleAttempt(f"attempt no longer owns job {job_id}") from None
            if exc.reason == "cancelled":
                self.jobs.finish(job_id, tenant, claim.token, "cancelled")
                self._delete_leftovers(job_id, None)
                return Outcome("cancelled")
            if exc.reason == "shutdown":
                self._hand_back(job_id, claim)
                log.info("job %s: path handed back (worker shutting down)", job_id)
                return Outcome("released")
            limit = record["spec"]["training"]["max_runtime_seconds"]
            error = {"type": "time_limit", "message": f"the path did not finish within max_runtime_seconds ({limit:g})"}
            self.jobs.finish(job_id, tenant, claim.token, "failed", error=error)
            return Outcome("failed", error["message"])
        except engine.EngineError as exc:
            return self._fail(record, claim, exc)
        document = result.to_dict()
        self.artifacts.storage.put(
            self.artifacts.path_key(job_id, claim.attempt), json.dumps(document, allow_nan=False).encode()
        )
        model = path_job.point_model(result, result.index)
        self._store_weights(job_id, claim.attempt, model)
        self.jobs.finish(
            job_id,
            tenant,
            claim.token,
            "succeeded",
            weights_attempt=claim.attempt,
            path=result.summary(),
            path_progress={"done": progress.total, "total": progress.total},
            test_metrics=result.test_metrics,
        )
        self._delete_leftovers(job_id, claim.attempt)
        log.info(
            "job %s: path of %d λ succeeded in %.2f s", job_id, len(result.path.lambdas), time.monotonic() - started
        )
        return Outcome("succeeded")

    def _keep_cancelled(self, job_id: str, attempt: int, result: engine.TrainResult, progress: _Progress) -> bool:
        """Write a cancelled run's last and best completed epochs as ``weights-{last,best}.npz``.

        Their metadata says which under ``checkpoint``. The last epoch's parameters are read back from its
        checkpoint (the engine hands back the best ones when early stopping restores them); the best
        epoch's are the engine's own copy (``restore_best``) or the one this attempt kept. Returns False
        when nothing was written (no epoch's checkpoint).
        """
        if progress.last_checkpoint is None:
            return False
        try:
            last = self.artifacts.storage.get(progress.last_checkpoint)
        except ObjectMissing:
            return False
        trainer = engine.Trainer(result.spec, result.data)
        trainer.restore(last)
        best_params = trainer.early.best_params
        if best_params is None and progress.best_params_epoch == trainer.early.best_epoch:
            best_params = progress.best_params
        kept = [("last", trainer.epoch, trainer.network.params.copy())]
        if best_params is not None and trainer.early.best_epoch:
            kept.append(("best", trainer.early.best_epoch, best_params))
        for which, epoch, params in kept:
            trainer.network.params[:] = params
            model = export.to_model(
                dataclasses.replace(
                    result,
                    network=trainer.network,
                    final_metrics=dict(result.history[epoch - 1]),
                    best_epoch=trainer.early.best_epoch,
                    test_metrics=None,
                )
            )
            model.metadata["checkpoint"] = {"which": which, "epoch": epoch, "job_status": "cancelled"}
            self.artifacts.storage.put(
                self.artifacts.checkpoint_weights_key(job_id, attempt, which), export.dumps(model, "npz")
            )
        return True

    def _checkpoint(self, record: dict[str, Any]) -> bytes | None:
        pointer = record.get("checkpoint")
        if not pointer:
            return None
        try:
            blob = self.artifacts.storage.get(
                self.artifacts.checkpoint_key(record["id"], pointer["attempt"], pointer["epoch"])
            )
        except ObjectMissing:
            log.warning("job %s: its checkpoint %s is gone; starting over", record["id"], pointer)
            return None
        log.info(
            "job %s: resuming from the checkpoint of epoch %d (attempt %d)",
            record["id"],
            int(pointer["epoch"]),
            int(pointer["attempt"]),
        )
        return blob

    def _fail(self, record: dict[str, Any], claim: Claim, exc: Exception) -> Outcome:
        if isinstance(exc, engine.EngineError):
            kind = exc.code
        else:  # the upload is gone, or its stored record does not parse as a spec
            kind = "dataset_not_found" if isinstance(exc, NotFound) else "training_error"
        message = str(exc)
        error = {"type": kind, "message": message}
        self.jobs.finish(record["id"], record["tenant"], claim.token, "failed", error=error)
        log.info("job %s: failed (%s): %s", record["id"], kind, message)
        return Outcome("failed", message)

    def _trial_done(self, record: dict[str, Any], status: str = "") -> None:
        """A sweep trial ended: free its slot, send the sweep's next trials, mark its importance figures due."""
        sweep_id = record.get("sweep_id")
        if not sweep_id:
            return
        if status == "succeeded":
            self.sweeps.importance_due(sweep_id)
        self.sweeps.trial_ended(sweep_id, record["id"])
        for trial in self.sweeps.dispatch(sweep_id):
            if self.requeue is not None:
                self.requeue(trial)

    def _storage_down(self, record: dict[str, Any], claim: Claim, exc: StorageUnavailable) -> Outcome:
        """The object storage failed this attempt: hand the job back for another, or fail it after the last."""
        job_id = record["id"]
        if claim.attempt >= self.settings.max_attempts:
            error = {
                "type": "storage_unavailable",
                "message": f"object storage failed in each of {claim.attempt} attempts; the last error: {exc}",
            }
            self.jobs.finish(job_id, record["tenant"], claim.token, "failed", error=error)
            log.error("job %s: failed: %s", job_id, error["message"])
            return Outcome("failed", error["message"])
        time.sleep(STORAGE_BACKOFF_SECONDS * claim.attempt)  # give the storage time before the next attempt
        self.jobs.release(job_id, claim.token)
        if self.requeue is not None:
            self.requeue(job_id)
        log.warning("job %s: attempt %d handed back, object storage failed: %s", job_id, claim.attempt, exc)
        return Outcome("released", str(exc))

    def _storage_full(self, record: dict[str, Any], claim: Claim, exc: StorageFull) -> Outcome:
        """No room left for this attempt's checkpoints or weights: fail the job now (another attempt would
        meet the same full disk) and delete what the attempt wrote, so that the failure frees what it took."""
        job_id = record["id"]
        message = f"{exc}: the service's storage is full; free space (or ask the operator to), then run the job again"
        self.jobs.finish(
            job_id, record["tenant"], claim.token, "failed", error={"type": "storage_full", "message": message}
        )
        self._delete_leftovers(job_id, None)
        log.error("job %s: failed: %s", job_id, message)
        return Outcome("failed", message)

    def _delete_leftovers(self, job_id: str, attempt: int | None) -> None:
        """Checkpoints and other attempts' objects; a storage failure here only leaves them for the job's deletion."""
        try:
            self.artifacts.delete_leftovers(job_id, attempt)
        except StorageUnavailable as exc:
            log.warning("job %s: could not delete its checkpoints yet: %s", job_id, exc)


class _PathProgress:
    """The ``on_lambda`` callback of a path attempt: keep the lease, record progress, stop when asked.

    At most every :data:`STOP_POLL_SECONDS` it renews the lease with the λ solves done so far and asks
    whether to stop; a stop raises :class:`engine.TrainingStopped` out of the solver.
    """

    def __init__(self, runner: JobRunner, record: dict[str, Any], claim: Claim, total: int) -> None:
        self.runner, self.job_id, self.claim, self.total = runner, record["id"], claim, total
        self.done = 0
        self.stale: StaleAttempt | None = None
        self._next_poll = 0.0
        self._deadline = time.monotonic() + float(record["spec"]["training"]["max_runtime_seconds"])

    def on_lambda(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + STOP_POLL_SECONDS
        runner = self.runner
        try:
            runner.jobs.renew(
                self.job_id,
                self.claim.token,
                lease_seconds=runner.settings.lease_seconds,
                progress={"done": self.done, "total": self.total},
            )
        except StaleAttempt as exc:
            self.stale = exc
            raise engine.TrainingStopped("stale") from exc
        reason = runner.jobs.stop_requested(self.job_id, runner.worker)
        if reason is not None:
            raise engine.TrainingStopped(reason)
        if now > self._deadline:
            raise engine.TrainingStopped("max_runtime_seconds")


class _Progress:
    """The engine callbacks of one attempt: record epochs, poll for stop requests, keep the lease."""

    def __init__(self, runner: JobRunner, record: dict[str, Any], claim: Claim) -> None:
        self.runner = runner
        self.job_id = record["id"]
        self.claim = claim
        self.stale: StaleAttempt | None = None
        self._next_poll = 0.0
        self.epochs_done = record["epochs_done"]
        self._next_renew = time.monotonic() + runner.settings.lease_seconds / 3
        self.prune = False
        self.latest: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.best_epoch: int | None = None
        self.sweep_id: str | None = record.get("sweep_id")
        self.sweep = runner.sweeps.config(self.sweep_id) if self.sweep_id else None
        self.epochs = int(record["spec"]["training"]["epochs"])
        self.model = str(record["spec"]["model"]["type"])
        self.last_checkpoint: str | None = None
        # The best epoch's parameters when the engine does not keep them (no ``restore_best``).
        self.best_params: np.ndarray | None = None
        self.best_params_epoch: int | None = None
        self._previous: int | None = (record.get("checkpoint") or {}).get("epoch")
        self._previous_attempt: int | None = (record.get("checkpoint") or {}).get("attempt")

    def on_epoch(self, metrics: dict[str, Any], trainer: engine.Trainer) -> None:
        runner, epoch = self.runner, metrics["epoch"]
        artifacts = runner.artifacts
        checkpoint_key = artifacts.checkpoint_key(self.job_id, self.claim.attempt, epoch)
        artifacts.storage.put(checkpoint_key, trainer.checkpoint())
        best = self.best(trainer.early.best_epoch, trainer.history)
        try:
            runner.jobs.append_metric(
                self.job_id,
                self.claim.token,
                metrics,
                lease_seconds=runner.settings.lease_seconds,
                best=best,
                checkpoint={"attempt": self.claim.attempt, "epoch": epoch},
                epoch_seconds_recent=statistics.median(r["epoch_seconds"] for r in trainer.history[-ETA_EPOCHS:]),
            )
        except StaleAttempt as exc:
            self.stale = exc
            return
        self.epochs_done = epoch
        recorder = runner.recorder
        recorder.observe("epoch_seconds", (self.model,), float(metrics["epoch_seconds"]))
        if recorder.due(METRICS_FLUSH_SECONDS):
            runner.send_metrics()
        self.last_checkpoint = checkpoint_key
        if trainer.early.best_epoch == epoch and trainer.early.best_params is None:
            self.best_params, self.best_params_epoch = trainer.network.params.copy(), epoch
        self.latest, self.history, self.best_epoch = metrics, trainer.history, trainer.early.best_epoch
        if self.sweep is not None:
            self._report_to_sweep(epoch, trainer.history)
        self._next_renew = time.monotonic() + runner.settings.lease_seconds / 3
        if self._previous is not None and self._previous_attempt is not None:
            try:
                artifacts.storage.delete(artifacts.checkpoint_key(self.job_id, self._previous_attempt, self._previous))
            except StorageUnavailable as exc:  # an orphan until the job finishes or is deleted
                log.warning("job %s: could not delete the previous checkpoint: %s", self.job_id, exc)
        self._previous, self._previous_attempt = epoch, self.claim.attempt

    def _report_to_sweep(self, epoch: int, history: list[dict[str, Any]]) -> None:
        """Record this trial's best objective so far, and decide whether the sweep's pruner stops it."""
        assert self.sweep is not None and self.sweep_id is not None
        sweeps, objective, rule = self.runner.sweeps, self.sweep["objective"], self.sweep["pruning"]
        smaller = objective.get("mode", "min") == "min"
        cost, best_epoch = pruning.best_so_far(history, objective["metric"], smaller)
        at_best = history[best_epoch - 1]
        gap = None
        if at_best.get("val_loss") is not None and at_best.get("train_loss") is not None:
            gap = at_best["val_loss"] - at_best["train_loss"]
        sweeps.record_best(
            self.sweep_id, self.job_id, {"objective": at_best.get(objective["metric"]), "epoch": best_epoch, "gap": gap}
        )
        if rule is None or epoch >= self.epochs or epoch < rule["grace_epochs"]:
            return
        if rule["type"] == "median":
            reported = sweeps.report(self.sweep_id, self.job_id, "curve", epoch, cost)
            others = [value for trial, value in reported.items() if trial != self.job_id]
            self.prune = pruning.median_stops(cost, others, rule["min_trials"])
        elif epoch in pruning.asha_rungs(rule["grace_epochs"], rule["reduction_factor"], self.epochs):
            reported = sweeps.report(self.sweep_id, self.job_id, "rung", epoch, cost)
            self.prune = pruning.asha_stops(cost, list(reported.values()), rule["reduction_factor"], rule["min_trials"])

    def should_stop(self) -> str | None:
        if self.stale is not None:
            return "stale"
        if self.prune:
            return "pruned"
        now = time.monotonic()
        if now >= self._next_renew:
            try:
                self.runner.jobs.renew(self.job_id, self.claim.token, lease_seconds=self.runner.settings.lease_seconds)
            except StaleAttempt as exc:
                self.stale = exc
                return "stale"
            self._next_renew = now + self.runner.settings.lease_seconds / 3
        if now >= self._next_poll:
            self._next_poll = now + STOP_POLL_SECONDS
            return self.runner.jobs.stop_requested(self.job_id, self.runner.worker)
        return None

    @staticmethod
    def best(best_epoch: int | None, history: list[dict[str, Any]]) -> dict[str, Any] | None:
        if best_epoch is None or best_epoch < 1 or best_epoch > len(history):
            return None
        return dict(history[best_epoch - 1])
