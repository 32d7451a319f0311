"""Smoke run of bench/gateway_recovery.py (one kernel, results in a temporary directory).

Keeps the benchmark script from rotting; it asserts what was produced and that the kernel
survived the SIGKILL of its gateway, not timings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.smoke import requires_launcher, run_bench


@pytest.mark.slow
@requires_launcher
def test_gateway_recovery_benchmark_runs(tmp_path: Path) -> None:
    run_bench("gateway_recovery.py", "--sizes", "1", "--out-dir", str(tmp_path), cwd=tmp_path)
    result = json.loads((tmp_path / "gateway_recovery.json").read_text())
    (row,) = result["rows"]
    assert row["kernels"] == 1
    assert row["usable"] == 1  # its `x` read back through the new gateway process
    assert row["jupyterkernels_deleted_or_replaced"] == 0
    section = (tmp_path / "gateway_recovery.md").read_text()
    assert section.startswith("## Gateway killed")
    assert "--sizes 1" in section
