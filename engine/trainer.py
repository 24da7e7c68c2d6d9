"""The training loop: mini-batches, penalties, schedules, metrics, early stopping.

:func:`train` is the engine's entry point. It takes a validated spec and a
dataset, reports one metrics record per epoch through ``on_epoch`` (together
with the trainer, whose :meth:`Trainer.checkpoint` serializes the full state)
and polls ``should_stop`` every few batches so a caller can cancel or enforce
a deadline. Given the same spec, data and seed it produces bit-identical
parameters and metrics (timings aside), also when resumed from a checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine import checkpoint, losses, metrics, optimizers, penalties, schedules
from engine.datasets import Dataset
from engine.errors import DivergenceError, TrainingStopped
from engine.network import Network
from engine.preprocessing import PreparedData, prepare
from engine.spec import MONITORS, TrainSpec

#: ``should_stop`` is polled every this many batches (and at every epoch end).
CHECK_EVERY_BATCHES = 16

#: A run has diverged when an epoch's train loss exceeds this multiple of its reference:
#: the train loss of the initialized network, before any update, or :data:`DIVERGENCE_LOSS_FLOOR`
#: if that is smaller. The reference is taken before training because a learning rate far
#: too large has usually blown the loss up by many orders of magnitude within the first epoch.
#: Losses are means over samples and (for regression) of standardized targets, so a healthy
#: run stays within a few multiples of where it started whatever the data's scale.
DIVERGENCE_FACTOR = 1e6

#: Lower bound of the divergence reference, so a near-zero starting loss does not make
#: ordinary fluctuations look like divergence.
DIVERGENCE_LOSS_FLOOR = 1e-3

EpochCallback = Callable[[dict[str, Any], "Trainer"], None]
StopCallback = Callable[[], "str | None"]


@dataclass
class EarlyStopState:
    """Best value of the monitored metric so far and the patience counter."""

    best: float | None = None
    best_epoch: int | None = None
    wait: int = 0
    best_params: np.ndarray | None = None


@dataclass
class TrainResult:
    """What a finished (or stopped) run leaves.

    ``network`` holds the final parameters (the best epoch's when early
    stopping restored them). ``stop_reason`` is None when all epochs ran,
    ``"early_stopping"``, ``"max_runtime"``, or whatever ``should_stop``
    returned.
    """

    spec: TrainSpec
    network: Network
    data: PreparedData
    history: list[dict[str, Any]]
    best_epoch: int | None
    stop_reason: str | None
    test_metrics: dict[str, float] | None = None
    final_metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def stopped_early(self) -> bool:
        return self.stop_reason == "early_stopping"


class Trainer:
    """State of one training run; use :func:`train` unless you need to step it yourself."""

    def __init__(self, spec: TrainSpec, data: PreparedData) -> None:
        self.spec = spec
        self.data = data
        self.dtype = np.dtype(spec.dtype_name)
        sizes = [data.n_features, *self._hidden(), data.n_outputs]
        head = losses.head_for(data.task, 1 if data.classes is None else len(data.classes))
        self.network = Network(sizes, spec.model.activation, head, self.dtype)
        self.rng = np.random.default_rng([spec.training.seed, 1])
        self.network.initialize(self.rng)
        net = self.network
        # With L2 the gradients are formed at a scale that folds the L2 term into one pass.
        self.grad_scale = penalties.l2_gradient_scale(spec.regularization.l2)
        self.optimizer = optimizers.create(
            spec.optimizer, net.params.size, net.n_weights, self.dtype, grad_scale=self.grad_scale
        )
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, Any]] = []
        es = spec.training.early_stopping
        default_monitor = "val_loss" if len(data.y_val) else "train_loss"
        self.monitor = es.monitor if es is not None else default_monitor
        self.early = EarlyStopState()
        self._completed_params = net.params.copy()
        self._epoch_started = time.perf_counter()
        self._prox_scratch = np.zeros(net.n_weights, dtype=self.dtype)
        batch = min(spec.training.batch_size, len(data.y_train))
        self._xb = np.zeros((batch, data.n_features), dtype=self.dtype)
        # The same seed initializes the same parameters, so a resumed run computes the same value.
        self.initial_loss = self._train_loss()

    def _train_loss(self) -> float:
        """Mean data loss of the current parameters on the train split (no dropout, no penalty)."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return losses.loss(self.network.head, self.network.forward(self.data.X_train), self.data.y_train)

    @property
    def divergence_threshold(self) -> float:
        """The train loss past which a run counts as diverged (see :data:`DIVERGENCE_FACTOR`).

        Infinite when the initial loss is not finite (nothing to compare with; NaN and
        infinite losses still count as divergence).
        """
        reference = self.initial_loss
        if not math.isfinite(reference):
            return math.inf
        return DIVERGENCE_FACTOR * max(reference, DIVERGENCE_LOSS_FLOOR)

    def _hidden(self) -> list[int]:
        return list(self.spec.model.hidden_layers) if self.spec.model.type == "mlp" else []

    # -- the loop ----------------------------------------------------------

    def run(
        self,
        on_epoch: EpochCallback | None = None,
        should_stop: StopCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> TrainResult:
        """Train from the current epoch to the end, or until stopped."""
        t = self.spec.training
        deadline = clock() + t.max_runtime_seconds
        stop_reason: str | None = None

        def poll() -> str | None:
            if clock() > deadline:
                return "max_runtime"
            return should_stop() if should_stop is not None else None

        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            while self.epoch < t.epochs:
                stop_reason = poll()
                if stop_reason is None:
                    stop_reason = self.train_pass(poll)
                if stop_reason is not None:
                    # A part-trained epoch has no metrics record: go back to the last whole one.
                    self.network.params[:] = self._completed_params
                    break
                record = self.end_epoch()
                if on_epoch is not None:
                    on_epoch(record, self)
                if self._should_stop_early():
                    stop_reason = "early_stopping"
                    break
        if not self.history:
            raise TrainingStopped(stop_reason or "unknown")
        es = t.early_stopping
        if es is not None and es.restore_best and self.early.best_params is not None:
            self.network.params[:] = self.early.best_params
        return self._result(stop_reason)

    def train_pass(self, poll: Callable[[], str | None] | None = None) -> str | None:
        """One pass over the shuffled training batches: forward, backward, penalties, update.

        ``poll`` is called every :data:`CHECK_EVERY_BATCHES` batches; when it
        returns a reason the pass stops there and returns it.
        """
        t, r = self.spec.training, self.spec.regularization
        net, data, opt = self.network, self.data, self.optimizer
        self._epoch_started = time.perf_counter()
        lr = schedules.learning_rate(self.spec, self.epoch)
        dropout = r.hidden_dropout(len(self._hidden()))
        n = len(data.y_train)
        order = self.rng.permutation(n) if t.shuffle else np.arange(n)
        l1, l2, n_w = r.l1, r.l2, net.n_weights
        for b, start in enumerate(range(0, n, t.batch_size)):
            if poll is not None and b and b % CHECK_EVERY_BATCHES == 0:
                reason = poll()
                if reason is not None:
                    return reason
            rows = order[start : start + t.batch_size]
            # mode="clip": with the default "raise", np.take gathers into a temporary and copies.
            xb = np.take(data.X_train, rows, axis=0, out=self._xb[: len(rows)], mode="clip")
            yb = data.y_train[rows]
            net.train_batch(xb, yb, self.rng, r.input_dropout, dropout, self.grad_scale)
            penalties.add_l2_gradient(net.params[:n_w], net.grads[:n_w], l2, self._prox_scratch, self.grad_scale)
            opt.step(net.params, net.grads, lr)
            if l1:
                threshold = opt.l1_threshold(lr, l1)
                penalties.soft_threshold(net.params[:n_w], threshold, self._prox_scratch)
        return None

    def end_epoch(self) -> dict[str, Any]:
        """Close the epoch after :meth:`train_pass`: evaluate, check divergence, record metrics."""
        self.epoch += 1
        trained = time.perf_counter()
        record = self.evaluate()
        record["learning_rate"] = schedules.learning_rate(self.spec, self.epoch - 1)
        train_seconds = trained - self._epoch_started
        record["epoch_seconds"] = time.perf_counter() - self._epoch_started
        record["samples_per_second"] = len(self.data.y_train) / train_seconds if train_seconds > 0 else None
        record["timestamp"] = time.time()
        self._check_divergence(record["train_loss"])
        self.history.append(record)
        self._completed_params[:] = self.network.params
        self._update_best(record)
        return record

    def _check_divergence(self, train_loss: float) -> None:
        advice = "lower optimizer.learning_rate or add regularization"
        if not (math.isfinite(train_loss) and np.isfinite(self.network.params).all()):
            raise DivergenceError(self.epoch, f"the loss or a weight became NaN or infinite; {advice}")
        if train_loss > self.divergence_threshold:
            raise DivergenceError(
                self.epoch,
                f"the train loss grew to {train_loss:.3g}, more than {DIVERGENCE_FACTOR:.0e} times its value "
                f"before training ({max(self.initial_loss, DIVERGENCE_LOSS_FLOOR):.3g}); {advice}",
            )

    def evaluate(self) -> dict[str, Any]:
        """Metrics of the current parameters on the train and validation splits (no dropout)."""
        net, data, r = self.network, self.data, self.spec.regularization
        w = net.params[: net.n_weights]
        train = self._split_metrics(data.X_train, data.y_train)
        val = self._split_metrics(data.X_val, data.y_val)
        record: dict[str, Any] = {"epoch": self.epoch, "train_loss": train.pop("loss"), "val_loss": val.pop("loss")}
        record.update(train)
        record.update({f"val_{key}": value for key, value in val.items()})
        record["penalty"] = penalties.value(w, r.l1, r.l2)
        record["weight_l2_norm"] = float(np.sqrt(np.dot(w, w)))
        record["sparsity"] = float(np.count_nonzero(w == 0.0) / w.size) if w.size else 0.0
        return record

    def _split_metrics(self, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        net, data = self.network, self.data
        if len(y) == 0:
            keys = ("accuracy",) if data.task == "classification" else ("r2", "mae")
            return {"loss": None, **dict.fromkeys(keys)}
        z = net.forward(X)
        out: dict[str, Any] = {"loss": losses.loss(net.head, z, y)}
        if data.task == "classification":
            out["accuracy"] = metrics.accuracy(net.head, z, y)
        else:
            pred, target = z[:, 0].astype(np.float64), y.astype(np.float64)
            if data.y_scaler is not None:
                mean, std = float(data.y_scaler.mean[0]), float(data.y_scaler.std[0])
                pred, target = pred * std + mean, target * std + mean
            out["r2"] = metrics.r2(pred, target)
            out["mae"] = metrics.mae(pred, target)
        return out

    # -- early stopping ----------------------------------------------------

    def _update_best(self, record: dict[str, Any]) -> None:
        value = record.get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        es = self.spec.training.early_stopping
        min_delta = es.min_delta if es is not None else 0.0
        smaller_is_better = MONITORS[self.monitor]
        best = self.early.best
        improved = best is None or (value < best - min_delta if smaller_is_better else value > best + min_delta)
        if improved:
            self.early.best, self.early.best_epoch, self.early.wait = value, self.epoch, 0
            if es is not None and es.restore_best:
                self.early.best_params = self.network.params.copy()
        else:
            self.early.wait += 1

    def _should_stop_early(self) -> bool:
        es = self.spec.training.early_stopping
        return es is not None and self.early.wait >= es.patience

    def _result(self, stop_reason: str | None) -> TrainResult:
        test_metrics = None
        if len(self.data.y_test):
            test_metrics = self._split_metrics(self.data.X_test, self.data.y_test)
        final = dict(self.history[-1])
        return TrainResult(
            spec=self.spec,
            network=self.network,
            data=self.data,
            history=self.history,
            best_epoch=self.early.best_epoch,
            stop_reason=stop_reason,
            test_metrics=test_metrics,
            final_metrics=final,
        )

    # -- checkpoints -------------------------------------------------------

    def checkpoint(self) -> bytes:
        """The complete training state after the last completed epoch, as bytes."""
        return checkpoint.dump(self)

    def restore(self, blob: bytes) -> None:
        """Continue from a :meth:`checkpoint` of a run with the same spec and data."""
        checkpoint.load(self, blob)
        self._completed_params[:] = self.network.params


def train(
    spec: TrainSpec,
    dataset: Dataset,
    *,
    on_epoch: EpochCallback | None = None,
    should_stop: StopCallback | None = None,
    resume_from: bytes | None = None,
) -> TrainResult:
    """Train the model ``spec`` describes on ``dataset``.

    Parameters
    ----------
    spec : TrainSpec
        A validated specification (see :meth:`TrainSpec.from_dict`).
    dataset : Dataset
        Features of shape (n_samples, n_features) and targets of shape (n_samples,).
    on_epoch : callable(record, trainer), optional
        Called after every epoch with the metrics record (a JSON-able dict)
        and the trainer; ``trainer.checkpoint()`` gives the state to save.
    should_stop : callable() -> str or None, optional
        Polled every few batches; a non-None return stops training at the
        last completed epoch and becomes ``TrainResult.stop_reason``.
    resume_from : bytes, optional
        A checkpoint; training continues after its epoch, bit-identical to a
        run that was never interrupted.

    Returns
    -------
    TrainResult

    Raises
    ------
    DivergenceError
        The loss or a parameter became non-finite, or the train loss grew past
        :data:`DIVERGENCE_FACTOR` times its value before training.
    DatasetError, CheckpointError, EngineError
    """
    data = prepare(
        dataset,
        spec.task,
        spec.training.validation_fraction,
        spec.training.test_fraction,
        spec.training.standardize,
        spec.training.seed,
        spec.dtype_name,
        features=spec.features,
        preprocessing=spec.preprocessing,
    )
    trainer = Trainer(spec, data)
    if resume_from is not None:
        trainer.restore(resume_from)
    return trainer.run(on_epoch=on_epoch, should_stop=should_stop)
