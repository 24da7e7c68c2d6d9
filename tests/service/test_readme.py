"""The README and docs/ run as written: their shell and python blocks against a real service.

The README's curl session runs with bash from a copy of ``examples/``, only its
base URL changed to the test service's, and each numbered step's output is
checked. The other blocks run here too, or in the test named in ``BLOCKS``, or
``BLOCKS`` says why they cannot run in the suite; a block not listed there fails
:func:`test_every_block_is_run_or_says_why`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support import ROOT, Service, doc_block, doc_blocks, wait_for_job

DOCS = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]
BASE = "http://127.0.0.1:8000"  # the address the pages use

#: Every shell and python block of the pages, by its page and first line: where it runs, or why it cannot.
BLOCKS = {
    ("README.md", "scripts/serve"): "not run: it is the suite's own command (scripts/test) and a foreground "
    "service; tests/service/test_serve.py runs `trainapi serve`, which scripts/serve execs",
    ("README.md", "cd examples"): "test_the_readme_curl_session_runs_as_written",
    ("README.md", "from trainapi_client import Client"): "test_the_python_client_blocks_run",
    ("docs/client.md", "from trainapi_client import Client"): "test_the_python_client_blocks_run",
    ("docs/client.md", "cd examples"): "test_the_command_line_session_runs",
    ("docs/datasets.md", "cd examples && B=http://127.0.0.1:8000"): "test_the_onnx_block_answers_like_predict",
    ("docs/development.md", "scripts/test"): "not run: it is the whole suite",
    ("docs/jobs.md", 'curl -s --json \'{"dataset": "diabetes"'): "test_the_path_block_chooses_lambda",
    ("docs/development.md", "from engine import TrainSpec, export, load_builtin, train"): "test_the_engine_block_runs",
    ("docs/sweeps.md", "cd examples && B=http://127.0.0.1:8000"): "test_the_larger_sweeps_are_accepted (submitted "
    "and cancelled: run to the end they take about a minute of both cores; bench/sweep.py --example runs the "
    "worked example to the end)",
    ("docs/sweeps.md", "curl -sf $B/v1/sweeps"): "test_the_larger_sweeps_are_accepted",
    ("docs/webhooks.md", "curl -s -X POST http://127.0.0.1:8000/v1/webhooks"): "not run: its URL must resolve "
    "to a public address, and the suite has no network; tests/service/test_webhooks.py registers endpoints "
    "on local receivers",
    ("docs/webhooks.md", "from fastapi import FastAPI, HTTPException, Request"): "tests/service/test_webhooks.py"
    "::test_the_documented_receiver_verifies_deliveries",
    ("docs/weights.md", "import json\nimport numpy as np"): "test_the_numpy_recipe_runs_whole_on_the_sessions_"
    "download, and tests/support.py numpy_forward in test_end_to_end, test_tables, test_columns, test_client",
    ("docs/weights.md", "import json\n\nimport torch"): "tests/service/test_torch_module.py",
    ("docs/weights.md", "import numpy as np, onnxruntime as ort"): "test_the_onnx_block_answers_like_predict",
}


def test_every_block_is_run_or_says_why() -> None:
    found = set()
    for doc in DOCS:
        for lang in ("sh", "python"):
            for _, block in doc_blocks(doc, lang):
                key = next((k for k in BLOCKS if k[0] == doc and block.startswith(k[1])), None)
                assert key is not None, f"a {lang} block of {doc} that no test runs: {block[:80]!r}; add it to BLOCKS"
                found.add(key)
    assert found == set(BLOCKS), f"listed blocks no page has: {set(BLOCKS) - found}"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS)
def test_the_links_of_the_pages_resolve(doc: str) -> None:
    page = ROOT / doc
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        if link.startswith(("http://", "https://")):
            continue
        path, _, fragment = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{doc}: {link}: no such file"
        if fragment and target.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", target.read_text(), re.M)
            assert fragment in {_anchor(h) for h in headings}, f"{doc}: {link}: no such heading"


# --- the README's curl session ---------------------------------------------------------------------------


@dataclass
class Session:
    service: Service
    repo: Path  # a directory holding a copy of examples/, as the repository does
    steps: dict[int, list[str]]  # the output lines of each numbered step

    @property
    def examples(self) -> Path:
        return self.repo / "examples"

    def json_lines(self, step: int) -> list[Any]:
        return [json.loads(line) for line in self.steps[step] if line.startswith(("{", "[", '"'))]


def _sh(block: str, url: str) -> str:
    assert block.count(BASE) >= 1, f"the block names {BASE}"
    return block.replace(BASE, url)


def _run_bash(script: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    result = subprocess.run(
        ["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service of its own, with one worker as scripts/serve starts it: the session lists and ranks its own jobs."""
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            pytest.skip(f"the README's session needs {tool}")
    svc = Service(tmp_path_factory.mktemp("readme-service"))
    try:
        yield svc.start()
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def session(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Session:
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(ROOT / "examples", repo / "examples")
    block = _sh(doc_block("README.md", "## A session with curl", "sh"), service.url)
    # A marker before each numbered step, so that each step's output can be told apart; the commands are as written.
    script = re.sub(r"^# (\d)\. ", lambda m: f'printf "\\n@@ step {m.group(1)}\\n"\n{m.group(0)}', block, flags=re.M)
    assert script.count("@@ step") == 6, "the session has six numbered steps"
    steps: dict[int, list[str]] = {}
    current = 0
    for line in _run_bash(script, repo).splitlines():
        if line.startswith("@@ step "):
            current = int(line.split()[-1])
            steps[current] = []
        elif line.strip():
            steps.setdefault(current, []).append(line)
    return Session(service, repo, steps)


def test_the_readme_curl_session_runs_as_written(session: Session) -> None:
    (dataset,) = session.json_lines(1)
    assert dataset["id"].startswith("ds_") and dataset["n_samples"] == 300
    assert dataset["classes"] == ["inside", "outside"] and dataset["feature_names"] == ["x", "y"]
    assert dataset["task"] == "classification" and dataset["target_name"] == "where"

    (job,) = session.json_lines(2)
    assert job["id"].startswith("job_") and job["status"] in ("queued", "running", "succeeded")
    assert job["spec"]["hidden_layers"] == [64, 64]

    watched = session.steps[3]
    epochs = [line for line in watched if line == "event: epoch"]
    assert epochs and watched.count("event: end") == 1
    end = json.loads(watched[watched.index("event: end") + 1].removeprefix("data: "))
    assert end["id"] == job["id"] and end["status"] == "succeeded"
    (summary,) = session.json_lines(3)
    assert summary["status"] == "succeeded" and summary["best_epoch"] >= 1
    assert set(summary["test_metrics"]) == {"loss", "accuracy"}
    assert len(epochs) == end["progress"]["epoch"], "one epoch event per epoch"

    (predicted,) = session.json_lines(4)
    assert predicted["predictions"] == ["inside", "outside"]
    assert (session.examples / "weights.npz").stat().st_size > 0

    cancel = session.steps[5]
    assert cancel[:3] == ["event: epoch"] * 3, "the long job ran before it was cancelled"
    assert cancel[3] == "202", "a running job's cancel is accepted, not a 409"
    cancelled = json.loads(cancel[4])
    assert cancelled["status"] == "cancelled" and 3 <= cancelled["epochs_run"] < 3000
    assert cancel[5:] == ["200", "204"], "the last checkpoint downloads, then the job is deleted"
    assert (session.examples / "last.npz").stat().st_size > 0

    sweep = session.steps[6]
    assert sweep[:7] == ["event: trial"] * 6 + ["event: end"]
    status, *leaderboard = session.json_lines(6)
    assert status == "succeeded" and len(leaderboard) == 6
    objectives = [entry["objective"] for entry in leaderboard]
    assert objectives == sorted(objectives), "best first"
    assert {tuple(sorted(entry["parameters"])) for entry in leaderboard} == {
        ("regularization.dropout", "regularization.l2")
    }


def test_the_numpy_recipe_runs_whole_on_the_sessions_download(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/weights.md's recipe, its loading lines included, on the weights.npz step 4 downloaded."""
    monkeypatch.chdir(session.examples)
    namespace: dict[str, Any] = {}
    exec(
        compile(doc_block("docs/weights.md", "## Reproducing `/predict` with NumPy alone"), "weights.md", "exec"),
        namespace,
    )
    rows = json.loads((session.examples / "rows.json").read_text())["inputs"]
    labels, probabilities = namespace["predict"](rows)
    (answer,) = session.json_lines(4)
    assert labels == answer["predictions"]
    np.testing.assert_allclose(probabilities, answer["probabilities"], atol=1e-6)


# --- the other pages' blocks ------------------------------------------------------------------------------


def _client(service: Service) -> httpx.Client:
    return httpx.Client(base_url=service.url, timeout=30)


def test_the_python_client_blocks_run(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(session.repo)  # the blocks name examples/rings.csv, from the repository
    for doc in ("README.md", "docs/client.md"):
        code = doc_block(doc, "## Python client").replace(BASE, session.service.url)
        assert code.startswith("from trainapi_client import Client")
        output = StringIO()
        with redirect_stdout(output):
            exec(compile(code, doc, "exec"), {})
        printed = output.getvalue()
        assert "succeeded" in printed and "['inside', 'outside']" in printed, (doc, printed)
    assert (session.repo / "rings.safetensors").stat().st_size > 0  # client.md downloads the weights


def test_the_onnx_block_answers_like_predict(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/datasets.md uploads export.csv; a job of table-job.json on it, and the session's job, as ONNX."""
    pytest.importorskip("onnxruntime")
    upload = doc_block("docs/datasets.md", "## Real-world tables", "sh")
    (line,) = [line for line in _run_bash(_sh(upload, session.service.url), session.repo).splitlines() if line]
    table = json.loads(line)
    assert table["n_samples"] == 24 and table["feature_names"] == ["age", "income", "city", "member"]
    assert table["rows_missing_target"] == 2 and table["notes"], "the empty column is dropped with a note"
    assert [c["type"] for c in table["columns"]] == ["numeric", "numeric", "categorical", "boolean", "categorical"]
    spec = {**json.loads((session.examples / "table-job.json").read_text()), "dataset": table["id"]}
    with _client(session.service) as api:
        table_job = api.post("/v1/jobs", json=spec).json()["id"]
        assert wait_for_job(api, table_job)["status"] == "succeeded"
        (rings_job,) = session.json_lines(2)
        for job_id, name in ((rings_job["id"], "rings.onnx"), (table_job, "table.onnx")):
            onnx = api.get(f"/v1/jobs/{job_id}/weights", params={"format": "onnx"})
            assert onnx.status_code == 200
            (session.examples / name).write_bytes(onnx.content)
        monkeypatch.chdir(session.examples)
        namespace: dict[str, Any] = {}
        with redirect_stdout(StringIO()):
            exec(
                compile(doc_block("docs/weights.md", "## ONNX"), "weights.md", "exec"),
                namespace,
            )
        rows = [
            {"age": 41.0, "income": 22.5, "city": "Lyon", "member": False},
            {"age": None, "income": 35.0, "city": None, "member": True},
        ]
        expected = api.post(f"/v1/jobs/{table_job}/predict", json={"inputs": rows}).json()
    assert namespace["label"].tolist() == expected["predictions"] == ["no", "yes"], "as the block's comment says"
    np.testing.assert_allclose(namespace["probabilities"], expected["probabilities"], atol=1e-5)
    session_labels = namespace["session"].run(None, {"input": np.array([[0.1, 0.2], [1.5, -1.0]], np.float32)})[0]
    assert session_labels.tolist() == ["inside", "outside"]


def test_the_command_line_session_runs(session: Session) -> None:
    block = doc_block("docs/client.md", "## Command line", "sh")
    env = {**os.environ, "TRAINAPI_URL": session.service.url, "COLUMNS": "200"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the .venv's trainapi
    output = _run_bash(block, session.repo, env=env)
    assert "inside" in output and "outside" in output, output
    assert "cancel" in output.lower(), output
    assert (session.examples / "rings.onnx").stat().st_size > 0


def test_the_larger_sweeps_are_accepted(session: Session) -> None:
    """The sweeps of docs/sweeps.md are valid as written: submitted (202), then cancelled to spare the machine."""
    first = doc_block("docs/sweeps.md", "## A worked example", "sh").splitlines()
    submit = [line for line in first if not line.startswith("curl")]  # cd and B=, then SWP=$(…)
    tpe = doc_block("docs/sweeps.md", "## Adaptive search", "sh").strip()
    script = "\n".join([*submit, 'echo "$SWP"', "cd ..", *submit[:1], tpe])
    ids = _run_bash(_sh(script, session.service.url), session.repo).split()
    assert len(ids) == 2 and all(i.startswith("swp_") for i in ids), ids
    with _client(session.service) as api:
        for sweep_id in ids:
            sweep = api.get(f"/v1/sweeps/{sweep_id}").json()
            assert sweep["name"] in ("moons-regularization", "digits-tpe") and sweep["status"] in ("queued", "running")
            assert api.post(f"/v1/sweeps/{sweep_id}/cancel").status_code == 202


def test_the_path_block_chooses_lambda(session: Session) -> None:
    """docs/jobs.md's regularization path as written (``$B`` the service): 100 λ, 10 folds, λ_min and λ_1se."""
    block = doc_block("docs/jobs.md", "## Regularization paths", "sh")
    (job,) = [json.loads(line) for line in _run_bash(f"B={session.service.url}\n{block}", session.repo).splitlines()]
    assert job["status"] in ("queued", "running", "succeeded"), job
    with _client(session.service) as api:
        assert wait_for_job(api, job["id"], timeout=300)["status"] == "succeeded"
        path = api.get(f"/v1/jobs/{job['id']}/path").json()
    assert len(path["points"]) == 100
    assert path["lambda_1se"] >= path["lambda_min"] > 0


def test_the_job_spec_block_is_the_normalized_default(session: Session) -> None:
    documented = json.loads(doc_block("docs/jobs.md", "## The job spec", "json"))
    with _client(session.service) as api:
        created = api.post("/v1/jobs", json={"dataset": "digits", "training": {"epochs": 1}})
        assert created.status_code == 202
        spec = created.json()["spec"]
    spec["training"]["epochs"] = documented["training"]["epochs"]
    assert spec == documented


def test_the_engine_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with redirect_stdout(StringIO()) as printed:
        exec(compile(doc_block("docs/development.md", "## The engine as a library"), "development.md", "exec"), {})
    assert len(printed.getvalue().split()) == 50, "one val_loss per epoch"
    assert (tmp_path / "digits.safetensors").stat().st_size > 0
