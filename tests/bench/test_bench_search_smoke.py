"""Smoke test of ``bench/sweep.py --search``: a tiny TPE-vs-random run finishes and prints its tables.

Nothing about which strategy wins is asserted: with 4 one-epoch trials the
comparison means nothing; bench/README.md has the real run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "sweep.py"


def test_tiny_search_run_prints_its_tables(tmp_path: Path) -> None:
    out = tmp_path / "search.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--search", "--seeds", "1", "--trials", "4", "--epochs", "1", "--json", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| seed | random: best val_loss" in proc.stdout and "| parameter | random | TPE |" in proc.stdout
    results = json.loads(out.read_text())
    [row] = results["rows"]
    assert row["tpe_best"] <= row["tpe_median"] and row["random_best"] <= row["random_median"]
    assert [len(results["runs"]["0"][s]) for s in ("random", "tpe")] == [4, 4]
