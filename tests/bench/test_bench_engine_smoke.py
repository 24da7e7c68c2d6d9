"""Smoke test of bench/engine_speed.py: the quick, engine-only run finishes and prints its tables.

No timing is asserted: the machines running tests are shared and noisy, and
the benchmark itself never fails on a missed performance target.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "engine_speed.py"


def test_quick_engine_only_run_prints_tables(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--no-torch", "--no-sklearn", "--json", str(out)],
        cwd=tmp_path,  # the script must find the engine package from anywhere
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert "float32 GEMM reference" in text
    for case in ("large", "small"):
        assert f"== {case}:" in text
    header = [line for line in text.splitlines() if line.startswith("framework")]
    assert len(header) == 2  # one table per case
    rows = [line for line in text.splitlines() if re.match(r"\S.* +\d+\.\d+ / *\d+\.\d+ ", line)]
    assert [row.split()[0] for row in rows] == ["engine", "engine"]  # no torch or sklearn rows
    assert "== targets" in text

    results = json.loads(out.read_text())
    assert results["mode"] == "quick"
    assert set(results["cases"]) == {"large", "small"}
    for summary in results["cases"].values():
        labels = [row["label"] for row in summary["frameworks"]]
        assert labels == ["engine"]
        assert summary["frameworks"][0]["train_best"] > 0
