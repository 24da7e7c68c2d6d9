"""The recorder's sums and the collector's histograms, without Redis: what a flush writes is what a scrape reads."""

from __future__ import annotations

import pytest

from api.metrics import HISTOGRAMS, _histogram, _route
from store import metrics as stats


def test_recorded_observations_come_back_as_cumulative_buckets():
    recorder = stats.Recorder()
    values = [0.0004, 0.001, 0.003, 0.2, 0.2, 7.0, 99.0]  # 0.001 sits on a bound: buckets are "less or equal"
    for value in values:
        recorder.observe("http_request_duration_seconds", ("/v1/jobs/{job_id}",), value)
    recorder.inc("http_requests", ("GET", "/v1/jobs/{job_id}", "200"), 3)
    pending = recorder.take()
    assert recorder.take() == {}  # taken once
    assert pending[(stats.counter_key("http_requests"), "GET|/v1/jobs/{job_id}|200")] == 3
    hkey = stats.histogram_key("http_request_duration_seconds")
    stored = {field: str(value) for (key, field), value in pending.items() if key == hkey}
    help_text, labels = HISTOGRAMS["http_request_duration_seconds"]
    (sample_set,) = [_histogram("http_request_duration_seconds", help_text, labels, stored)]
    buckets = {s.labels["le"]: s.value for s in sample_set.samples if s.name.endswith("_bucket")}
    for bound in stats.BUCKETS["http_request_duration_seconds"]:
        assert buckets[stats.le_label(bound)] == sum(v <= bound for v in values), bound
    assert buckets["+Inf"] == len(values)
    total = next(s.value for s in sample_set.samples if s.name.endswith("_sum"))
    assert abs(total - sum(values)) < 1e-12


def test_a_failed_flush_keeps_the_counts_for_the_next():
    recorder = stats.Recorder()
    recorder.inc("webhook_deliveries", ("delivered",))

    class Down:
        def pipeline(self, transaction: bool = False):
            return self

        def hincrby(self, *args):
            pass

        def execute(self):
            raise stats.redis.ConnectionError("down")

    with pytest.raises(stats.redis.ConnectionError):
        recorder.flush(Down())  # type: ignore[arg-type]
    recorder.inc("webhook_deliveries", ("delivered",))
    assert recorder.take() == {(stats.counter_key("webhook_deliveries"), "delivered"): 2}


def test_route_labels_are_templates():
    class Route:
        path = "/jobs/{job_id}/weights"

        class path_regex:  # noqa: N801
            @staticmethod
            def match(path: str) -> bool:
                return path.startswith("/jobs/") and path.endswith("/weights")

    scope = {"route": Route(), "path": "/v1/jobs/job_0123/weights", "method": "GET"}
    assert _route(scope) == "/v1/jobs/{job_id}/weights"  # the prefix the router was included under
    assert _route({"path": "/v1/jobs/job_0123", "method": "GET"}) == "/v1/jobs/{job_id}"  # the raw status route
    assert _route({"path": "/v1/jobs/job_0123", "method": "DELETE"}) == "unmatched"
    assert _route({"path": "/etc/passwd", "method": "GET"}) == "unmatched"
