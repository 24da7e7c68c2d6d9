"""How a request body that fails validation is reported: 415 when not sent as JSON, "did you mean" for typos."""

from __future__ import annotations

import warnings

import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from api import errors
from api.schemas.sweeps import SweepCreate
from api.schemas.webhooks import WebhookCreate
from store.jobs import spec_fingerprint
from store.jobspec import JobSpec

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx
    from fastapi.testclient import TestClient


class Leaf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    learning_rate: float = 0.1


class Other(BaseModel):
    model_config = ConfigDict(extra="forbid")
    momentum: float = 0.9


class Tree(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layers: list[Leaf] = []
    by_name: dict[str, Leaf] = {}
    either: Leaf | Other | None = None


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.post("/jobs")
    def jobs(job: JobSpec) -> dict:
        return {}

    @app.post("/sweeps")
    def sweeps(sweep: SweepCreate) -> dict:
        return {}

    @app.post("/webhooks")
    def webhooks(hook: WebhookCreate) -> dict:
        return {}

    @app.post("/tree")
    def tree(body: Tree) -> dict:
        return {}

    return TestClient(app)


@pytest.mark.parametrize("path", ["/jobs", "/sweeps", "/webhooks"])
@pytest.mark.parametrize(
    ("content_type", "body", "said"),
    [
        (None, b'{"dataset": "iris"}', "a JSON body was sent without a Content-Type header"),
        ("application/x-www-form-urlencoded", b'{"dataset": "iris"}', "a JSON body was sent with Content-Type"),
        ("text/plain; charset=utf-8", b"dataset=iris", "a body was sent with Content-Type 'text/plain; charset=utf-8'"),
    ],
)
def test_a_body_not_sent_as_json_is_a_415_that_names_the_header(client, path, content_type, body, said):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(path, content=body, headers=headers)
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "Unsupported media type"
    assert problem["detail"].startswith(said) and "send Content-Type: application/json" in problem["detail"]
    assert problem["errors"] == [{"field": "Content-Type", "message": "must be application/json"}]


def test_json_media_types_are_read_as_json(client):
    for content_type in ("application/json", "application/json; charset=utf-8", "application/merge-patch+json"):
        response = client.post("/jobs", content=b'{"datset": "iris"}', headers={"content-type": content_type})
        assert response.status_code == 422, content_type
    empty = client.post("/jobs")
    assert empty.status_code == 422 and empty.json()["errors"] == [{"field": "body", "message": "Field required"}]


@pytest.mark.parametrize(
    ("path", "body", "field", "suggestion"),
    [
        ("/jobs", {"datset": "iris"}, "datset", "dataset"),
        ("/jobs", {"dataset": "iris", "optimizer": {"learning_rat": 0.1}}, "optimizer.learning_rat", "learning_rate"),
        ("/jobs", {"dataset": "iris", "training": {"early_stopping": {"patiense": 2}}}, None, "patience"),
        ("/sweeps", {"base": {"dataset": "iris", "modle": {}}, "parameters": {}}, "base.modle", "model"),
        ("/webhooks", {"url": "https://example.com", "events": ["*"], "descripton": ""}, "descripton", "description"),
        ("/tree", {"layers": [{"learning_rte": 1}]}, "layers.0.learning_rte", "learning_rate"),
        ("/tree", {"by_name": {"a": {"learningrate": 1}}}, "by_name.a.learningrate", "learning_rate"),
        ("/tree", {"either": {"momentun": 0.5}}, "either.Other.momentun", "momentum"),  # the member tried
    ],
)
def test_an_unknown_field_suggests_the_nearest_known_one_at_its_place(client, path, body, field, suggestion):
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    messages = {e["field"]: e["message"] for e in problem["errors"]}
    field = field or "training.early_stopping.patiense"
    assert messages[field] == f"Extra inputs are not permitted; did you mean `{suggestion}`?", messages
    assert f"{field}: Extra inputs are not permitted; did you mean `{suggestion}`?" in problem["detail"]


def test_an_unknown_field_far_from_every_known_one_gets_no_guess(client):
    response = client.post("/jobs", json={"dataset": "iris", "colour": "red"})
    assert response.json()["errors"] == [{"field": "colour", "message": "Extra inputs are not permitted"}]


def test_spec_fingerprint_ignores_key_order_and_sees_every_value():
    a = {"dataset": "iris", "training": {"epochs": 1, "seed": 0}}
    b = {"training": {"seed": 0, "epochs": 1}, "dataset": "iris"}
    assert spec_fingerprint(a) == spec_fingerprint(b)
    assert spec_fingerprint(a) != spec_fingerprint({**a, "training": {"epochs": 2, "seed": 0}})
    assert len(spec_fingerprint(a)) == 64
