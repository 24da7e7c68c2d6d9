"""Uploads with bounded memory and truthful errors, against the real API process (Redis and uvicorn).

Memory is the API process's own peak: ``/proc/<pid>/clear_refs`` resets its
VmHWM, so each case measures how far above its resident size before the
request the process went while answering it.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from support import Service, poll

MIB = 1 << 20
QUOTA = 8 * MIB
#: The most the API's peak resident size may rise while refusing one hostile upload (or three at once).
RSS_BUDGET = 128 * MIB


def bomb(shape: tuple[int, int], dtype: str) -> bytes:
    """A deflated .npz of zeros: X of ``shape`` (written in pieces), y of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("X.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
            )
            left, piece = shape[0] * shape[1] * np.dtype(dtype).itemsize, bytes(4 * MIB)
            while left:
                member.write(piece[: min(left, len(piece))])
                left -= min(left, len(piece))
        with zf.open("y.npy", "w") as member:
            np.lib.format.write_array(member, np.zeros(shape[0]))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    # int8: 128 MB that become 1 GB as float64; float64: 960 MB, under the old 1 GiB per-member cap.
    return {"int8": bomb((16_000, 8_000), "int8"), "float64": bomb((12_000, 10_000), "float64")}


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Redis and the API with the default limits, a tenant storage quota and a small free-space reserve."""
    service = Service(
        tmp_path_factory.mktemp("limits"),
        env_extra={"TRAINAPI_TENANT_STORAGE_BYTES": str(QUOTA), "TRAINAPI_STORAGE_MIN_FREE_BYTES": str(MIB)},
    )
    try:
        service.start_redis()
        service.start_api()
        yield service
    finally:
        service.stop()


@pytest.fixture
def client(svc: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=svc.url, timeout=120) as c:
        yield c


def status_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024  # type: ignore[union-attr]


class PeakRss:
    """The API's peak resident size above its size at the start (VmHWM reset through clear_refs)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> PeakRss:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self.before = status_kb(self.pid, "VmRSS")
        return self

    def __exit__(self, *_: object) -> None:
        self.growth = status_kb(self.pid, "VmHWM") - self.before


def post_file(client: httpx.Client, data: bytes, filename: str, media: str, **fields: str) -> httpx.Response:
    return client.post("/v1/datasets", files={"file": (filename, data, media)}, data=fields)


@pytest.mark.parametrize("dtype", ["int8", "float64"])
def test_npz_bombs_are_refused_with_bounded_memory(svc: Service, client: httpx.Client, bombs, dtype, record_property):
    assert svc.api is not None
    with PeakRss(svc.api.pid) as rss:
        response = post_file(client, bombs[dtype], "bomb.npz", "application/x-npz")
    assert response.status_code == 413, response.text
    assert "decompressed" in response.json()["detail"]
    record_property(f"rss_growth_{dtype}_bomb_mb", rss.growth / MIB)
    print(f"{dtype} bomb ({len(bombs[dtype]):,} bytes): API peak RSS +{rss.growth / MIB:.1f} MB")
    assert rss.growth < RSS_BUDGET


def test_three_bombs_at_once_are_refused_with_bounded_memory(svc: Service, bombs, record_property):
    assert svc.api is not None
    payloads = [bombs["int8"], bombs["float64"], bombs["int8"]]

    def send(data: bytes) -> int:
        with httpx.Client(base_url=svc.url, timeout=120) as c:
            return post_file(c, data, "bomb.npz", "application/x-npz").status_code

    with PeakRss(svc.api.pid) as rss, concurrent.futures.ThreadPoolExecutor(3) as pool:
        statuses = list(pool.map(send, payloads))
    assert statuses == [413, 413, 413]
    record_property("rss_growth_three_bombs_mb", rss.growth / MIB)
    print(f"three bombs at once: API peak RSS +{rss.growth / MIB:.1f} MB")
    assert rss.growth < RSS_BUDGET


def test_a_60_mb_single_line_csv_is_refused_with_bounded_memory(svc: Service, client: httpx.Client, record_property):
    assert svc.api is not None
    line = b"c," * (30 * MIB) + b"y\n"
    with PeakRss(svc.api.pid) as rss:
        response = post_file(client, line, "wide.csv", "text/csv")
    assert response.status_code == 413, response.text
    assert "more than 10,000 columns" in response.json()["detail"]
    record_property("rss_growth_60mb_line_mb", rss.growth / MIB)
    print(f"60 MB single-line CSV: API peak RSS +{rss.growth / MIB:.1f} MB")
    assert rss.growth < RSS_BUDGET


@pytest.mark.parametrize(
    ("name", "words"),
    [("bad\x00name", "control character"), ("report\u202eslx.csv", "bidirectional"), ("n" * 201, "200")],
    ids=["nul", "bidi-override", "too-long"],
)
def test_multipart_name_is_validated_as_the_json_name(client: httpx.Client, name: str, words: str):
    response = post_file(client, b"a,y\n1,0\n2,1\n", "d.csv", "text/csv", name=name)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert [e["field"] for e in problem["errors"]] == ["name"]
    assert words in problem["errors"][0]["message"]
    as_json = client.post("/v1/datasets", json={"name": name, "features": [[1], [2]], "target": [0, 1]})
    assert as_json.status_code == 422 and "name" in [e["field"] for e in as_json.json()["errors"]]


def test_same_content_is_stored_once_and_the_quota_counts_datasets(svc: Service, client: httpx.Client):
    X = np.random.default_rng(7).normal(size=(100_000, 2))  # 2.4 MB stored, y included
    data = io.BytesIO()
    np.savez(data, X=X, y=(X[:, 0] > 0).astype(float))
    ids = []
    try:
        for _ in range(3):
            response = post_file(client, data.getvalue(), "same.npz", "application/x-npz")
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        shas = {client.get(f"/v1/datasets/{i}").json()["sha256"] for i in ids}
        assert len(shas) == 1
        assert [p.name for p in (svc.root / "datasets").glob("*.npz")].count(f"{shas.pop()}.npz") == 1
        over = post_file(client, data.getvalue(), "same.npz", "application/x-npz")  # 4 x 2.4 MB > 8 MiB
        assert over.status_code == 413, over.text
        assert over.json()["title"] == "Storage quota exceeded" and "quota" in over.json()["detail"]
    finally:
        for dataset_id in ids:
            client.delete(f"/v1/datasets/{dataset_id}")
    assert not list((svc.root / "datasets").glob("*.npz"))


def raw_upload_start(url: str, total: int, boundary: str = "b0undary") -> tuple[socket.socket, bytes]:
    """A connection that sent a multipart request's headers and the start of its file part; the rest is the test's."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    headers = (
        f"POST /v1/datasets HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(head) + total + len(tail)}\r\n\r\n"
    ).encode()
    sock.sendall(headers + head + b"a,b,y\n")
    return sock, tail


def temporary_files(pid: int) -> tuple[list[str], list[str]]:
    """The process's open files directly in the temporary directory: (named, unnamed). An unnamed one dies with it."""
    named, unnamed = [], []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if os.path.dirname(target.removesuffix(" (deleted)")) == tempfile.gettempdir():
            (unnamed if target.endswith("(deleted)") else named).append(target)
    return named, unnamed


def test_a_client_that_disconnects_mid_upload_is_no_500(svc: Service, client: httpx.Client):
    assert svc.api is not None
    sock, _ = raw_upload_start(svc.url, 8 * MIB)
    sent = 0
    row = b"1,2,3\n" * 10_000
    while sent < 3 * MIB:  # past the 1 MB the multipart parser keeps in memory: spooled to a file
        sock.sendall(row)
        sent += len(row)
    pid = svc.api.pid
    # The part is spooled to a file without a name, so a kill -9 leaves nothing in the temporary directory.
    named, unnamed = poll(lambda: (files := temporary_files(pid))[1] and files, 20, what="the spooled part")
    assert named == [] and unnamed
    sock.close()
    log = svc.root / "api.log"
    poll(lambda: "client disconnected during upload" in log.read_text(), 20, what="the disconnect log line")
    text = log.read_text()
    assert "Traceback" not in text and "unhandled error" not in text, text[-3000:]

    def counted() -> bool:
        lines = client.get("/metrics").text.splitlines()
        return any('method="POST"' in x and 'route="/v1/datasets"' in x and 'status="499"' in x for x in lines)

    poll(counted, 20, what="the 499 in the metrics")
    assert 'status="500"' not in client.get("/metrics").text


def test_kill_9_mid_upload_leaves_no_temporary_file_and_the_upload_succeeds_at_once(tmp_path: Path):
    service = Service(tmp_path, env_extra={"TRAINAPI_STORAGE_MIN_FREE_BYTES": str(MIB)})
    X = np.random.default_rng(3).normal(size=(1_000_000, 7))  # 56 MB stored: some time to catch it being written
    data = io.BytesIO()
    np.savez(data, X=X, y=(X[:, 0] > 0).astype(float))
    try:
        service.start_redis()
        service.start_api()
        assert service.api is not None
        datasets = tmp_path / "datasets"
        datasets.mkdir(exist_ok=True)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(_post_quietly, service.url, data.getvalue())
            poll(lambda: any(p.name.endswith(".tmp") for p in datasets.iterdir()), 60, 0.001, "the staged file")
            os.kill(service.api.pid, signal.SIGKILL)
            service.api.wait(10)
            service.api = None
            pending.result()
        assert [p.name for p in datasets.iterdir() if p.name.endswith(".tmp")], "killed before the staged file"
        service.start_api()
        assert not list(tmp_path.rglob("*.tmp")), "the API's start removes what the killed one left"
        started = time.monotonic()
        with httpx.Client(base_url=service.url, timeout=60) as c:
            again = post_file(c, data.getvalue(), "big.npz", "application/x-npz")
        assert again.status_code == 201, again.text
        assert time.monotonic() - started < 10
    finally:
        service.stop()


def _post_quietly(url: str, data: bytes) -> None:
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            post_file(c, data, "big.npz", "application/x-npz")
    except httpx.HTTPError:
        pass  # the API was killed under it


def test_a_slow_upload_killed_with_the_api_leaves_nothing(tmp_path: Path):
    service = Service(tmp_path, env_extra={"TRAINAPI_STORAGE_MIN_FREE_BYTES": str(MIB)})
    try:
        service.start_redis()
        service.start_api()
        assert service.api is not None
        sock, _ = raw_upload_start(service.url, 20 * MIB)
        for _ in range(40):
            sock.sendall(b"1,2,3\n" * 10_000)
        pid = service.api.pid
        named, _ = poll(lambda: (files := temporary_files(pid))[1] and files, 20, what="the spooled part")
        assert named == []  # the spooled part has no name: gone with the process
        os.kill(service.api.pid, signal.SIGKILL)
        service.api.wait(10)
        service.api = None
        sock.close()
        service.start_api()
        assert not list(tmp_path.rglob("*.tmp"))
        with httpx.Client(base_url=service.url, timeout=30) as c:
            started = time.monotonic()
            ok = post_file(c, b"a,b,y\n1,2,0\n3,4,1\n", "small.csv", "text/csv")
            assert ok.status_code == 201, ok.text
            assert time.monotonic() - started < 10
    finally:
        service.stop()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 50 MB tmpfs: the API's data directory on a disk that fills up."""
    mount = tmp_path / "full"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small file system for the full-disk test")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=50m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_507_without_leftovers_and_recovers_without_restart(tmp_path: Path, tmpfs: Path):
    service = Service(tmp_path / "svc", env_extra={"TRAINAPI_STORAGE_MIN_FREE_BYTES": "0"})
    (tmp_path / "svc").mkdir()
    X = np.random.default_rng(5).normal(size=(375_000, 8))  # 24 MB stored
    data = io.BytesIO()
    np.savez(data, X=X, y=(X[:, 0] > 0).astype(float))
    filler = tmpfs / f"filler-{uuid.uuid4().hex}"
    try:
        service.start_redis()
        service.start_api(data_dir=tmpfs)
        filler.write_bytes(bytes(36 * MIB))
        with httpx.Client(base_url=service.url, timeout=60) as c:
            full = post_file(c, data.getvalue(), "big.npz", "application/x-npz")
            assert full.status_code == 507, full.text
            assert full.json()["title"] == "Insufficient storage"
            assert not [p for p in tmpfs.rglob("*") if p.is_file() and p != filler]
            filler.unlink()
            ok = post_file(c, data.getvalue(), "big.npz", "application/x-npz")
            assert ok.status_code == 201, ok.text
        # With a reserve larger than the disk, uploads are refused before anything is read.
        service.stop_api()
        service.env_extra["TRAINAPI_STORAGE_MIN_FREE_BYTES"] = str(100 * MIB)
        service.start_api(data_dir=tmpfs)
        with httpx.Client(base_url=service.url, timeout=60) as c:
            early = post_file(c, b"a,y\n1,0\n2,1\n", "d.csv", "text/csv")
            assert early.status_code == 507 and "kept free" in early.json()["detail"], early.text
    finally:
        service.stop()
