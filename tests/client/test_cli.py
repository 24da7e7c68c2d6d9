"""The ``trainapi`` resource commands, run as subprocesses against the real service."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trainapi_client import Client

from trainapi.cli import main

CLI = [sys.executable, "-m", "trainapi.cli"]
GOOD = {"dataset": "iris", "model": {"type": "logistic"}, "training": {"epochs": 5}}
DIVERGING = {
    "dataset": "diabetes",
    "model": {"type": "linear"},
    "optimizer": {"name": "sgd", "learning_rate": 500, "momentum": 0},
    "training": {"epochs": 30, "standardize": False},
}


def trainapi(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAINAPI_URL": url, "COLUMNS": "160"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env)


def in_process(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    """The same commands through ``trainapi.cli.main`` in this process (no interpreter start-up per call)."""
    status = main([*args, "--url", url])
    out, err = capsys.readouterr()
    return status, out, err


def _spec(tmp_path: Path, name: str, spec: dict) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    return str(path)


def test_submit_wait_exits_0_for_a_job_that_succeeds_and_1_for_one_that_fails(service, tmp_path):
    ok = trainapi(service.url, "jobs", "submit", _spec(tmp_path, "good", GOOD), "--wait", "--json")
    assert ok.returncode == 0, ok.stderr
    job = json.loads(ok.stdout)
    assert job["status"] == "succeeded" and job["progress"]["epoch"] == 5

    bad = trainapi(service.url, "jobs", "submit", _spec(tmp_path, "bad", DIVERGING), "--wait")
    assert bad.returncode == 1, bad.stderr
    assert "failed" in bad.stdout and "diverged" in bad.stdout  # the summary table


def test_show_list_weights_predict_and_errors(service, tmp_path, capsys):
    with Client(service.url) as client:
        job = client.jobs.wait(client.jobs.create(GOOD).id, timeout=60)
    status, out, _ = in_process(capsys, service.url, "jobs", "show", job.id, "--json")
    assert status == 0 and json.loads(out)["id"] == job.id
    status, out, _ = in_process(capsys, service.url, "jobs", "show", job.id)
    assert status == 0 and f"job {job.id}" in out and "succeeded" in out
    status, out, _ = in_process(capsys, service.url, "jobs", "list", "--status", "succeeded", "--json")
    assert status == 0 and json.loads(out) and all(j["status"] == "succeeded" for j in json.loads(out))

    weights = tmp_path / "iris.npz"
    status, out, _ = in_process(capsys, service.url, "jobs", "weights", job.id, "-o", str(weights), "--format", "npz")
    assert status == 0 and weights.stat().st_size > 0
    inputs = _spec(tmp_path, "inputs", {"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]})
    status, out, _ = in_process(capsys, service.url, "jobs", "predict", job.id, "--inputs", inputs, "--json")
    assert status == 0 and len(json.loads(out)["predictions"]) == 2

    assert in_process(capsys, service.url, "jobs", "submit", str(tmp_path / "missing.json"))[0] == 2
    status, _, err = in_process(capsys, service.url, "jobs", "show", "job_nope", "--json")
    assert status == 1 and json.loads(err)["error"]["status"] == 404
    zero = _spec(tmp_path, "zero", {"dataset": "iris", "training": {"epochs": 0}})
    status, _, err = in_process(capsys, service.url, "jobs", "submit", zero)
    assert status == 1 and "training.epochs" in err


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as exited:
        main(["jobs", "submit"])
    assert exited.value.code == 2


def test_upload_and_sweeps(service, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # rich's width when the output is not a terminal
    csv = tmp_path / "xor.csv"
    rows = "".join(f"{i % 2},{i // 2 % 2},{'yes' if (i % 2) ^ (i // 2 % 2) else 'no'}\n" for i in range(40))
    csv.write_text("a,b,label\n" + rows)
    status, out, err = in_process(capsys, service.url, "datasets", "upload", str(csv), "--target", "label", "--json")
    assert status == 0, err
    assert json.loads(out)["classes"] == ["no", "yes"]
    # A European export: semicolons, decimal commas, "-" for a gap.
    euro = tmp_path / "euro.csv"
    euro.write_text("a;b;label\n" + "".join(f"{i},5;{'-' if i == 3 else i * 2};{'xy'[i % 2]}\n" for i in range(30)))
    args = ("--delimiter", ";", "--decimal", ",", "--na-values", "-", "--json")
    status, out, err = in_process(capsys, service.url, "datasets", "upload", str(euro), *args)
    assert status == 0, err
    columns = {c["name"]: c for c in json.loads(out)["columns"]}
    assert columns["a"]["type"] == "numeric" and columns["a"]["min"] == 0.5 and columns["b"]["missing"] == 1

    sweep = {
        "base": {**GOOD, "training": {"epochs": 3}},
        "parameters": {"regularization.l2": {"values": [0, 0.01]}},
        "max_concurrent_trials": 2,
    }
    status, out, err = in_process(
        capsys, service.url, "sweeps", "submit", _spec(tmp_path, "s", sweep), "--wait", "--json"
    )
    assert status == 0, err
    status, out, _ = in_process(capsys, service.url, "sweeps", "show", json.loads(out)["id"])
    assert status == 0 and "regularization.l2=0.01" in out and "val_loss" in out


def test_jobs_watch_draws_a_progress_bar_then_a_summary_on_a_terminal(service):
    with Client(service.url) as client:
        job = client.jobs.create(
            dataset="digits", model={"type": "mlp", "hidden_layers": [32]}, training={"epochs": 12}
        )
    env = {**os.environ, "TRAINAPI_URL": service.url, "COLUMNS": "160", "TERM": "xterm"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal on stdin, stdout and stderr
        os.execve(sys.executable, [*CLI, "jobs", "watch", job.id], env)
    output = bytearray()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "\x1b[" in text  # drawn live, with terminal control sequences
    assert "epoch 12/12" in text and "train " in text and "val " in text and "ETA" in text
    assert f"job {job.id}" in text and "succeeded" in text and "best train/val loss" in text
