"""Server-Sent Events: epochs arrive live; a reconnect with Last-Event-ID continues without gaps."""

from __future__ import annotations

import json

import httpx


def _events(response: httpx.Response):
    """Parse an SSE stream into (id, event, data) tuples as they arrive."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if "data" in fields:
                yield fields.get("id"), fields.get("event", "message"), json.loads(fields["data"])
            fields = {}
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")


def test_events_stream_live_and_resume_after_reconnect(api, service, wait_job):
    created = api.post(
        "/v1/jobs",
        json={
            "dataset": "digits",
            "model": {"type": "mlp", "hidden_layers": [256, 256]},
            "training": {"epochs": 30, "batch_size": 16},
        },
    )
    job_id = created.json()["id"]
    seen: list[int] = []
    statuses_while_streaming: list[str] = []
    with httpx.Client(base_url=service.url, timeout=60) as client:
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for event_id, event, data in _events(response):
                assert event == "epoch"
                assert event_id == str(data["epoch"])
                seen.append(data["epoch"])
                statuses_while_streaming.append(api.get(f"/v1/jobs/{job_id}").json()["status"])
                if len(seen) == 5:
                    break  # disconnect mid-run
        assert "running" in statuses_while_streaming  # events arrived while the job ran

        resumed: list[int] = []
        end = None
        headers = {"Last-Event-ID": str(seen[-1])}
        with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
            for _event_id, event, data in _events(response):
                if event == "end":
                    end = data
                    break
                resumed.append(data["epoch"])
    assert seen == [1, 2, 3, 4, 5]
    assert seen + resumed == list(range(1, 31))
    assert end is not None and end["status"] == "succeeded" and end["id"] == job_id


def test_events_of_a_finished_job_replay_and_end(api, wait_job):
    job_id = api.post("/v1/jobs", json={"dataset": "iris", "training": {"epochs": 4}}).json()["id"]
    wait_job(api, job_id)
    with api.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "2"}) as response:
        events = list(_events(response))
    assert [(e, d.get("epoch")) for _, e, d in events[:-1]] == [("epoch", 3), ("epoch", 4)]
    assert events[-1][1] == "end"
    assert api.get("/v1/jobs/job_00000000000000000000000000000000/events").status_code == 404
