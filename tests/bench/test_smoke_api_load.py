"""Smoke run of bench/api_load.py: 2 idle kernels, a 5 s window, results in a temporary directory.

Keeps the benchmark script from rotting: it must start the kernels, count requests and writes by
user agent, sample RSS, shut everything down and write its four result files (API load and
memory). It asserts what was produced, not timings or rates.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.smoke import requires_launcher, run_bench


@pytest.mark.slow
@requires_launcher
def test_api_load_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = ["--kernels", "2", "--window", "5", "--step", "1"]
    run_bench("api_load.py", *args, "--out-dir", str(out), cwd=tmp_path)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["api_load.json", "api_load.md", "memory.json", "memory.md"]
    result = json.loads((out / "api_load.json").read_text())
    assert result["kernels"] == 2
    assert result["kernels_running"] == 2
    start = result["start_phase"]
    # Every start creates one JupyterKernel (the gateway) and one pod (the operator).
    # Per kernel: its JupyterKernel and the kernel's Secret (its launch token).
    assert start["gateway_writes"] == {
        "create jupyterkernels.kubeflow.tkestack.io": 2,
        "create secrets": 2,
    }
    assert start["operator_writes"]["create pods"] == 2
    assert start["operator_writes_per_kernel"] >= 2  # the floor: create the pod, write status
    idle = result["idle"]
    assert set(idle["by_group"]) == {"gateway", "operator", "other"}
    assert idle["stock_eg_per_kernel_minute"] == 20
    assert idle["stock_eg_per_minute"] == 40
    assert set(result["goals"]) == {"idle_per_kernel_minute", "writes_per_kernel_start"}
    assert result["left_after_shutdown"] == {"jupyterkernels": 0, "pods": 0, "gateway_kernels": 0}
    memory = json.loads((out / "memory.json").read_text())
    assert [int(k) for k, _ in memory["gateway_points"]] == [0, 1, 2]
    assert isinstance(memory["gateway_mib_per_kernel"], float)
    assert isinstance(memory["operator_mib_per_1000_kernels"], float)
    api_md = (out / "api_load.md").read_text()
    assert api_md.startswith("## API load with 2 idle kernels")
    assert "Command: `.venv/bin/python bench/api_load.py --kernels 2 --window 5 --step 1`" in api_md
    memory_md = (out / "memory.md").read_text()
    assert memory_md.startswith("## Memory")
    assert "Machine:" in memory_md and "Command: `.venv/bin/python bench/api_load.py" in memory_md
