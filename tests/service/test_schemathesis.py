"""Property-based fuzzing of the whole API from its own OpenAPI document (Schemathesis).

Every operation gets a bounded number of generated requests, valid and
invalid; no response may be a 5xx, and every response must match what
``/openapi.json`` documents for it (status code, content type, body schema).
The service runs with real Redis and a worker; a tight budget keeps generated jobs tiny.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from support import Service

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 30


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory) -> Iterator[Service]:
    budget = {"TRAINAPI_MAX_ACTIVE_JOBS": "100000", "TRAINAPI_MAX_WORK": "1e6", "TRAINAPI_MAX_RUNTIME_SECONDS": "5"}
    svc = Service(tmp_path_factory.mktemp("fuzz"), env_extra=budget)
    try:
        yield svc.start()
    finally:
        svc.stop()


def _operations(url: str) -> list:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_is_fuzzed(fuzzed):
    labels = {op.label for op in _operations(fuzzed.url)}
    assert {"POST /v1/jobs", "GET /v1/jobs/{job_id}", "POST /v1/datasets", "GET /readyz"} <= labels


def test_no_5xx_and_responses_match_the_schema(fuzzed):
    failures: list[str] = []
    for operation in _operations(fuzzed.url):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case) -> None:
            case.call_and_validate(base_url=fuzzed.url, checks=CHECKS)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - report every operation's failures together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
