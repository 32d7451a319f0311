"""Smoke run of bench/launcher_overhead.py (two runs, results in a temporary directory).

Keeps the benchmark script from rotting; it asserts that it produces its files, not timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "launcher_overhead.py"
LAUNCHER = ROOT / ".venv-kernel" / "bin" / "kubeflow-kernel-launcher"


@pytest.mark.slow
@pytest.mark.skipif(not LAUNCHER.exists(), reason=f"{LAUNCHER} missing: run `make venv` first")
def test_launcher_overhead_benchmark_runs(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(SCRIPT), "--runs", "2", "--out-dir", str(tmp_path)],
        check=True,
        timeout=240,
        cwd=tmp_path,
        capture_output=True,
    )
    result = json.loads((tmp_path / "launcher_overhead.json").read_text())
    assert result["runs"] == 2
    assert len(result["samples_ms"]["info_latency"]) == 2
    section = (tmp_path / "launcher_overhead.md").read_text()
    assert section.startswith("## Launcher overhead")
    assert "--runs 2" in section
