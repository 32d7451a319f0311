"""API faults at small size (bench/faults_api.py): the claims of each row of the reliability table.

Each test runs one row's scenario (sandbox + real operator + real gateway and notebook server,
kernels started through the notebook server) with a misbehaving API server and asserts on the
row it wrote what the table claims: every kernel started, none lost or restarted behind the
user's back, one pod per kernel, culling still culls, nothing left over.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "faults_api.py"
LAUNCHER = ROOT / ".venv-kernel" / "bin" / "kubeflow-kernel-launcher"
ROWS = [
    "api-5pct-5xx",
    "api-409-writes",
    "api-latency-1s",
    "api-watch-drop-10s",
    "api-410-resume",
    "api-restart",
]


@pytest.mark.slow
@pytest.mark.skipif(not LAUNCHER.exists(), reason=f"{LAUNCHER} missing: run `make venv` first")
@pytest.mark.parametrize("row_id", ROWS)
def test_api_fault_row(row_id: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "small", "--only", row_id, "--out", str(tmp_path)],
        timeout=900,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    row = json.loads((tmp_path / f"{row_id}.json").read_text())
    assert row["id"] == row_id and row["size"] == "small"
    why = row["notes"]
    assert row["started"] == row["requested"] > 0, why  # every start under the fault succeeded
    assert row["usable_after"] == 2 * row["requested"], why  # idle ones + new ones kept their x
    assert row["lost"] == 0, why
    assert row["details"]["duplicate_pods"] == 0, why  # one pod per kernel id, ever
    assert row["details"]["reported_dead"] == 0, why  # no false "dead" → restart
    assert row["details"]["culled_under_fault"], why  # culling still culls
    assert row["orphans"] == {"jupyterkernels": 0, "pods": 0, "secrets": 0, "roles": 0}, why
    assert row["met"] is True, why
    if row_id == "api-restart":
        assert row["recover_seconds"] is not None, why  # operator and gateway talked again
