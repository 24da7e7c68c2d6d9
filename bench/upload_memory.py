"""Peak memory of the API while it takes a CSV upload.

Starts Redis and a fresh API (``trainapi.processes.LocalService``, no worker)
for each file, uploads it with httpx (streamed from disk) and reads the API
process's peak resident set (``VmHWM`` in ``/proc/<pid>/status``) before and
after. Two files of about ``--mb`` MB: all-numeric (12 float columns and a
0/1 label) and a mixed table (numeric columns with gaps, two text columns, a
boolean column, a text label). The parsed arrays are what the upload becomes:
``X`` float64 plus ``y``.

    .venv/bin/python bench/upload_memory.py            # about 30 s
    .venv/bin/python bench/upload_memory.py --mb 5     # quicker
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from trainapi.processes import LocalService

MB = 1024 * 1024


def numeric_csv(path: Path, target_mb: float, seed: int = 0) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    block = rng.normal(size=(2_000, 12)).round(6)
    labels = (block[:, 0] > 0).astype(int)
    lines = "".join(",".join(f"{v:.6f}" for v in row) + f",{y}\n" for row, y in zip(block, labels, strict=True))
    header = ",".join(f"x{i}" for i in range(12)) + ",label\n"
    repeats = max(1, int(target_mb * MB / len(lines)))
    with path.open("w") as f:
        f.write(header)
        for _ in range(repeats):
            f.write(lines)
    return repeats * 2_000, 12


def mixed_csv(path: Path, target_mb: float, seed: int = 0) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    n = 2_000
    values = rng.normal(size=(n, 8)).round(4).astype(str)
    values[rng.random((n, 8)) < 0.05] = ""
    colors = rng.choice(["red", "green", "blue", "cyan"], n)
    towns = np.char.add("town", rng.integers(0, 500, n).astype(str))
    flags = rng.choice(["true", "false", ""], n)
    labels = rng.choice(["yes", "no"], n)
    rows = [
        ";".join([*v, c, t, f, y]) + "\n"
        for v, c, t, f, y in zip(values.tolist(), colors, towns, flags, labels, strict=True)
    ]
    lines = "".join(rows).replace(".", ",")  # decimal commas, semicolons: a European export
    header = ";".join([*(f"x{i}" for i in range(8)), "color", "town", "member", "label"]) + "\n"
    repeats = max(1, int(target_mb * MB / len(lines)))
    with path.open("w") as f:
        f.write(header)
        for _ in range(repeats):
            f.write(lines)
    return repeats * n, 11


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def measure(path: Path, form: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        service = LocalService(Path(tmp), env_extra={"TRAINAPI_MAX_UPLOAD_BYTES": str(256 * MB)})
        service.start_redis()
        service.start_api()
        try:
            assert service.api is not None
            pid = service.api.pid
            with httpx.Client(base_url=service.url, timeout=600) as client:
                client.get("/v1/datasets")  # warm: first request's imports and objects
                rss_before = status_kb(pid, "VmRSS")
                hwm_before = status_kb(pid, "VmHWM")
                started = time.perf_counter()
                with path.open("rb") as f:
                    response = client.post("/v1/datasets", files={"file": (path.name, f, "text/csv")}, data=form)
                seconds = time.perf_counter() - started
            response.raise_for_status()
            hwm_after = status_kb(pid, "VmHWM")
            body = response.json()
        finally:
            service.stop()
    return {
        "rss_before_mb": rss_before / 1024,
        "peak_before_mb": hwm_before / 1024,
        "peak_after_mb": hwm_after / 1024,
        "growth_mb": (hwm_after - rss_before) / 1024,
        "seconds": seconds,
        "n_samples": body["n_samples"],
        "n_features": body["n_features"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=30.0, help="size of each file in MB (default 30)")
    parser.add_argument("--numeric-only", action="store_true", help="only the all-numeric file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = [("numeric", Path(tmp) / "numeric.csv", numeric_csv, {})]
        if not args.numeric_only:
            files.append(("mixed", Path(tmp) / "mixed.csv", mixed_csv, {"decimal": ","}))
        columns = ("file", "size", "rows x cols", "parsed arrays", "API RSS before", "API peak during", "growth")
        print("| " + " | ".join([*columns, "growth / file", "time"]) + " |")
        print("|---|---|---|---|---|---|---|---|---|")
        for label, path, make, form in files:
            n, p = make(path, args.mb)
            size = path.stat().st_size / MB
            arrays = n * (p + 1) * 8 / MB
            r = measure(path, form)
            print(
                f"| {label} | {size:.1f} MB | {n:,} x {p + 1} | {arrays:.1f} MB | {r['rss_before_mb']:.0f} MB"
                f" | {r['peak_after_mb']:.0f} MB | {r['growth_mb']:.0f} MB | {r['growth_mb'] / size:.1f}x"
                f" | {r['seconds']:.1f} s |"
            )


if __name__ == "__main__":
    main()
