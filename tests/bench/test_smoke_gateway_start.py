"""Smoke run of bench/gateway_start.py (tiny sizes, results in a temporary directory).

Keeps the benchmark script from rotting; it asserts that it produces its files, not timings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.smoke import requires_launcher, run_bench


@pytest.mark.slow
@requires_launcher
def test_gateway_start_benchmark_runs(tmp_path: Path) -> None:
    args = ["--runs", "1", "--idle-kernels", "1", "--idle-seconds", "1"]
    run_bench("gateway_start.py", *args, "--out-dir", str(tmp_path), cwd=tmp_path)
    result = json.loads((tmp_path / "gateway_start.json").read_text())
    assert result["runs"] == 1
    assert len(result["samples_ms"]["remote_start"]) == 1
    assert len(result["samples_ms"]["local_start"]) == 1
    assert "requests_per_kernel_minute" in result["idle"]
    section = (tmp_path / "gateway_start.md").read_text()
    assert section.startswith("## Gateway kernel start")
    assert "--runs 1" in section
