"""``schemathesis run --checks all`` against the real service with an API key configured: 0 failures.

Every operation gets generated requests, valid and invalid, in every phase (examples,
coverage, fuzzing, stateful links); no response may be a 5xx, and every response must
match what ``/openapi.json`` documents for it (status code, content type, body schema,
headers, ``Allow`` on 405s, 401 without the key). The service runs with real Redis and
a worker; a tight budget keeps generated jobs tiny.

A second run is the stateful phase alone, with more scenarios: it follows the document's ``links``
(``job_id: $response.body#/id`` from a created or fetched job, ...) and ones the test adds: from a
dataset, and from the datasets listing (its first item, a built-in), to a one-epoch job on it
(``create_job`` with the body ``{"dataset": id, "training": {"epochs": 1, ...}}``, within this
service's budget; the document has no such link, as openapi-generator's parser takes only a string for a
link's body). One worker and a fixed seed keep its scenarios the same from run to run. The test reads
the run's VCR cassette for calls to predict, weights and cancel with the ids of jobs the service created,
and asserts each is called.

One check cannot apply and is excluded (README, "OpenAPI"): ``positive_data_acceptance``
expects every schema-valid request to be accepted, but acceptance also depends on rules a
JSON Schema cannot state — the dataset must exist and be the caller's, the budget
epochs x rows x parameters, the engine's cross-field rules, the content of an uploaded file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from support import Service

from trainapi.keys import add_key

EXAMPLES_PER_OPERATION = 8  # the coverage phase adds ~1,600 deterministic cases on top
NOT_APPLICABLE = ["positive_data_acceptance"]
ON_A_JOB = re.compile(r"/v1/jobs/([^/?]+)/(predict|weights|cancel)(?:\?|$)")
# The chain list datasets -> dataset -> job -> predict comes up within some hundreds of scenarios.
# Event streams are left out: OpenAPI 3.1 leaves a text/event-stream schema's meaning open; the document gives
# the stream's (a string, what generators read; 3.2's `schema`), schemathesis reads it as each event's (ST108).
STATEFUL_CONFIG = """
[phases.stateful.generation]
max-examples = 800
"""
STREAMS = ["job_events", "sweep_events"]
#: Left out of the stateful run too: a job without a path answers 404 there (it has no such resource), which
#: schemathesis, following its inferred link from a created job, reads as "created resource not found" (ST302).
NOT_LINKED = ["get_path"]
TRAIN = {
    "operationId": "create_job",
    # One epoch: within the fixture's budget (epochs x rows x parameters <= 1e6) on any built-in.
    "requestBody": {"dataset": "$response.body#/id", "training": {"epochs": 1, "max_runtime_seconds": 5}},
    "x-schemathesis": {"merge_body": False},  # merged into a generated spec, the body is mostly invalid
}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory) -> Iterator[tuple[Service, str]]:
    root = tmp_path_factory.mktemp("fuzz")
    key = add_key(root / "api_keys", "fuzz")
    budget = {"TRAINAPI_MAX_ACTIVE_JOBS": "100000", "TRAINAPI_MAX_WORK": "1e6", "TRAINAPI_MAX_RUNTIME_SECONDS": "5"}
    svc = Service(root, env_extra={**budget, "TRAINAPI_API_KEYS_FILE": str(root / "api_keys")})
    try:
        yield svc.start(), key
    finally:
        svc.stop()


def test_schemathesis_run_checks_all_finds_nothing(fuzzed, tmp_path):
    svc, key = fuzzed
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{svc.url}/openapi.json",
        "--checks", "all", "--exclude-checks", ",".join(NOT_APPLICABLE),
        "--header", f"Authorization: Bearer {key}",
        "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", "1", "--workers", "2",
        "--report", "junit", "--report-junit-path", str(tmp_path / "junit.xml"),
    ]  # fmt: skip
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    tested = re.search(r"Tested:\s+(\d+)", output)
    assert tested and int(tested.group(1)) >= 21, output[-3000:]  # every operation of the document
    assert "POST /v1/jobs" in (tmp_path / "junit.xml").read_text()


def test_the_stateful_phase_finds_nothing(fuzzed, tmp_path):
    svc, key = fuzzed
    config = tmp_path / "schemathesis.toml"
    config.write_text(STATEFUL_CONFIG)
    document = httpx.get(f"{svc.url}/openapi.json", headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
    for path, method, status in (("/v1/datasets", "post", "201"), ("/v1/datasets/{dataset_id}", "get", "200")):
        document["paths"][path][method]["responses"][status]["links"]["create_job"] = TRAIN
    # The listing always starts with the built-in datasets: a job on the first comes up in most scenarios.
    listing = document["paths"]["/v1/datasets"]["get"]["responses"]["200"]
    listing.setdefault("links", {})["create_job"] = {
        **TRAIN,
        "requestBody": {**TRAIN["requestBody"], "dataset": "$response.body#/items/0/id"},
    }
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", str(tmp_path / "openapi.json"),
        "--url", svc.url,
        "--checks", "all", "--exclude-checks", ",".join(NOT_APPLICABLE),
        "--header", f"Authorization: Bearer {key}", "--phases", "stateful", "--seed", "1", "--workers", "1",
        *[arg for name in STREAMS + NOT_LINKED for arg in ("--exclude-operation-id", name)],
        "--report", "vcr", "--report-vcr-path", str(tmp_path / "cassette.yaml"),
    ]  # fmt: skip
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    reached = stateful_calls_on_created_jobs(tmp_path / "cassette.yaml")
    print(f"stateful calls on created jobs: {dict(reached)}")
    assert all(reached[operation] > 0 for operation in ("predict", "weights", "cancel")), dict(reached)


def stateful_calls_on_created_jobs(cassette: Path) -> Counter[str]:
    """Calls of the stateful phase to predict, weights and cancel whose job id a 202 of POST /v1/jobs gave."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    interactions = yaml.load(cassette.read_text(), Loader=loader)["http_interactions"]
    created = set()
    for item in interactions:
        request, response = item["request"], item.get("response") or {}
        creates = request["method"] == "POST" and request["uri"].split("?")[0].endswith("/v1/jobs")
        if creates and str(response.get("status", {}).get("code")) == "202":
            created.add(json.loads(response["body"]["string"])["id"])
    reached: Counter[str] = Counter()
    for item in interactions:
        match = ON_A_JOB.search(item["request"]["uri"])
        if match and (item.get("phase") or {}).get("name") == "stateful" and match.group(1) in created:
            reached[match.group(2)] += 1
    return reached
