"""The process, node and pod fault scenarios of the reliability table, at their small size.

Each test runs ``bench/faults_<name>.py --size small`` as the table's command does (its own
sandbox, the real operator, the real gateway and notebook server where the scenario needs them)
and asserts the scenario's claims on the row it wrote: nothing lost, nothing left over, every
restart shown with its reason. The full sizes run with ``make faults``; their rows are in
``bench/results/faults/`` and docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import stack

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

ROOT = Path(__file__).resolve().parents[2]
NO_ORPHANS = {"jupyterkernels": 0, "pods": 0, "secrets": 0, "roles": 0}


def run_scenario(script: str, row_id: str, out: Path, timeout: float = 600) -> dict[str, Any]:
    """Run one scenario at ``--size small``; return its row (the script's output on failure)."""
    missing = stack.missing_parts()
    if missing:
        pytest.skip("the full stack is not built yet: missing " + "; ".join(missing))
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--size", "small", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    path = out / f"{row_id}.json"
    assert path.exists(), f"{script} wrote no row (exit {proc.returncode}):\n{proc.stdout[-3000:]}"
    row: dict[str, Any] = json.loads(path.read_text())
    assert row["size"] == "small" and row["id"] == row_id and row["stack"] == "elastic-jupyter"
    assert row["command"] == f".venv/bin/python bench/{script} --size small"
    return row


def test_operator_kill9_during_a_burst_leaves_exactly_one_running_pod_per_kernel(
    tmp_path: Path,
) -> None:
    row = run_scenario("faults_operator.py", "operator-kill9", tmp_path)
    final = row["details"]["final"]
    assert final["pods"] == row["requested"], row["notes"]
    assert final["right"] == row["requested"], final["wrong"]
    assert row["started"] == row["usable_after"] == row["requested"]
    assert row["lost"] == 0 and row["orphans"] == NO_ORPHANS, row["notes"]
    assert row["met"] is True


def test_gateway_kill9_during_starts_every_start_answers_and_nothing_is_left(
    tmp_path: Path,
) -> None:
    row = run_scenario("faults_gateway.py", "gateway-kill9", tmp_path)
    starts = row["details"]["starts"]
    assert len(starts) == row["requested"]
    assert row["details"]["unreadable"] == [], "starts that failed without a readable reason"
    assert row["usable_after"] == row["started"] and row["lost"] == 0, row["notes"]
    assert row["orphans"] == NO_ORPHANS, row["details"]["leftovers"]
    failed = row["requested"] - row["started"]
    assert row["details"]["retry_usable"] == failed, "notebooks opened again did not work"
    assert row["met"] is True


def _assert_restarted_with_reason(row: dict[str, Any]) -> None:
    details = row["details"]
    started = row["started"]
    assert started == row["requested"], row["notes"]
    assert details["restarting"] == started, "notebooks that never saw 'restarting'"
    assert details["reason_recorded"] == started, "JupyterKernels without a failure reason"
    assert details["reason_shown"] == started, (
        f"the reason did not reach the notebook user: {details['reasons']}; last messages "
        f"{details['sample_messages']}, kernel model {details['sample_model']}"
    )
    assert row["usable_after"] == started and row["lost"] == 0, row["notes"]
    assert details["one_jk_each"], details["jk_counts"]
    assert row["orphans"] == NO_ORPHANS, details["leftovers"]
    assert row["met"] is True


def test_pod_deletion_storm_every_kernel_restarts_and_says_why(tmp_path: Path) -> None:
    _assert_restarted_with_reason(run_scenario("faults_pods.py", "pod-deletion-storm", tmp_path))


def test_node_loss_kernels_restart_through_eg_and_say_why(tmp_path: Path) -> None:
    _assert_restarted_with_reason(run_scenario("faults_node.py", "node-loss", tmp_path))
