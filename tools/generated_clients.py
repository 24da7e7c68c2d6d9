"""Generate clients from the service's OpenAPI document with two generators and check what a user gets.

The first hour of someone who points a client generator at ``/openapi.json``:

- ``get_weights`` gives the file's bytes (openapi-generator: ``bytes``; openapi-python-client: its
  ``File``, whose ``payload`` holds them), for the npz (``application/octet-stream``) and the json
  (``application/json``) formats;
- a predict request builds from plain lists of rows, and from objects keyed by column name, with the
  generated model's own constructor, and goes out as that JSON;
- installing a generated client leaves the project's own ``trainapi-client`` installed (the document's
  title names openapi-python-client's distribution).

Usage, from the repository root with the project's venv::

    .venv/bin/python tools/generated_clients.py --work DIR [--generators openapi-python-client,openapi-generator]

It writes the document the service serves in open mode to ``DIR/openapi.json`` (built in-process: no
Redis, no server), makes ``DIR/venv`` with the generators from PyPI (``openapi-python-client``,
``openapi-generator-cli``: its jar runs on the ``java`` on PATH, 11 or newer) and the project's
``./client``, generates ``DIR/<generator>``, installs each generated client into ``DIR/venv``, and runs
this file again in ``DIR/venv`` (``--probe``) against a stub of the service on 127.0.0.1 that answers
as the service does. A second run reuses ``DIR/venv``. It prints a JSON report (``--report`` also
writes it to a file) and exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
GENERATORS = ("openapi-python-client", "openapi-generator")
#: Pinned so a generator's new release changes this check only when someone bumps it.
PACKAGES = ["openapi-python-client==0.29.1", "openapi-generator-cli==7.26.0"]
OWN_CLIENT = "trainapi-client"

NPZ = b"PK\x03\x04\x14\x00\x00\x00\x00\x00weights\x00\xff\xfe"  # any bytes: the client must not decode them
JSON_WEIGHTS = b'{"format": "trainapi.weights", "version": 1, "parameters": {}}'
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]
NAMED_ROWS = [{"age": 41, "color": "red", "member": True, "income": None}]
PREDICTION = {"predictions": ["setosa"], "probabilities": [[0.9, 0.1]], "classes": ["setosa", "versicolor"]}


# --- the driver (the project's venv) -------------------------------------------------------------


def write_document(path: Path) -> None:
    """The document of an open-mode service (what a generator user fetches from ``/openapi.json``)."""
    import tempfile

    sys.path.insert(0, str(ROOT))
    from api.main import create_app
    from trainapi.settings import Settings

    with tempfile.TemporaryDirectory() as data:
        app = create_app(Settings(redis_url="redis://127.0.0.1:1/0", data_dir=Path(data), api_keys_file=None))
        path.write_text(json.dumps(app.openapi(), indent=1))


def run(command: list[str], log: Path, **kwargs: Any) -> None:
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs)
    if done.returncode:
        tail = log.read_text(errors="replace")[-4000:]
        raise SystemExit(f"{command[0]} {command[1:3]} exited {done.returncode}; the end of {log}:\n{tail}")


def tool_venv(work: Path, log: Path) -> Path:
    venv = work / "venv"
    python = venv / "bin" / "python"
    if not (venv / "ready").exists():
        shutil.rmtree(venv, ignore_errors=True)
        run([sys.executable, "-m", "venv", str(venv)], log)
        run([*pip_install(python), *PACKAGES, str(ROOT / "client")], log)
        (venv / "ready").write_text("")
    else:
        # A generated client of a past run may have taken its place (the collision this checks for).
        run([*pip_install(python), "--force-reinstall", "--no-deps", str(ROOT / "client")], log)
    return python


def pip_install(python: Path) -> list[str]:
    return [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]


def generate(generator: str, document: Path, work: Path, python: Path, log: Path) -> Path:
    out = work / generator
    shutil.rmtree(out, ignore_errors=True)
    bin_dir = python.parent
    if generator == "openapi-python-client":
        run(
            [str(bin_dir / "openapi-python-client"), "generate", "--path", str(document), "--output-path", str(out)],
            log,
        )
    else:
        # The defaults a first-time user gets (package openapi_client), the python generator.
        run(
            [str(bin_dir / "openapi-generator-cli"), "generate", "-i", str(document), "-g", "python", "-o", str(out)],
            log,
        )
    run([*pip_install(python), str(out)], log)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="Where the document, venv and clients go.")
    parser.add_argument("--generators", default=",".join(GENERATORS), help="Comma-separated; default: both.")
    parser.add_argument("--report", type=Path, help="Also write the JSON report here.")
    parser.add_argument("--document", type=Path, help="Check this document (e.g. a saved /openapi.json) instead.")
    parser.add_argument("--probe", help=argparse.SUPPRESS)  # run inside the tool venv
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe, Path(args.work))))
        return 0
    chosen = [g for g in args.generators.split(",") if g]
    unknown = set(chosen) - set(GENERATORS)
    if unknown:
        parser.error(f"unknown generators {sorted(unknown)}; choose from {', '.join(GENERATORS)}")
    if "openapi-generator" in chosen and shutil.which("java") is None:
        parser.error("openapi-generator needs java (11 or newer) on PATH")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    document = work / "openapi.json"
    if args.document:
        shutil.copyfile(args.document, document)
    else:
        write_document(document)
    python = tool_venv(work, log)
    report: dict[str, Any] = {}
    for generator in chosen:
        out = generate(generator, document, work, python, log)
        env = {**os.environ, "PYTHONPATH": ""}
        done = subprocess.run(
            [str(python), __file__, "--work", str(out), "--probe", generator],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            cwd=work,  # not the repository: the probe imports what is installed
        )
        if done.returncode:
            report[generator] = {"ok": False, "error": (done.stdout + done.stderr)[-4000:]}
        else:
            report[generator] = json.loads(done.stdout.strip().splitlines()[-1])
    text = json.dumps(report, indent=1)
    print(text)
    if args.report:
        args.report.write_text(text)
    return 0 if all(r.get("ok") for r in report.values()) else 1


# --- the probe (the tool venv, with the generated clients installed) ----------------------------


class Stub(BaseHTTPRequestHandler):
    """Answers ``/weights`` and ``/predict`` as the service does; keeps the predict bodies it got."""

    bodies: ClassVar[list[Any]] = []

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, media_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if "/weights" in self.path:
            if "format=json" in self.path:
                self._send(200, JSON_WEIGHTS, "application/json")
            else:
                self._send(200, NPZ, "application/octet-stream")
        else:
            self._send(
                404,
                b'{"type": "about:blank", "title": "Not found", "status": 404, "detail": "stub"}',
                "application/problem+json",
            )

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self._send(200, json.dumps(PREDICTION).encode(), "application/json")


def probe(generator: str, generated: Path) -> dict[str, Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    checks: dict[str, Any] = {}
    try:
        calls = _python_client(url, generated) if generator == "openapi-python-client" else _openapi_generator(url)
        weights, weights_json, predicted = calls
        checks["get_weights npz is the bytes"] = weights == NPZ
        checks["get_weights json is the bytes"] = weights_json == JSON_WEIGHTS
        checks["predict bodies are the plain rows"] = Stub.bodies == [{"inputs": ROWS}, {"inputs": NAMED_ROWS}]
        checks["predict response parsed"] = predicted == PREDICTION["predictions"]
    finally:
        server.shutdown()
    checks[f"{OWN_CLIENT} still installed"] = _own_client_intact()
    checks["distribution name"] = _distribution_name(generated)
    checks["distribution is not trainapi-client"] = checks["distribution name"] != OWN_CLIENT
    failed = [name for name, value in checks.items() if value is False]
    return {"ok": not failed, "failed": failed, "checks": checks}


def _own_client_intact() -> bool:
    """The project's client, not a generated package of the same name, is what ``trainapi_client`` imports."""
    try:
        models = importlib.import_module("trainapi_client.models")
    except ImportError:
        return False
    return hasattr(models, "SCHEMAS")


def _distribution_name(generated: Path) -> str:
    for line in (generated / "pyproject.toml").read_text().splitlines():
        if line.startswith("name = "):
            return line.split("=", 1)[1].strip().strip('"').replace("_", "-")
    return ""


def _python_client(url: str, generated: Path) -> tuple[bytes, bytes, Any]:
    # The package is named after the document's title: find it by what it contains.
    name = next(p.name for p in generated.iterdir() if (p / "api" / "jobs").is_dir())
    package = importlib.import_module(name)
    get_weights = importlib.import_module(f"{name}.api.jobs.get_weights")
    predict = importlib.import_module(f"{name}.api.jobs.predict")
    models = importlib.import_module(f"{name}.models")
    client = package.AuthenticatedClient(base_url=url, token="key")
    npz = get_weights.sync("j1", client=client)
    json_file = get_weights.sync("j1", client=client, format_=models.GetWeightsFormat.JSON)
    predict.sync("j1", client=client, body=models.PredictRequest(inputs=ROWS))
    response = predict.sync("j1", client=client, body=models.PredictRequest(inputs=NAMED_ROWS))
    return npz.payload.read(), json_file.payload.read(), response.predictions


def _openapi_generator(url: str) -> tuple[bytes, bytes, Any]:
    client = importlib.import_module("openapi_client")
    api = client.JobsApi(client.ApiClient(client.Configuration(host=url, access_token="key")))
    npz = api.get_weights("j1")
    json_bytes = api.get_weights("j1", format="json")
    assert isinstance(npz, bytes | bytearray), type(npz)
    api.predict("j1", client.PredictRequest(inputs=ROWS))
    response = api.predict("j1", client.PredictRequest(inputs=NAMED_ROWS))
    return bytes(npz), bytes(json_bytes), response.predictions


if __name__ == "__main__":
    sys.exit(main())
