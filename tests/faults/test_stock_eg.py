"""The stock Enterprise Gateway comparison rows at their small size, and our matching row.

``bench/faults_stock_eg.py --size small`` runs EG 3.3's own ``KubernetesProcessProxy`` on the
sandbox (``bench/_stock_eg.py``). The stock rows record what EG loses; these tests assert only
that the harness really ran stock EG kernels (a cell's output, EG's own pod template) so the
comparison measures something, and that our own gateway-restart row holds its claim.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.kernel_launcher.conftest import LAUNCHER

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "faults_stock_eg.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1200),  # four small rows, each on a fresh stack
    pytest.mark.skipif(not LAUNCHER.exists(), reason=f"{LAUNCHER} missing: run `make venv`"),
]


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("stock-eg")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "small", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=ROOT,
    )
    found = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    expected = {
        "stock-eg-api-5pct-5xx",
        "stock-eg-api-watch-drop-10s",
        "stock-eg-gateway-restart",
        "gateway-restart-state",
    }
    assert set(found) == expected, result.stderr[-3000:]
    return found


def test_stock_eg_really_ran_its_own_kernels(rows: dict[str, dict[str, Any]]) -> None:
    row = rows["stock-eg-gateway-restart"]
    assert row["stack"] == "stock EG 3.3"
    cell = row["x_cell"]
    assert cell["output"] == str(cell["x"])  # a cell ran in a stock kernel and printed x
    pod = row["x_kernel_pod"]
    assert pod["labels"].get("source") == "kernel-pod.yaml"  # EG's launch_kubernetes.py made it
    assert pod["image"].startswith("elyra/kernel-py")
    assert row["requested"] == row["started"] >= 1


def test_stock_eg_api_rows_went_through_the_fault_proxy(rows: dict[str, dict[str, Any]]) -> None:
    for row_id in ("stock-eg-api-5pct-5xx", "stock-eg-api-watch-drop-10s"):
        row = rows[row_id]
        assert row["stack"] == "stock EG 3.3" and row["scenario"] == "API faults"
        assert row["x_pod_list_requests"] > 0, row  # EG's API traffic passed the harness's proxy
        assert row["requested"] >= 1 and isinstance(row["met"], bool)


def test_our_gateway_restart_keeps_every_kernel(rows: dict[str, dict[str, Any]]) -> None:
    row = rows["gateway-restart-state"]
    assert row["stack"] == "elastic-jupyter"
    assert row["usable_after"] == row["requested"] and row["lost"] == 0, row["notes"]
    assert row["orphans"] == {"jupyterkernels": 0, "pods": 0, "secrets": 0, "roles": 0}, row
    assert row["met"], row["notes"]
    assert row["x_cell"]["output"] == str(row["x_cell"]["x"])
