"""Smoke run of bench/direct_start.py (tiny sizes, results in a temporary directory).

Keeps the benchmark script from rotting: one measured start of each kind (direct mode, through
the gateway, local) and one counted start of each pod kind. It asserts what the run did, not
timings: every start produced its output, the three kinds were measured, the request count
saw the JupyterKernel created by the right account, and the report renders the section.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.smoke import load_bench, requires_launcher, run_bench

report = load_bench("report.py")


@pytest.mark.slow
@requires_launcher
def test_direct_start_benchmark_runs(tmp_path: Path) -> None:
    args = ("--runs", "1", "--count-starts", "1", "--timeout", "90")
    run_bench("direct_start.py", *args, "--out-dir", str(tmp_path), cwd=tmp_path, timeout=600)
    result = json.loads((tmp_path / "direct_start.json").read_text())

    assert result["kinds"] == ["direct", "gateway", "local"]
    assert result["started"] == {"direct": 1, "gateway": 1, "local": 1}, result["failures"]
    for sample in result["samples"]:
        assert sample["ok"] and sample["kernel_id"], sample
        assert sample["session_s"] <= sample["info_s"] <= sample["output_s"], sample
    assert {s["kind"] for s in result["samples"]} == {"direct", "gateway", "local"}
    assert result["not_cleaned"] == 0  # every pod kernel's JupyterKernel and pod went away

    # The JupyterKernel of a direct start is created by the notebook server's own account,
    # that of a gateway start by the gateway's; the operator makes its pod in both.
    requests = result["requests_per_start"]
    for kind in ("direct", "gateway"):
        assert requests[kind]["started"] == 1
        assert requests[kind]["front_end"]["requests"].get("create jupyterkernels") == 1, kind
        assert requests[kind]["operator"]["requests"].get("create pods") == 1, kind

    section = (tmp_path / "direct_start.md").read_text()
    assert section.startswith("## Kernel start: direct mode vs through the gateway vs local")
    assert "--runs 1" in section
    page = report.render(tmp_path)
    row = next(line for line in page.splitlines() if line.startswith("| Start → first output"))
    assert all(f"{kind} 1/1" in row for kind in ("direct", "gateway", "local")), row
