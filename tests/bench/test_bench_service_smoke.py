"""Smoke test of bench/service.py: the quick run starts its own service, measures and prints its table.

No timing is asserted: the machines running tests are shared and noisy, and
the benchmark itself never fails on a missed performance target.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "service.py"


def test_quick_run_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        cwd=tmp_path,  # the script must find the packages from anywhere
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    lines = proc.stdout.splitlines()
    header = [line for line in lines if line.startswith("| metric")]
    assert len(header) == 1
    table = lines[lines.index(header[0]) :]
    table = table[: next((i for i, line in enumerate(table) if not line.startswith("|")), len(table))]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert all(len(row) == 4 for row in rows)
    metrics = " ".join(row[0] for row in rows)
    for name in ("submission", "drain", "p99", "queue latency", "e2e", "engine alone", "overhead"):
        assert name in metrics
    targets = [row for row in rows if row[2] != "—"]
    assert len(targets) == 3 and all(row[3] in ("yes", "**no**") for row in targets)

    results = json.loads(out.read_text())
    assert results["mode"] == "quick"
    submitted = results["submit"]
    assert submitted["accepted"] == submitted["jobs"] and submitted["succeeded"] == submitted["accepted"]
    assert results["get"]["requests"] > 0 and results["get"]["errors"] == 0
    assert results["e2e"]["engine_ms"] > 0 and results["e2e"]["e2e_ms"] > 0
    assert results["profile"]["threadpool_hops_per_request"] == 0  # the status path never leaves the event loop
