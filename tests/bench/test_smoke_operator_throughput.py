"""Smoke run of bench/operator_throughput.py with 5 kernels (results in a temporary directory).

Keeps the benchmark script from rotting: it must start its sandbox and operator, get every
kernel Running and write both result files. It asserts what was produced, not timings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.smoke import ROOT, run_bench


@pytest.mark.slow
def test_operator_throughput_benchmark_runs(tmp_path: Path) -> None:
    run_bench("operator_throughput.py", "--kernels", "5", "--output-dir", str(tmp_path), cwd=ROOT)
    result = json.loads((tmp_path / "operator_throughput.json").read_text())
    assert result["kernels"] == 5
    assert result["kernels_per_second"] > 0
    assert result["api_writes"]["create pods"] == 5
    assert result["api_writes_per_kernel"] >= 2  # the floor: create the pod, write the status
    assert result["operator"]["peak_rss_mib"] > 0
    assert result["baseline_without_operator"]["pods_per_second"] > 0
    assert result["operator_without_kubelet"]["pods_per_second"] > 0
    markdown = (tmp_path / "operator_throughput.md").read_text()
    assert markdown.startswith("## Operator throughput")
    assert "--kernels 5" in markdown
