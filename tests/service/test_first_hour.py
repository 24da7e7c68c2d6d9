"""What a newcomer meets in the first hour, through the real service: no quietly wrong answers.

A runaway loss fails the job, a European CSV reads as numbers, Excel's ``sep=`` line is honoured,
an idempotency key cannot silently stand for two bodies, and a request body not sent as JSON or with
a misspelt field says what to do.
"""

from __future__ import annotations

import uuid

import pytest

# A European export, as Excel writes it with its delimiter declared: semicolons and decimal commas.
EUROPEAN = (
    "\ufeffsep=;\r\n"
    "surface;rooms;city;price\r\n"
    "80,5;3;Lyon;250000,5\r\n"
    "45;2;Paris;310000\r\n"
    "120,25;5;Lille;199000,75\r\n"
    "NA;1;Paris;150000\r\n"
    "64,75;3;Lyon;180500,25\r\n"
).encode()


def _upload(api, data: bytes, **form: str):
    return api.post("/v1/datasets", files={"file": ("export.csv", data, "text/csv")}, data=form)


def test_a_runaway_loss_fails_the_job_as_diverged(api, wait_job):
    # Full-batch SGD at learning rate 50: the loss grows ~1e5 times an epoch yet stays finite for all
    # 50 epochs (1e258 at the end); the job used to end "succeeded".
    created = api.post(
        "/v1/jobs",
        json={
            "dataset": "diabetes",
            "model": {"type": "linear"},
            "optimizer": {"name": "sgd", "learning_rate": 50},
            "training": {"batch_size": 512},
        },
    )
    assert created.status_code == 202, created.text
    job = wait_job(api, created.json()["id"])
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "diverged"
    assert "train loss grew to" in job["error"]["message"] and "learning_rate" in job["error"]["message"]


def test_decimal_commas_read_as_numbers_like_decimal_comma_given(api):
    detected = _upload(api, EUROPEAN, name="detected")
    given = _upload(api, EUROPEAN, name="given", decimal=",")
    as_text = _upload(api, EUROPEAN, name="as-text", decimal=".")
    for response in (detected, given, as_text):
        assert response.status_code == 201, response.text
    d, g, t = detected.json(), given.json(), as_text.json()
    assert d["feature_names"] == ["surface", "rooms", "city"] and d["target_name"] == "price"
    assert d["columns"] == g["columns"]
    assert {c["name"]: c["type"] for c in d["columns"]}["surface"] == "numeric"
    assert d["task"] == g["task"] == "regression"
    assert d["notes"] == [
        "2 columns ('surface', 'price') use a decimal comma (as in 22,5) and were read as numbers; "
        "send decimal=. to keep such columns as text"
    ]
    assert g["notes"] == [] and t["notes"] == []
    assert {c["name"]: c["type"] for c in t["columns"]}["surface"] == "categorical"
    rows = [api.get(f"/v1/datasets/{body['id']}/rows", params={"limit": 5}).json() for body in (d, g)]
    assert rows[0]["rows"] == rows[1]["rows"]
    assert rows[0]["rows"][0][:2] == [80.5, 3.0]


def test_an_excel_sep_line_declares_the_delimiter(api):
    data = b"sep=;\r\na;b;label\r\n1;x;yes\r\n2;y;no\r\n3;x;yes\r\n"
    response = _upload(api, data)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["feature_names"] == ["a", "b"] and body["target_name"] == "label"
    assert [c["type"] for c in body["columns"]] == ["numeric", "categorical", "categorical"]


def test_an_idempotency_key_stands_for_one_body(api):
    key = {"Idempotency-Key": f"first-hour-{uuid.uuid4().hex}"}
    body = {"dataset": "iris", "training": {"epochs": 1}}
    first = api.post("/v1/jobs", json=body, headers=key)
    assert first.status_code == 202, first.text
    # The same body, and one that only spells out a default, are the same request: the same job.
    again = api.post("/v1/jobs", json=body, headers=key)
    spelled_out = api.post("/v1/jobs", json={**body, "training": {"epochs": 1, "batch_size": 64}}, headers=key)
    assert again.status_code == spelled_out.status_code == 202
    assert again.json()["id"] == spelled_out.json()["id"] == first.json()["id"]

    other = api.post("/v1/jobs", json={**body, "training": {"epochs": 2}}, headers=key)
    assert other.status_code == 422, other.text
    assert other.headers["content-type"] == "application/problem+json"
    problem = other.json()
    assert problem["errors"] == [{"field": "Idempotency-Key", "message": "already used with a different request body"}]
    assert key["Idempotency-Key"] in problem["detail"] and first.json()["id"] in problem["detail"]
    assert problem["job_id"] == first.json()["id"]
    api.post(f"/v1/jobs/{first.json()['id']}/cancel")


SWEEP = {
    "base": {"dataset": "iris", "training": {"epochs": 1}},
    "parameters": {"optimizer.learning_rate": {"values": [0.01]}},
}
WEBHOOK = {"url": "http://127.0.0.1:9/hook", "events": ["job.succeeded"]}


@pytest.mark.parametrize(
    ("path", "body"), [("/v1/jobs", b'{"dataset": "iris"}'), ("/v1/sweeps", b"{}"), ("/v1/webhooks", b"{}")]
)
@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_a_json_body_not_sent_as_json_says_which_header_to_send(api, path, body, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = api.post(path, content=body, headers=headers)
    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert "send Content-Type: application/json" in detail
    assert (content_type or "without a Content-Type header") in detail


@pytest.mark.parametrize(
    ("path", "body", "field", "suggestion"),
    [
        ("/v1/jobs", {"dataset": "iris", "trainig": {"epochs": 1}}, "trainig", "training"),
        ("/v1/jobs", {"dataset": "iris", "model": {"hiden_layers": [4]}}, "model.hiden_layers", "hidden_layers"),
        (
            "/v1/jobs",
            {"dataset": "iris", "training": {"early_stopping": {"patiense": 3}}},
            "training.early_stopping.patiense",
            "patience",
        ),
        ("/v1/sweeps", {**SWEEP, "paramters": {}}, "paramters", "parameters"),
        ("/v1/webhooks", {**WEBHOOK, "event": ["job.failed"]}, "event", "events"),
    ],
)
def test_a_misspelt_field_gets_a_did_you_mean(api, path, body, field, suggestion):
    response = api.post(path, json=body)
    assert response.status_code == 422, response.text
    messages = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert messages[field].endswith(f"did you mean `{suggestion}`?"), messages
    assert f"did you mean `{suggestion}`?" in response.json()["detail"]
