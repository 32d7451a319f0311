"""Smoke run of bench/launcher_overhead.py (two runs, results in a temporary directory).

Keeps the benchmark script from rotting; it asserts that it produces its files, not timings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.smoke import requires_launcher, run_bench


@pytest.mark.slow
@requires_launcher
def test_launcher_overhead_benchmark_runs(tmp_path: Path) -> None:
    run_bench("launcher_overhead.py", "--runs", "2", "--out-dir", str(tmp_path), cwd=tmp_path)
    result = json.loads((tmp_path / "launcher_overhead.json").read_text())
    assert result["runs"] == 2
    assert len(result["samples_ms"]["info_latency"]) == 2
    section = (tmp_path / "launcher_overhead.md").read_text()
    assert section.startswith("## Launcher overhead")
    assert "--runs 2" in section
