"""The job view's progress estimate and queue position, from records as the store returns them."""

from __future__ import annotations

from typing import Any

from api.services.jobs import dataset_summary, document, view
from store.catalog import builtin
from store.jobspec import JobSpec


def _record(**fields: Any) -> dict[str, Any]:
    record = {
        "id": "job_" + "0" * 32,
        "name": "eta",
        "status": "running",
        "created_at": "2026-12-01T00:00:00.000Z",
        "attempt": 1,
        "epochs_done": 10,
        "latest": {"epoch": 10, "epoch_seconds": 26.4},  # one slow epoch after nine of about 1.3 s
        "best": None,
        "stopped_early": False,
        "spec": JobSpec.model_validate({"dataset": "iris", "training": {"epochs": 20}}).normalized(),
        "dataset": dataset_summary(builtin("iris")),
        "tags": {},
    }
    return {**record, **fields}


def test_eta_uses_the_median_of_recent_epochs_not_the_last_one():
    assert document(_record(epoch_seconds_recent="1.3"))["progress"]["eta_seconds"] == 13.0
    assert document(_record())["progress"]["eta_seconds"] == 264.0  # a record from before the median was kept
    assert document(_record(status="succeeded", epoch_seconds_recent="1.3"))["progress"]["eta_seconds"] is None


def test_queue_position_only_while_queued():
    assert view(_record(status="queued", epochs_done=0, latest=None, queue_position=3)).queue_position == 3
    assert document(_record(queue_position=3))["queue_position"] is None  # running: no position
    assert document(_record(status="queued", latest=None))["queue_position"] is None  # not known
