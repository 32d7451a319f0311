"""Smoke run of bench/gateway_start.py (tiny sizes, results in a temporary directory).

Keeps the benchmark script from rotting; it asserts that it produces its files, not timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gateway_start.py"
LAUNCHER = ROOT / ".venv-kernel" / "bin" / "kubeflow-kernel-launcher"


@pytest.mark.slow
@pytest.mark.skipif(not LAUNCHER.exists(), reason=f"{LAUNCHER} missing: run `make venv` first")
def test_gateway_start_benchmark_runs(tmp_path: Path) -> None:
    args = ["--runs", "1", "--idle-kernels", "1", "--idle-seconds", "1"]
    subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--out-dir", str(tmp_path)],
        check=True,
        timeout=240,
        cwd=tmp_path,
        capture_output=True,
    )
    result = json.loads((tmp_path / "gateway_start.json").read_text())
    assert result["runs"] == 1
    assert len(result["samples_ms"]["remote_start"]) == 1
    assert len(result["samples_ms"]["local_start"]) == 1
    assert "requests_per_kernel_minute" in result["idle"]
    section = (tmp_path / "gateway_start.md").read_text()
    assert section.startswith("## Gateway kernel start")
    assert "--runs 1" in section
