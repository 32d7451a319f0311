"""Deployment → ReplicaSet → Pods in the sandbox, including a rolling template change."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from elastic_jupyter.sandbox.cluster import SandboxCluster
from elastic_jupyter.sandbox.deployments import HASH_LABEL, rolling_limits, template_hash
from tests.helpers import wait_for


def test_template_hash_is_stable_and_label_safe() -> None:
    template = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c"}]}}
    digest = template_hash(template)
    assert digest == template_hash(json.loads(json.dumps(template)))
    assert digest != template_hash(template, collision_count=1)
    assert set(digest) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(digest) <= 10


def test_rolling_limits() -> None:
    assert rolling_limits({"spec": {"replicas": 4}}) == (1, 1)
    assert rolling_limits({"spec": {"replicas": 1}}) == (1, 0)
    strategy = {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}
    assert rolling_limits({"spec": {"replicas": 3, "strategy": strategy}}) == (0, 1)


def _deployment(version: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "main",
                            "image": "python:3.11",
                            "command": ["python3", "-c", "import time; time.sleep(600)"],
                            "env": [{"name": "VERSION", "value": version}],
                        }
                    ],
                },
            },
        },
    }


def _patch(sandbox: SandboxCluster, path: str, body: Any) -> None:
    req = urllib.request.Request(
        sandbox.url + path,
        data=json.dumps(body).encode(),
        method="PATCH",
        headers={"Content-Type": "application/merge-patch+json", **sandbox.auth_headers},
    )
    urllib.request.urlopen(req, timeout=10).close()


@pytest.mark.kubectl
def test_deployment_rolls_out_and_garbage_collects(
    sandbox: SandboxCluster, namespace: str, kubectl: Callable[..., Any]
) -> None:
    apps = f"/apis/apps/v1/namespaces/{namespace}"
    sandbox.request("POST", f"{apps}/deployments", _deployment("1"))

    def pods_with(version: str) -> Callable[[], Any]:
        def check() -> Any:
            items = sandbox.request("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
            running = [
                p
                for p in items
                if p["status"].get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")
            ]
            versions = {p["spec"]["containers"][0]["env"][0]["value"] for p in running}
            return (
                running if len(running) == 2 and versions == {version} and len(items) == 2 else None
            )

        return check

    first = wait_for(pods_with("1"), 20)
    owner = first[0]["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "ReplicaSet" and owner["controller"] is True
    rs_name = owner["name"]
    assert rs_name == f"web-{first[0]['metadata']['labels'][HASH_LABEL]}"
    assert first[0]["metadata"]["name"].startswith(f"{rs_name}-")

    def deployment_done(generation: int) -> Callable[[], Any]:
        def check() -> Any:
            dep = sandbox.request("GET", f"{apps}/deployments/web")
            status = dep.get("status") or {}
            done = (
                status.get("observedGeneration") == generation
                and status.get("replicas") == 2
                and status.get("updatedReplicas") == 2
                and status.get("readyReplicas") == 2
                and status.get("availableReplicas") == 2
            )
            return dep if done else None

        return check

    dep = wait_for(deployment_done(1), 15)
    conditions = {c["type"]: c for c in dep["status"]["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"

    _patch(sandbox, f"{apps}/deployments/web", {"spec": {"template": {"spec": {"containers": [
        {**_deployment("2")["spec"]["template"]["spec"]["containers"][0]}]}}}})  # fmt: skip
    kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=30s", timeout=40)
    second = wait_for(pods_with("2"), 20)
    assert {p["metadata"]["name"] for p in second}.isdisjoint(
        {p["metadata"]["name"] for p in first}
    )
    wait_for(deployment_done(2), 15)
    sets = sandbox.request("GET", f"{apps}/replicasets")["items"]
    replicas = {rs["metadata"]["name"]: rs["spec"]["replicas"] for rs in sets}
    assert replicas[rs_name] == 0 and sorted(replicas.values()) == [0, 2]
    revisions = {
        rs["metadata"]["name"]: rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        for rs in sets
    }
    assert revisions[rs_name] == "1" and sorted(revisions.values()) == ["1", "2"]

    sandbox.request("DELETE", f"{apps}/deployments/web")
    wait_for(
        lambda: not sandbox.request("GET", f"/api/v1/namespaces/{namespace}/pods")["items"],
        15,
        message="pods garbage-collected with their deployment",
    )
