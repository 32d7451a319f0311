"""Pod → JupyterKernel status and Events: the pure interpretation (no cluster).

Each pod fixture is shaped like what a kubelet/scheduler writes for that situation.
"""

from __future__ import annotations

from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.operator import kernel_pod, kernel_status

NOW = "2026-01-01T00:00:10Z"
EARLIER = "2026-01-01T00:00:00Z"


def pod(
    phase: str = "Pending",
    *,
    node: str | None = None,
    scheduled: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    ip: str | None = None,
    reason: str | None = None,
    message: str | None = None,
    ready: bool | None = None,
    init_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": []}
    if scheduled is not None:
        status["conditions"].append({"type": "PodScheduled", **scheduled})
    elif node:
        status["conditions"].append({"type": "PodScheduled", "status": "True"})
    if ready is not None:
        status["conditions"].append({"type": "Ready", "status": "True" if ready else "False"})
    if state is not None:
        status["containerStatuses"] = [{"name": "kernel", "state": state}]
    if init_state is not None:
        status["initContainerStatuses"] = [{"name": "init", "state": init_state}]
    if ip:
        status.update(podIP=ip, hostIP="127.0.0.1", startTime=EARLIER)
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    spec: dict[str, Any] = {"containers": [{"name": "kernel"}]}
    if node:
        spec["nodeName"] = node
    return {
        "metadata": {
            "name": "k1",
            "namespace": "ns",
            "annotations": {kernel_pod.ANNOTATION_GENERATION: "1"},
        },
        "spec": spec,
        "status": status,
    }


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


UNSCHEDULABLE_MESSAGE = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."


@pytest.mark.parametrize(
    ("case", "the_pod", "phase", "reason", "failed"),
    [
        ("just created", pod(), "Pending", None, False),
        (
            "unschedulable",
            pod(
                scheduled={
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": UNSCHEDULABLE_MESSAGE,
                }
            ),
            "Pending",
            "Unschedulable",
            False,
        ),
        (
            "container creating",
            pod(node="node-1", state={"waiting": {"reason": "ContainerCreating"}}),
            "Pending",
            None,
            False,
        ),
        *[
            (
                waiting,
                pod(node="node-1", state={"waiting": {"reason": waiting, "message": "boom"}}),
                "Pending",
                waiting,
                True,
            )
            for waiting in (
                "ErrImagePull",
                "ImagePullBackOff",
                "InvalidImageName",
                "CreateContainerConfigError",
            )
        ],
        (
            "running",
            pod("Running", node="node-1", ip="127.0.0.5", state={"running": {}}, ready=True),
            "Running",
            None,
            False,
        ),
        (
            "crash loop",
            pod("Running", node="node-1", state={"waiting": {"reason": "CrashLoopBackOff"}}),
            "Running",
            "CrashLoopBackOff",
            True,
        ),
        (
            "exit 0",
            pod(
                "Succeeded",
                node="node-1",
                state={"terminated": {"exitCode": 0, "reason": "Completed"}},
            ),
            "Succeeded",
            "Completed",
            False,
        ),
        (
            "failing command",
            pod("Failed", node="node-1", state={"terminated": {"exitCode": 3, "reason": "Error"}}),
            "Failed",
            "Error",
            True,
        ),
        (
            "out of memory",
            pod(
                "Failed",
                node="node-1",
                state={"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
            ),
            "Failed",
            "OOMKilled",
            True,
        ),
        (
            "evicted",
            pod("Failed", node="node-1", reason="Evicted", message="low on memory"),
            "Failed",
            "Evicted",
            True,
        ),
        (
            "init container fails",
            pod(node="node-1", init_state={"terminated": {"exitCode": 1, "reason": "Error"}}),
            "Pending",
            "Error",
            True,
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_pod_states(
    case: str, the_pod: dict[str, Any], phase: str, reason: str | None, failed: bool
) -> None:
    status = kernel_status.kernel_status(the_pod, None, NOW)
    assert status["phase"] == phase, case
    assert status.get("reason") == reason, case
    assert conditions(status)["Failed"]["status"] == ("True" if failed else "False"), case
    assert status["podName"] == "k1"
    assert status["observedGeneration"] == 1


def test_unschedulable_carries_the_schedulers_message() -> None:
    the_pod = pod(
        scheduled={"status": "False", "reason": "Unschedulable", "message": UNSCHEDULABLE_MESSAGE}
    )
    status = kernel_status.kernel_status(the_pod, None, NOW)
    assert status["message"] == UNSCHEDULABLE_MESSAGE
    scheduled = conditions(status)[crds.CONDITION_SCHEDULED]
    assert scheduled["status"] == "False"
    assert scheduled["reason"] == "Unschedulable"
    assert scheduled["message"] == UNSCHEDULABLE_MESSAGE


def test_running_kernel_reports_where_it_runs() -> None:
    the_pod = pod("Running", node="node-1", ip="127.0.0.5", state={"running": {}}, ready=True)
    status = kernel_status.kernel_status(the_pod, None, NOW)
    assert status["podIP"] == "127.0.0.5"
    assert status["hostIP"] == "127.0.0.1"
    assert status["nodeName"] == "node-1"
    assert status["startTime"] == EARLIER
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Scheduled": "True",
        "Running": "True",
        "Ready": "True",
        "Failed": "False",
    }


def test_exit_code_is_reported() -> None:
    the_pod = pod("Failed", node="n", state={"terminated": {"exitCode": 3, "reason": "Error"}})
    status = kernel_status.kernel_status(the_pod, None, NOW)
    assert status["exitCode"] == 3
    assert "exited with code 3" in status["message"]


def test_same_pod_state_gives_no_patch_and_keeps_transition_times() -> None:
    the_pod = pod("Running", node="n", ip="127.0.0.5", state={"running": {}}, ready=True)
    first = kernel_status.kernel_status(the_pod, None, EARLIER)
    second = kernel_status.kernel_status(the_pod, first, NOW)
    assert second == first
    assert kernel_status.status_patch(first, second, NOW) is None


def test_patch_removes_stale_fields_and_keeps_foreign_ones() -> None:
    failed = kernel_status.kernel_status(
        pod("Pending", node="n", state={"waiting": {"reason": "ErrImagePull", "message": "m"}}),
        None,
        EARLIER,
    )
    running = kernel_status.kernel_status(
        pod("Running", node="n", ip="127.0.0.5", state={"running": {}}, ready=True),
        failed,
        NOW,
    )
    patch = kernel_status.status_patch({**failed, "somethingElse": 1}, running, NOW)
    assert patch is not None
    assert patch["reason"] is None
    assert patch["message"] is None
    assert patch["phase"] == "Running"
    assert "somethingElse" not in patch
    assert patch[kernel_status.LAST_RECONCILE_TIME] == NOW
    by_type = {c["type"]: c for c in patch["conditions"]}
    assert by_type["Scheduled"]["lastTransitionTime"] == EARLIER  # unchanged condition
    assert by_type["Running"]["lastTransitionTime"] == NOW


def test_failed_status_keeps_where_the_kernel_was() -> None:
    running = kernel_status.kernel_status(
        pod("Running", node="n", ip="127.0.0.5", state={"running": {}}, ready=True), None, EARLIER
    )
    gone = kernel_status.failed_status(crds.REASON_POD_DELETED, "pod k1 was deleted", running, NOW)
    assert gone["phase"] == "Failed"
    assert gone["reason"] == "PodDeleted"
    assert gone["podName"] == "k1"
    assert gone["nodeName"] == "n"
    assert conditions(gone)["Failed"]["status"] == "True"
    assert kernel_status.is_terminal(gone)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (None, {"phase": "Pending"}, []),
        (
            None,
            {"phase": "Running", "podName": "k1", "nodeName": "n", "podIP": "127.0.0.5"},
            [("Normal", "Running")],
        ),
        ({"phase": "Running"}, {"phase": "Running"}, []),
        (None, {"phase": "Pending", "reason": "Unschedulable"}, [("Warning", "Unschedulable")]),
        (
            {"phase": "Pending", "reason": "ErrImagePull"},
            {"phase": "Pending", "reason": "ImagePullBackOff"},
            [("Warning", "ImagePullBackOff")],
        ),
        (
            {"phase": "Running"},
            {"phase": "Failed", "reason": "Error", "exitCode": 3},
            [("Warning", "Error")],
        ),
        (
            {"phase": "Running"},
            {"phase": "Succeeded", "reason": "Completed"},
            [("Normal", "Completed")],
        ),
        (
            {"phase": "Running"},
            {"phase": "Failed", "reason": "PodDeleted"},
            [("Warning", "PodDeleted")],
        ),
    ],
)
def test_transition_events(
    old: dict[str, Any] | None, new: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    events = kernel_status.transition_events(old, new)
    assert [(e.type, e.reason) for e in events] == expected


def test_failure_event_mentions_the_exit_code() -> None:
    events = kernel_status.transition_events(
        {"phase": "Running"}, {"phase": "Failed", "reason": "Error", "exitCode": 3}
    )
    assert "exit code 3" in events[0].message


def test_quiet_pending() -> None:
    assert kernel_status.is_quiet_pending(kernel_status.kernel_status(pod(), None, NOW))
    unschedulable = pod(scheduled={"status": "False", "reason": "Unschedulable", "message": "m"})
    assert not kernel_status.is_quiet_pending(kernel_status.kernel_status(unschedulable, None, NOW))
