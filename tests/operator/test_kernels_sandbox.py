"""JupyterKernel → Pod → status, with the real operator CLI running against the sandbox."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.operator import kernel_pod
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.helpers import wait_for
from tests.operator.conftest import (
    KERNELS,
    OperatorProcess,
    create_kernel,
    events,
    kernel,
    pod,
    wait_status,
)

pytestmark = pytest.mark.slow


def test_kernel_pod_runs_and_status_tells_where(
    sandbox: SandboxCluster, op_namespace: str, operator_proc: OperatorProcess
) -> None:
    create_kernel(sandbox, op_namespace, "k-run", kernel_id="kid-1")
    status = wait_status(sandbox, op_namespace, "k-run", phase="Running")
    the_pod = pod(sandbox, op_namespace, "k-run")
    assert the_pod is not None
    assert status["podName"] == "k-run"
    assert status["podIP"] == the_pod["status"]["podIP"]
    assert status["nodeName"] == the_pod["spec"]["nodeName"]
    assert status["startTime"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Scheduled": "True",
        "Running": "True",
        "Ready": "True",
        "Failed": "False",
    }
    labels = the_pod["metadata"]["labels"]
    assert labels[crds.LABEL_KERNEL_ID] == "kid-1"
    assert labels[crds.LABEL_COMPONENT] == crds.COMPONENT_KERNEL
    assert the_pod["spec"]["restartPolicy"] == "Never"
    owner = the_pod["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["controller"]) == ("JupyterKernel", True)
    # kopf posts Events in the background: the status can say Running a moment before.
    wait_for(
        lambda: (
            ("Normal", "Running") in [(t, r) for t, r, _ in events(sandbox, op_namespace, "k-run")]
        ),
        message="a Normal/Running Event for k-run",
    )


@pytest.mark.kubectl
def test_kubectl_get_jk_shows_the_columns(
    sandbox: SandboxCluster,
    op_namespace: str,
    operator_proc: OperatorProcess,
    kubectl: Callable[..., Any],
) -> None:
    create_kernel(sandbox, op_namespace, "k-cols")
    status = wait_status(sandbox, op_namespace, "k-cols", phase="Running")
    output = kubectl("get", "jk", "-n", op_namespace, "-o", "wide").stdout
    header, row = output.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "PHASE", "POD", "NODE", "IP"]
    assert row.split()[:5] == ["k-cols", "Running", "k-cols", status["nodeName"], status["podIP"]]


@pytest.mark.parametrize(
    ("case", "kwargs", "expected"),
    [
        (
            "unknown image",
            {"image": "registry.invalid/nope:1"},
            {"phase": "Pending", "reasons": {"ErrImagePull", "ImagePullBackOff"}, "failed": True},
        ),
        (
            "failing command",
            {"command": ["sh", "-c", "exit 3"]},
            {"phase": "Failed", "reasons": {"Error"}, "failed": True, "exitCode": 3},
        ),
        (
            "more GPUs than the node has",
            {"resources": {"limits": {"nvidia.com/gpu": 4}}},
            {"phase": "Pending", "reasons": {"Unschedulable"}, "failed": False},
        ),
    ],
    ids=["unknown-image", "failing-command", "unschedulable"],
)
def test_failure_reasons_show_in_status_and_events(
    sandbox: SandboxCluster,
    op_namespace: str,
    operator_proc: OperatorProcess,
    case: str,
    kwargs: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    create_kernel(sandbox, op_namespace, "k-bad", **kwargs)

    def reported() -> dict[str, Any] | None:
        status = (kernel(sandbox, op_namespace, "k-bad") or {}).get("status") or {}
        return status if status.get("reason") in expected["reasons"] else None

    status = wait_for(reported, timeout=20, message=case)
    assert status is not None
    assert status["phase"] == expected["phase"]
    assert status.get("message"), case
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Failed"]["status"] == ("True" if expected["failed"] else "False")
    if "exitCode" in expected:
        assert status["exitCode"] == expected["exitCode"]
    if status["reason"] == "Unschedulable":
        assert "nvidia.com/gpu" in status["message"]
        assert conditions["Scheduled"]["reason"] == "Unschedulable"
    # The pod shares the kernel's name and gets the kubelet's own Warnings (BackOff, Failed…)
    # too; wait for the one carrying the reason the kernel reports.
    warnings = wait_for(
        lambda: (
            {r for t, r, _ in events(sandbox, op_namespace, "k-bad") if t == "Warning"}
            & expected["reasons"]
        ),
        timeout=10,
        message=f"a Warning event for {case}",
    )
    assert warnings


def test_pod_deleted_behind_our_back_fails_the_kernel(
    sandbox: SandboxCluster, op_namespace: str, operator_proc: OperatorProcess
) -> None:
    create_kernel(sandbox, op_namespace, "k-gone")
    wait_status(sandbox, op_namespace, "k-gone", phase="Running")
    sandbox.request("DELETE", f"/api/v1/namespaces/{op_namespace}/pods/k-gone")
    status = wait_status(sandbox, op_namespace, "k-gone", phase="Failed", reason="PodDeleted")
    assert {c["type"]: c["status"] for c in status["conditions"]}["Failed"] == "True"
    assert ("Warning", "PodDeleted") in [
        (t, r) for t, r, _ in events(sandbox, op_namespace, "k-gone")
    ]
    # Not recreated: the gateway decides about restarts. Check after the operator had time to
    # react to its own status write.
    wait_for(
        lambda: any(r == "PodDeleted" for _, r, _m in events(sandbox, op_namespace, "k-gone")),
        timeout=5,
    )
    assert pod(sandbox, op_namespace, "k-gone") is None


def test_deleting_the_kernel_deletes_its_pod(
    sandbox: SandboxCluster, op_namespace: str, operator_proc: OperatorProcess
) -> None:
    create_kernel(sandbox, op_namespace, "k-del")
    wait_status(sandbox, op_namespace, "k-del", phase="Running")
    sandbox.request("DELETE", f"{KERNELS.format(ns=op_namespace)}/k-del")
    wait_for(lambda: pod(sandbox, op_namespace, "k-del") is None, timeout=10)
    assert kernel(sandbox, op_namespace, "k-del") is None
    # No finalizer was needed: the kernel went away at once.


def test_spec_edit_is_reported_not_applied(
    sandbox: SandboxCluster, op_namespace: str, operator_proc: OperatorProcess
) -> None:
    create_kernel(sandbox, op_namespace, "k-edit")
    wait_status(sandbox, op_namespace, "k-edit", phase="Running")
    before = pod(sandbox, op_namespace, "k-edit")
    assert before is not None
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "kernel", "image": "x"}]}}}}
    request = urllib.request.Request(
        f"{sandbox.url}{KERNELS.format(ns=op_namespace)}/k-edit",
        data=json.dumps(patch).encode(),
        method="PATCH",
        headers={"Content-Type": "application/merge-patch+json", **sandbox.auth_headers},
    )
    urllib.request.urlopen(request, timeout=10).close()
    found = wait_for(
        lambda: [m for t, r, m in events(sandbox, op_namespace, "k-edit") if r == "SpecImmutable"],
        timeout=10,
    )
    assert "generation 2" in found[0]
    after = pod(sandbox, op_namespace, "k-edit")
    assert after is not None
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["spec"]["containers"][0]["image"] == "busybox"
    assert after["metadata"]["annotations"][kernel_pod.ANNOTATION_GENERATION] == "1"
    assert kernel(sandbox, op_namespace, "k-edit")["status"]["phase"] == "Running"  # type: ignore[index]


def test_liveness_and_metrics(
    sandbox: SandboxCluster, op_namespace: str, operator_proc: OperatorProcess
) -> None:
    create_kernel(sandbox, op_namespace, "k-metrics")
    wait_status(sandbox, op_namespace, "k-metrics", phase="Running")
    with urllib.request.urlopen(operator_proc.liveness_url, timeout=5) as response:
        assert response.status == 200

    def scrape() -> str | None:
        with urllib.request.urlopen(operator_proc.metrics_url, timeout=5) as response:
            text = response.read().decode()
        return text if "elastic_jupyter_kernel_start_seconds_count" in text else None

    text = wait_for(scrape, timeout=5)
    assert text is not None
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['elastic_jupyter_kernels{phase="Running"}'] >= 1
    assert samples["elastic_jupyter_kernel_start_seconds_count"] >= 1
    assert "# TYPE elastic_jupyter_reconcile_errors_total counter" in text
