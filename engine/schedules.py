"""Learning-rate schedules, evaluated once per epoch from the epoch index alone.

Being a pure function of the epoch, a schedule needs no state of its own in a
checkpoint: resuming at epoch k gives the same rate as running through it.
"""

from __future__ import annotations

import math

from engine.spec import TrainSpec


def learning_rate(spec: TrainSpec, epoch: int) -> float:
    """Learning rate of 0-based ``epoch``.

    Warm-up raises the rate linearly, ``lr * (epoch + 1) / (warmup + 1)``, for
    ``warmup_epochs`` epochs; the named schedule then runs over the remaining
    epochs, counted from the end of warm-up:

    - constant: ``lr``
    - step: ``lr * gamma ** (e // step_size)``
    - exponential: ``lr * gamma ** e``
    - cosine: ``min_lr + (lr - min_lr) * (1 + cos(pi * e / E)) / 2``, E the
      number of epochs after warm-up.
    """
    s = spec.lr_schedule
    lr = spec.optimizer.learning_rate
    if epoch < s.warmup_epochs:
        return lr * (epoch + 1) / (s.warmup_epochs + 1)
    e = epoch - s.warmup_epochs
    if s.name == "constant":
        return lr
    if s.name == "step":
        return lr * spec.schedule_gamma ** (e // s.step_size)
    if s.name == "exponential":
        return lr * spec.schedule_gamma**e
    if s.name == "cosine":
        span = max(spec.training.epochs - s.warmup_epochs, 1)
        return s.min_lr + (lr - s.min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(e, span) / span))
    raise ValueError(f"unknown schedule {s.name!r}")
