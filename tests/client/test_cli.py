"""The ``trainapi`` resource commands, run as subprocesses against the real service."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
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


#: Terminal control sequences (colours, cursor moves, window titles), to read a terminal's text.
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]")


def on_terminal(url: str, *args: str, columns: int = 80, timeout: float = 120) -> tuple[int, str]:
    """``trainapi ARGS`` on a pseudo-terminal ``columns`` wide: its exit status and what the terminal received."""
    env = {**os.environ, "TRAINAPI_URL": url, "COLUMNS": str(columns), "TERM": "xterm"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal on stdin, stdout and stderr
        try:
            fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
            os.execve(sys.executable, [*CLI, *args], env)
        finally:
            os._exit(127)
    output = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def screen(text: str) -> list[str]:
    """The lines a terminal shows of ``text`` (each redraw of a live bar on a line of its own)."""
    return [line for line in re.split(r"\r\n|\r|\n", CONTROL.sub("", text)) if line.strip()]


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
    assert status == 0 and "regularization.l2" in out and "0.01" in out and "val_loss" in out


@pytest.mark.parametrize("columns", [80, 160])
def test_jobs_watch_draws_a_progress_bar_with_epoch_n_of_n_then_a_summary_on_a_terminal(service, columns):
    with Client(service.url) as client:
        job = client.jobs.create(
            dataset="digits", model={"type": "mlp", "hidden_layers": [32]}, training={"epochs": 12}
        )
    status, text = on_terminal(service.url, "jobs", "watch", job.id[:12], columns=columns)
    assert status == 0, text
    assert "\x1b[" in text  # drawn live, with terminal control sequences
    lines = screen(text)
    bars = [line for line in lines if "ETA" in line]
    assert bars and all(len(line) <= columns for line in lines), lines
    assert any("epoch 12/12" in bar and "train " in bar and "val " in bar for bar in bars), bars
    assert all(re.search(r"epoch \d+/12", bar) for bar in bars), bars  # the count is never the part cut
    assert (job.id in bars[-1]) is (columns >= 140)  # the id leads the bar where there is room for it
    assert f"job {job.id}" in text and "succeeded" in text and "best train/val loss" in text


def test_jobs_submit_wait_at_80_columns_names_the_job_then_shows_its_epochs(service, tmp_path):
    status, text = on_terminal(service.url, "jobs", "submit", _spec(tmp_path, "good", GOOD), "--wait")
    assert status == 0, text
    lines = screen(text)
    (submitted,) = [line for line in lines if line.startswith("submitted ")]
    job_id = submitted.split()[1]
    assert re.fullmatch(r"job_[0-9a-f]{32}", job_id)
    assert any("epoch 5/5" in line for line in lines), lines
    assert f"job {job_id}" in text


def test_tables_at_80_columns_show_whole_ids_that_the_commands_take_whole_or_by_prefix(service, tmp_path):
    with Client(service.url) as client:
        jobs = [client.jobs.wait(client.jobs.create(GOOD, name=f"named {i}").id, timeout=60) for i in range(2)]
    status, text = on_terminal(service.url, "jobs", "list", "--limit", "500")
    assert status == 0, text
    lines = screen(text)
    assert all(len(line) <= 80 for line in lines), lines
    assert "…" not in text
    shown = re.findall(r"\bjob_[0-9a-f]{32}\b", text)
    assert {j.id for j in jobs} <= set(shown)  # whole, on one line each
    listed = [line.split()[0] for line in lines[2:]]
    assert listed == shown

    job = jobs[0]
    for prefix in (job.id, job.id[:10], job.id[4:12]):  # whole, with its job_, without
        status, text = on_terminal(service.url, "jobs", "show", prefix)
        assert status == 0 and f"job {job.id}" in text, (prefix, text)
    weights = tmp_path / "w.npz"
    status, text = on_terminal(service.url, "jobs", "weights", job.id[4:14], "-o", str(weights), "--format", "npz")
    assert status == 0 and weights.stat().st_size > 0, text

    status, text = on_terminal(service.url, "jobs", "show", "job_")  # every job's id starts so
    assert status == 2 and "is the start of" in text and "give more of it" in text, text
    status, text = on_terminal(service.url, "jobs", "show", "job_zzz")
    assert status == 1 and "no job id starts with 'job_zzz'" in text, text


def test_datasets_at_80_columns_and_na_values_that_start_with_a_dash(service, tmp_path, capsys):
    csv = tmp_path / "dashes.csv"
    cells = ["-", "n/a", "5"]  # b: 8 gaps of 12, as an export writes them
    csv.write_text("a,b,label\n" + "".join(f"{i},{cells[i % 3]},x{i % 2}\n" for i in range(12)))
    status, text = on_terminal(service.url, "datasets", "upload", str(csv), "--na-values", "-,n/a")
    assert status == 0, text
    (dataset_id,) = re.findall(r"\bds_[0-9a-f]{32}\b", text)
    assert all(len(line) <= 80 for line in screen(text))
    for argv in (["--na-values=-,n/a"], ["--na-v", "-,n/a"], ["--na-values", "-,n/a", "--name", "-dashes-"]):
        status, out, err = in_process(capsys, service.url, "datasets", "upload", str(csv), *argv, "--json")
        assert status == 0, (argv, err)
        uploaded = json.loads(out)
        assert {c["name"]: c["missing"] for c in uploaded["columns"]}["b"] == 8, argv
    assert uploaded["name"] == "-dashes-"
    with pytest.raises(SystemExit) as exited:  # an option where its value should be: still a usage error
        main(["datasets", "upload", str(csv), "--name", "--json"])
    assert exited.value.code == 2

    status, text = on_terminal(service.url, "datasets", "show", dataset_id[3:11])
    assert status == 0 and dataset_id in text and "numeric" in text, text
    status, text = on_terminal(service.url, "datasets", "show", "ir")
    assert status == 0 and "iris" in text and "sepal" in text, text


def test_a_refused_request_is_printed_once_and_whole(service, tmp_path):
    with Client(service.url) as client:
        job = client.jobs.wait(client.jobs.create(GOOD).id, timeout=60)
    argv = ("jobs", "weights", job.id[:12], "-o", str(tmp_path / "w"), "--checkpoint", "best")
    status, text = on_terminal(service.url, *argv)
    assert status == 1, text
    assert text.count("applies to cancelled jobs") == 1, text
    (line,) = [line for line in re.split(r"\r?\n", text) if "applies to cancelled jobs" in line]
    assert line.startswith("trainapi: 422 ") and line.rstrip().endswith("this job is succeeded"), line
    assert "\x1b" not in line  # no highlighting inside the message


def test_sweeps_show_at_80_columns_gives_each_trial_its_parameter_values(service, tmp_path, capsys, monkeypatch):
    sweep_spec = {
        "base": {**GOOD, "training": {"epochs": 2}},
        "parameters": {
            "regularization.l2": {"values": [0, 0.01]},
            "optimizer.learning_rate": {"values": [0.1, 0.05]},
        },
        "max_concurrent_trials": 2,
    }
    with Client(service.url) as client:
        sweep = client.sweeps.wait(client.sweeps.create(sweep_spec).id, timeout=120)
    assert sweep.status == "succeeded"
    status, text = on_terminal(service.url, "sweeps", "show", sweep.id[4:12])
    assert status == 0, text
    lines = screen(text)
    assert all(len(line) <= 80 for line in lines), lines
    assert "l2 = regularization.l2" in text and "learning_rate = optimizer.learning_rate" in text
    (header,) = [line for line in lines if line.lstrip().startswith("#")]
    assert header.split()[-2:] == ["l2", "learning_rate"]
    rows = {line.split()[1]: line.split() for line in lines if re.match(r"\s*\d+\s+job_", line)}
    assert set(rows) == {t.trial_id for t in sweep.leaderboard}  # every trial, its id whole
    for trial in sweep.leaderboard:
        l2, rate = rows[trial.trial_id][-2:]
        assert (float(l2), float(rate)) == (
            trial.parameters["regularization.l2"],
            trial.parameters["optimizer.learning_rate"],
        )

    monkeypatch.setenv("COLUMNS", "160")  # room for the full paths, the status and the best epoch
    status, out, _ = in_process(capsys, service.url, "sweeps", "show", sweep.id)
    assert status == 0
    header = next(line for line in out.splitlines() if line.lstrip().startswith("#"))
    assert header.split()[3:] == ["regularization.l2", "optimizer.learning_rate", "status", "best", "epoch"]
    status, text = on_terminal(service.url, "sweeps", "list")
    assert status == 0 and sweep.id in text, text


def test_the_trainapi_script_has_the_client_commands_and_the_server_commands_from_its_entry_point():
    script = Path(sys.executable).parent / "trainapi"
    for argv in ([str(script)], CLI):
        result = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        listed = set(re.findall(r"^    (\w+) ", result.stdout, re.M))
        assert {"datasets", "jobs", "sweeps", "serve", "api", "worker", "webhooks", "keys"} <= listed, result.stdout


def test_a_path_job_through_the_client_and_jobs_show(service, capsys):
    spec = {
        "dataset": "diabetes",
        "model": {"type": "linear"},
        "path": {"n_lambdas": 20},
        "training": {"cross_validation": {"folds": 3}},
    }
    with Client(service.url) as client:
        job = client.jobs.wait(client.jobs.create(spec).id, timeout=120)
        assert job.status == "succeeded" and job.path is not None
        path = client.jobs.path(job.id)
        assert len(path.points) == 20 and path.points[path.index].lambda_ == job.path.lambda_
        assert path.lambda_1se == job.path.lambda_1se and path.points[path.index].nonzero == job.path.nonzero
        assert path.to_dict()["points"][0]["lambda"] == path.points[0].lambda_  # the JSON name back
        point = path.points[5]
        answer = client.jobs.predict(job.id, [[0.0] * 10], lambda_index=5)
        assert abs(answer.predictions[0] - point.intercept) <= 1e-9 * abs(point.intercept)
    status, out, _ = in_process(capsys, service.url, "jobs", "show", job.id)
    assert status == 0, out
    assert "λ_min" in out and "λ_1se" in out and f"{job.path.nonzero} nonzero" in out and "3-fold CV" in out
