"""The sandbox scheduler: GPU capacity, Unschedulable messages, node selectors and taints."""

from __future__ import annotations

from typing import Any

import pytest

from elastic_jupyter.sandbox.cluster import SandboxCluster
from elastic_jupyter.sandbox.scheduler import fit_failures, unschedulable_message
from tests.helpers import pod_manifest, wait_for

NODE = {
    "metadata": {"name": "n1", "labels": {"zone": "a"}},
    "spec": {},
    "status": {
        "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110", "nvidia.com/gpu": "1"},
        "conditions": [{"type": "Ready", "status": "True"}],
    },
}


def _pod(**spec: Any) -> dict[str, Any]:
    container = {"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
    return {"metadata": {"name": "p"}, "spec": {"containers": [container], **spec}}


def test_fit_and_messages() -> None:
    assert fit_failures(_pod(), NODE, []) == ([], True)
    reasons, helpful = fit_failures(_pod(), NODE, [_pod()])
    assert reasons == ["Insufficient nvidia.com/gpu"] and helpful
    assert unschedulable_message([(reasons, helpful)]) == (
        "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are "
        "available: 1 No preemption victims found for incoming pod."
    )
    reasons, helpful = fit_failures(_pod(nodeSelector={"zone": "b"}), NODE, [])
    assert unschedulable_message([(reasons, helpful)]) == (
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
    tainted = {**NODE, "spec": {"taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]}}
    assert fit_failures(_pod(), tainted, [])[0] == ["node(s) had untolerated taint {gpu: yes}"]
    tolerated = _pod(tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}])
    assert fit_failures(tolerated, tainted, []) == ([], True)


def _gpu_pod(name: str) -> dict[str, Any]:
    manifest = pod_manifest(
        name,
        ["python3", "-c", "import time; time.sleep(600)"],
        resources={"limits": {"nvidia.com/gpu": "1"}},
    )
    return manifest


def _free_gpus(sandbox: SandboxCluster) -> int:
    """GPUs left on the node (other suites share this sandbox and may hold some)."""
    node = sandbox.request("GET", "/api/v1/nodes")["items"][0]
    total = int(node["status"]["allocatable"].get("nvidia.com/gpu", "0"))
    for pod in sandbox.request("GET", "/api/v1/pods")["items"]:
        if pod["status"].get("phase") in ("Succeeded", "Failed") or not pod["spec"].get("nodeName"):
            continue
        for container in pod["spec"]["containers"]:
            limits = (container.get("resources") or {}).get("limits") or {}
            total -= int(limits.get("nvidia.com/gpu", 0))
    return total


def test_gpu_pod_waits_for_capacity(sandbox: SandboxCluster, namespace: str) -> None:
    """With the node's 2 GPUs taken by two pods, a third is Unschedulable until one goes."""
    free = _free_gpus(sandbox)
    if free < 1:
        pytest.skip("another test holds every GPU of the shared sandbox")
    base = f"/api/v1/namespaces/{namespace}/pods"
    holders = [f"gpu-{i}" for i in range(free)]
    for name in holders:
        sandbox.request("POST", base, _gpu_pod(name))

    def bound() -> bool:
        pods = [sandbox.request("GET", f"{base}/{n}") for n in holders]
        return all(p["spec"].get("nodeName") for p in pods)

    wait_for(bound, 10)
    sandbox.request("POST", base, _gpu_pod("gpu-c"))

    def unschedulable() -> Any:
        pod = sandbox.request("GET", f"{base}/gpu-c")
        conds = {c["type"]: c for c in pod["status"].get("conditions") or []}
        cond = conds.get("PodScheduled", {})
        return cond if cond.get("reason") == "Unschedulable" else None

    cond = wait_for(unschedulable, 10)
    assert cond["status"] == "False"
    assert cond["message"] == (
        "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are "
        "available: 1 No preemption victims found for incoming pod."
    )
    pod = sandbox.request("GET", f"{base}/gpu-c")
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    events = sandbox.request("GET", f"/api/v1/namespaces/{namespace}/events")["items"]
    assert any(e["reason"] == "FailedScheduling" for e in events)

    sandbox.request("DELETE", f"{base}/{holders[0]}")

    def running() -> Any:
        pod = sandbox.request("GET", f"{base}/gpu-c")
        return pod if pod["status"].get("phase") == "Running" else None

    pod = wait_for(running, 15)
    conds = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conds["PodScheduled"] == "True"
