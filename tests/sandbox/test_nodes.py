"""Node loss in the sandbox (``/sandbox/nodes/{name}/crash|start``, sandbox/nodes.py): what the
on-call engineer sees on a real cluster when a machine loses power and comes back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from elastic_jupyter.sandbox import nodes
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.helpers import pod_manifest, wait_for

NODE = "worker-1"
NS = "default"


@pytest.fixture(scope="module")
def cluster() -> Iterator[SandboxCluster]:
    """A private sandbox: crashing a node must not touch the shared one's pods."""
    with SandboxCluster(apply_crds=False, dns=False) as sandbox:
        yield sandbox


def pod(cluster: SandboxCluster, name: str) -> dict[str, Any]:
    found: dict[str, Any] = cluster.request("GET", f"/api/v1/namespaces/{NS}/pods/{name}")
    return found


def pid_of(obj: dict[str, Any]) -> int:
    container_id = obj["status"]["containerStatuses"][0]["containerID"]
    return int(str(container_id).rpartition("://")[2])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def running(cluster: SandboxCluster, name: str) -> Any:
    def check() -> Any:
        obj = pod(cluster, name)
        statuses = (obj.get("status") or {}).get("containerStatuses") or [{}]
        return obj if "running" in (statuses[0].get("state") or {}) else None

    return check


def test_a_crashed_node_comes_back_failing_never_pods_and_rerunning_the_others(
    cluster: SandboxCluster,
) -> None:
    assert cluster.request("POST", f"/sandbox/nodes/{NODE}/start")["node"] == NODE
    wait_for(lambda: cluster.kubectl("get", "node", NODE), 10)
    selector = {"nodeSelector": {"kubernetes.io/hostname": NODE}}
    sleep = ["sleep", "600"]
    for name, policy in (("once", "Never"), ("always", "Always")):
        manifest = pod_manifest(name, sleep, image="busybox", restart_policy=policy)
        manifest["spec"].update(selector)
        cluster.request("POST", f"/api/v1/namespaces/{NS}/pods", manifest)
    before = {name: wait_for(running(cluster, name), 30) for name in ("once", "always")}
    pids = {name: pid_of(obj) for name, obj in before.items()}
    assert {obj["spec"]["nodeName"] for obj in before.values()} == {NODE}

    crashed = cluster.request("POST", f"/sandbox/nodes/{NODE}/crash")
    assert crashed["podsKilled"] == 2
    wait_for(lambda: not any(alive(p) for p in pids.values()), 10, message="processes killed")
    # nobody reports for a dead node: the API still says Running, as on a real cluster
    assert pod(cluster, "once")["status"]["phase"] == "Running"
    with pytest.raises(Exception, match="404"):
        cluster.request("POST", f"/sandbox/nodes/{NODE}/crash")

    cluster.request("POST", f"/sandbox/nodes/{NODE}/start")

    def failed() -> Any:
        obj = pod(cluster, "once")
        return obj if obj["status"]["phase"] == "Failed" else None

    once = wait_for(failed, 30, message="the Never pod Failed")
    ended = once["status"]["containerStatuses"][0]["state"]["terminated"]
    assert ended["reason"] == nodes.LOST_REASON and ended["exitCode"] == 137

    # until the node's kubelet reports, the API keeps the old Running status: wait for the restart
    def restarted() -> Any:
        obj = running(cluster, "always")()
        return obj if obj is not None and pid_of(obj) != pids["always"] else None

    again = wait_for(restarted, 30, message="the Always pod running again in a new process")
    assert again["status"]["containerStatuses"][0]["restartCount"] == 1


def test_lost_pod_status_fails_only_never_pods_that_ran() -> None:
    ran = {
        "spec": {"restartPolicy": "Never"},
        "status": {
            "phase": "Running",
            "containerStatuses": [{"name": "k", "state": {"running": {"startedAt": "t"}}}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    status = nodes.lost_pod_status(ran)
    assert status is not None and status["phase"] == "Failed"
    assert status["conditions"] == [{"type": "Ready", "status": "False", "reason": "PodFailed"}]
    assert status["containerStatuses"][0]["state"]["terminated"]["startedAt"] == "t"
    assert nodes.lost_pod_status({**ran, "spec": {"restartPolicy": "Always"}}) is None
    never_ran = {"spec": {"restartPolicy": "Never"}, "status": {"phase": "Pending"}}
    assert nodes.lost_pod_status(never_ran) is None
    assert nodes.carried_restart_counts({"status": ran["status"]}) == {"k": 1}
