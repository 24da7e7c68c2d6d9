"""Clients generated from the document work from the first call: ``tools/generated_clients.py``.

openapi-python-client and openapi-generator (python), installed from PyPI into a venv of their own
(the project's venv keeps its versions), generate clients whose ``get_weights`` gives the file's bytes,
whose predict request builds from plain lists of rows (and objects keyed by column), and whose install
leaves the project's ``trainapi-client`` in place. openapi-generator runs on Java: without ``java`` on
PATH its case is skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

import pytest

from trainapi.processes import ROOT

JAVA = shutil.which("java")
GENERATORS = ("openapi-python-client", "openapi-generator")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("generated-clients")
    generators = [g for g in GENERATORS if g != "openapi-generator" or JAVA]
    command = [sys.executable, str(ROOT / "tools" / "generated_clients.py"), "--work", str(work)]
    command += ["--generators", ",".join(generators), "--report", str(work / "report.json")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, cwd=ROOT)
    assert (work / "report.json").exists(), (done.stdout + done.stderr)[-6000:]
    return json.loads((work / "report.json").read_text())


@pytest.mark.parametrize("generator", GENERATORS)
def test_the_generated_client_works(report: dict[str, Any], generator: str) -> None:
    if generator == "openapi-generator" and JAVA is None:
        pytest.skip("openapi-generator runs on Java 11 or newer: no `java` on PATH")
    result = report[generator]
    assert result["ok"], json.dumps(result, indent=1)
    assert result["checks"]["distribution name"] != "trainapi-client"
