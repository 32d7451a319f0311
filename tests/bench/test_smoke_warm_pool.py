"""Smoke run of bench/warm_pool.py (tiny sizes, results in a temporary directory).

Keeps the benchmark script from rotting; it asserts what it produces, not timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "warm_pool.py"
LAUNCHER = ROOT / ".venv-kernel" / "bin" / "kubeflow-kernel-launcher"


@pytest.mark.slow
@pytest.mark.skipif(not LAUNCHER.exists(), reason=f"{LAUNCHER} missing: run `make venv` first")
def test_warm_pool_benchmark_runs(tmp_path: Path) -> None:
    args = ["--runs", "1", "--pool-size", "2", "--burst", "3", "--idle-seconds", "1"]
    subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--out-dir", str(tmp_path)],
        check=True,
        timeout=600,
        cwd=tmp_path,
        capture_output=True,
    )
    result = json.loads((tmp_path / "warm_pool.json").read_text())
    assert result["runs"] == 1 and result["pool_size"] == 2
    assert result["warm_starts"] == 1  # the one measured pool start was claimed from the pool
    assert result["burst"]["requested"] == 3 and result["burst"]["double_claims"] == 0
    assert result["burst"]["started"] == 3 and result["burst"]["warm_from_waiting"] == 2
    section = (tmp_path / "warm_pool.md").read_text()
    assert section.startswith("## Warm kernel pools")
    assert "--pool-size 2" in section
