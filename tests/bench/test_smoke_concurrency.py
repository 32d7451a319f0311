"""Smoke run of bench/concurrency.py with 2 kernels of each kind (results in a temporary directory).

Keeps the benchmark script from rotting: it must start its stack, start the kernels at once,
shut them down, find nothing left and write both result files. It asserts what was produced,
not timings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.smoke import requires_launcher, run_bench


@pytest.mark.slow
@requires_launcher
def test_concurrency_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = ["--kernels", "2", "--rounds", "2", "--out-dir", str(out)]
    run_bench("concurrency.py", *args, cwd=tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["concurrency.json", "concurrency.md"]
    result = json.loads((out / "concurrency.json").read_text())
    assert result["kernels"] == 2 and result["rounds"] == 2
    # The order alternates between rounds, so neither kind always runs on a fresher machine.
    assert [r["order"] for r in result["per_round"]] == [["remote", "local"], ["local", "remote"]]
    for kind in ("remote", "local"):
        pooled = result[kind]
        assert pooled["requested"] == 4
        assert pooled["succeeded"] == 4, pooled["errors"]
        assert set(pooled["ready_s"]) == {"median", "p95", "min", "max"}
        assert len(pooled["batch_wall_s"]) == 2
        assert all(len(r[kind]["starts"]) == 2 for r in result["per_round"])
    # Shutting down through the gateway leaves no JupyterKernel, pod or gateway kernel.
    assert result["remote"]["left_after_shutdown"] == {
        "jupyterkernels": 0,
        "pods": 0,
        "gateway_kernels": 0,
    }
    assert result["local"]["left_after_shutdown"]["gateway_kernels"] == 0
    assert result["remote"]["jupyterkernel_creates_by_gateway"] == 4
    assert "first_reply" in result["remote"]["timeline_ms"]
    assert isinstance(result["ratio_median"], float)
    assert set(result["goals"]) == {"all_started", "ratio_median", "nothing_left"}
    assert result["goals"]["all_started"]["met"] is True
    assert result["goals"]["nothing_left"]["met"] is True
    section = (out / "concurrency.md").read_text()
    assert section.startswith("## Concurrent kernel starts (2 at once")
    assert "Command: `.venv/bin/python bench/concurrency.py --kernels 2 --rounds 2`" in section
    assert "Machine:" in section
