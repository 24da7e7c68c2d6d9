"""Smoke test of ``bench/sweep.py --search``: a tiny TPE-vs-random run finishes and prints its tables.

Run in this process (the bench's code is the service's samplers and the
engine, already imported here). Nothing about which strategy wins is
asserted: with 4 one-epoch trials the comparison means nothing;
bench/README.md has the real run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "sweep.py"


def test_tiny_search_run_prints_its_tables(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_sweep", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.search_bench(seeds=1, trials=4, epochs=1)
    out = capsys.readouterr().out
    assert "| seed | random: best val_loss" in out and "| parameter | random | TPE |" in out
    [row] = results["rows"]
    assert row["tpe_best"] <= row["tpe_median"] and row["random_best"] <= row["random_median"]
    assert [len(results["runs"][0][s]) for s in ("random", "tpe")] == [4, 4]
