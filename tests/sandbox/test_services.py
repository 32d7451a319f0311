"""Services in the sandbox: Endpoints, the clusterIP proxy and DNS names from pods."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter.sandbox.cluster import SandboxCluster
from elastic_jupyter.sandbox.etchosts import HostsFile
from elastic_jupyter.sandbox.services import build_subsets
from tests.helpers import pod_manifest, wait_for


def _ready_pod(name: str, ip: str, ready: bool, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "n", "uid": name, "labels": labels},
        "spec": {
            "nodeName": "node",
            "containers": [{"ports": [{"name": "http", "containerPort": 8080}]}],
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_build_subsets_resolves_named_ports_and_readiness() -> None:
    service = {
        "spec": {
            "selector": {"app": "w"},
            "ports": [{"name": "web", "port": 80, "targetPort": "http"}],
        }
    }
    pods = [
        _ready_pod("a", "127.64.0.2", True, {"app": "w"}),
        _ready_pod("b", "127.64.0.3", False, {"app": "w"}),
        _ready_pod("c", "127.64.0.4", True, {"app": "other"}),
    ]
    (subset,) = build_subsets(service, pods)
    assert subset["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    assert [a["ip"] for a in subset["addresses"]] == ["127.64.0.2"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["127.64.0.3"]


def test_hosts_block_is_owned_and_stale_blocks_are_removed(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(
        "127.0.0.1 localhost\n"
        "# BEGIN elastic-jupyter-sandbox port=1 pid=999999999 (managed; removed when it stops)\n"
        "127.96.0.9 stale\n"
        "# END elastic-jupyter-sandbox port=1 pid=999999999\n",
        encoding="utf-8",
    )
    block = HostsFile("port=2", hosts)
    assert block.write([("127.96.0.5", ["svc", "svc.ns", "svc.ns.svc"])])
    text = hosts.read_text(encoding="utf-8")
    assert "stale" not in text and "127.96.0.5 svc svc.ns svc.ns.svc" in text
    assert text.startswith("127.0.0.1 localhost\n")
    block.remove()
    assert hosts.read_text(encoding="utf-8") == "127.0.0.1 localhost\n"


def test_unwritable_hosts_file_disables_dns(tmp_path: Path) -> None:
    block = HostsFile("port=3", tmp_path / "missing" / "hosts")
    assert not block.write([("127.96.0.5", ["svc"])])
    assert not block.enabled


def test_service_is_reachable_by_name_from_a_pod(sandbox: SandboxCluster, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}"
    server = pod_manifest(
        "web",
        ["python3", "-m", "http.server", "8080", "--bind", "$(POD_IP)"],
        env=[{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        ports=[{"name": "http", "containerPort": 8080}],
        readinessProbe={"tcpSocket": {"port": "http"}, "periodSeconds": 1},
    )
    sandbox.request("POST", f"{base}/pods", server)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "websvc"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "web", "port": 80, "targetPort": "http"}],
        },
    }
    cluster_ip = sandbox.request("POST", f"{base}/services", service)["spec"]["clusterIP"]

    def endpoint_ready() -> Any:
        endpoints = sandbox.request("GET", f"{base}/endpoints/websvc")
        subsets = endpoints.get("subsets") or []
        return subsets if subsets and subsets[0].get("addresses") else None

    (subset,) = wait_for(endpoint_ready, 20)
    pod_ip = sandbox.request("GET", f"{base}/pods/web")["status"]["podIP"]
    assert subset["addresses"][0]["ip"] == pod_ip and subset["ports"][0]["port"] == 8080

    with urllib.request.urlopen(f"http://{cluster_ip}:80/", timeout=10) as resp:
        assert resp.status == 200

    if not os.access("/etc/hosts", os.W_OK):
        pytest.skip("/etc/hosts is not writable here: Service DNS is off")
    client_script = (
        "import sys, urllib.request\n"
        "for host in sys.argv[1:]:\n"
        "    with urllib.request.urlopen(f'http://{host}/', timeout=10) as r:\n"
        "        print(host, r.status)\n"
    )
    names = ["websvc", f"websvc.{namespace}", f"websvc.{namespace}.svc.cluster.local"]
    sandbox.request(
        "POST", f"{base}/pods", pod_manifest("client", ["python3", "-c", client_script, *names])
    )

    def finished() -> Any:
        pod = sandbox.request("GET", f"{base}/pods/client")
        return pod if pod["status"].get("phase") in ("Succeeded", "Failed") else None

    pod = wait_for(finished, 20)
    log_request = urllib.request.Request(
        f"{sandbox.url}{base}/pods/client/log", headers=sandbox.auth_headers
    )
    with urllib.request.urlopen(log_request, timeout=10) as resp:
        logs = resp.read().decode()
    assert pod["status"]["phase"] == "Succeeded", logs
    assert logs.split("\n")[:3] == [f"{name} 200" for name in names]
