"""Kernels belong to their JupyterGateway (by uid), not to a name or a process.

Two JupyterGateways named alike in two namespaces share one kernel namespace: neither sweeps the
other's kernels, however long they wait. Deleting one JupyterGateway removes its kernels (and
their pods) from the kernel namespace, and only its own. Real operator, real gateways, real
kernels on the sandbox.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from elastic_jupyter import crds, harness
from tests.e2e import stack

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

GATEWAY = "shared-name"
GRACE_S = 2  # EJ_ORPHAN_GRACE_SECONDS of both gateways: short, so the test waits it out twice
EXAMPLE = stack.ROOT / "examples" / "elastic"


@dataclass
class Gateway:
    namespace: str
    url: str
    token: str

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"token {self.token}")
        with urllib.request.urlopen(req, timeout=60) as response:
            raw = response.read()
        return json.loads(raw) if raw.strip() else None


@dataclass
class Setup:
    kernels_ns: str
    gateways: dict[str, Gateway]  # namespace -> gateway
    kubectl: harness.Kubectl  # in the kernel namespace


def _gateway_manifest(kernels_ns: str) -> str:
    return json.dumps(
        {
            "apiVersion": crds.API_VERSION,
            "kind": crds.JUPYTER_GATEWAY.kind,
            "metadata": {"name": GATEWAY},
            "spec": {
                "kernelNamespace": kernels_ns,
                "env": [{"name": "EJ_ORPHAN_GRACE_SECONDS", "value": str(GRACE_S)}],
            },
        }
    )


@pytest.fixture(scope="module")
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    missing = stack.missing_parts()
    if missing:
        pytest.skip("the full stack is not built yet: missing " + "; ".join(missing))
    sandbox = request.getfixturevalue("sandbox")
    prefix = f"own-{uuid.uuid4().hex[:5]}"
    names = [f"{prefix}-a", f"{prefix}-b", f"{prefix}-k"]
    for name in names:
        sandbox.create_namespace(name)
    # The shared kernel namespace accepts kernels from both gateways' namespaces (its admin's
    # consent, docs/security.md).
    accept = f"{crds.ANNOTATION_ACCEPT_KERNELS_FROM}={names[0]},{names[1]}"
    sandbox.kubectl("annotate", "namespace", names[2], accept)
    log = tmp_path_factory.mktemp("ownership-logs") / "operator.log"
    try:
        with harness.operator_process(
            sandbox.env(), log, "--namespace", f"{prefix}-*", *harness.NO_PORTS
        ):
            gateways = {}
            for namespace in names[:2]:
                kubectl = harness.Kubectl(str(sandbox.kubeconfig), namespace)
                for path in sorted(EXAMPLE.glob("*kernel*.yaml")):  # kernelspec + template
                    kubectl.run("apply", "-f", str(path))
                kubectl.run("apply", "-f", "-", stdin=_gateway_manifest(names[2]))
                path = harness.UserPath(kubectl, say=lambda _: None, timeout_s=120)
                try:
                    gateway = path.wait_ready(crds.JUPYTER_GATEWAY.plural, GATEWAY)
                except Exception:
                    print("operator log (tail):\n" + log.read_text(errors="replace")[-6000:])
                    raise
                secret = kubectl.get("secret", f"{GATEWAY}-auth") or {}
                token = base64.b64decode(secret["data"]["token"]).decode()
                gateways[namespace] = Gateway(namespace, gateway["status"]["url"], token)
            yield Setup(names[2], gateways, harness.Kubectl(str(sandbox.kubeconfig), names[2]))
            for namespace in names[:2]:
                harness.Kubectl(str(sandbox.kubeconfig), namespace).run(
                    "delete", "jupytergateways", "--all", "--wait=false", check=False
                )
    finally:
        for name in names:
            sandbox.delete_namespace(name)


def start_kernel(gateway: Gateway) -> str:
    def ready() -> bool:
        specs = gateway.request("GET", "/api/kernelspecs").get("kernelspecs") or {}
        return "python-kubernetes" in specs

    harness.wait_until(f"kernelspec served in {gateway.namespace}", ready, 60)
    body = {"name": "python-kubernetes", "env": {"KERNEL_USERNAME": "alice"}}
    return str(gateway.request("POST", "/api/kernels", body)["id"])


def kernels_of(setup: Setup, kernel_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = setup.kubectl.items(
        "jk", "-l", f"{crds.LABEL_KERNEL_ID}={kernel_id}"
    )
    return items


def test_same_name_gateways_keep_each_others_kernels(setup: Setup) -> None:
    """Both gateways watch the shared namespace with the same name label; each must leave the
    other's kernels alone past twice the sweep grace."""
    ids = {ns: start_kernel(gw) for ns, gw in setup.gateways.items()}
    names = {
        ns: {jk["metadata"]["name"] for jk in kernels_of(setup, kid)} for ns, kid in ids.items()
    }
    time.sleep(2 * GRACE_S + 4)  # past the grace twice, plus sweep intervals
    for namespace, kernel_id in ids.items():
        now = {jk["metadata"]["name"] for jk in kernels_of(setup, kernel_id)}
        assert now == names[namespace], f"the kernel of {namespace} was swept"
        model = setup.gateways[namespace].request("GET", f"/api/kernels/{kernel_id}")
        assert model["id"] == kernel_id
    for namespace, kernel_id in ids.items():
        setup.gateways[namespace].request("DELETE", f"/api/kernels/{kernel_id}")


def test_deleted_gateway_leaves_no_kernels_in_other_namespaces(setup: Setup) -> None:
    """A JupyterGateway deleted while its pod cannot act (hung, node lost): the operator deletes
    its kernels in the kernel namespace before dropping its RBAC there; others' stay."""
    home = sorted(setup.gateways)[0]
    kubectl = harness.Kubectl(setup.kubectl.kubeconfig, home)
    manifest = json.loads(_gateway_manifest(setup.kernels_ns))
    manifest["metadata"]["name"] = "solo"
    kubectl.run("apply", "-f", "-", stdin=json.dumps(manifest))
    path = harness.UserPath(kubectl, say=lambda _: None, timeout_s=120)
    status = path.wait_ready(crds.JUPYTER_GATEWAY.plural, "solo")["status"]
    secret = kubectl.get("secret", "solo-auth") or {}
    solo = Gateway(home, status["url"], base64.b64decode(secret["data"]["token"]).decode())
    gone = [start_kernel(solo) for _ in range(2)]
    kept = {ns: start_kernel(gw) for ns, gw in setup.gateways.items()}
    selector = f"{crds.LABEL_COMPONENT}={crds.COMPONENT_GATEWAY},{crds.LABEL_GATEWAY}=solo"
    pods = kubectl.items("pods", "-l", selector)
    assert pods
    for pod in pods:
        container_id = pod["status"]["containerStatuses"][0]["containerID"]
        os.kill(int(str(container_id).rpartition("://")[2]), signal.SIGSTOP)
    kubectl.run("delete", crds.JUPYTER_GATEWAY.plural, "solo", "--wait=false")

    def nothing_left() -> bool:
        return all(
            not setup.kubectl.items(kind, "-l", f"{crds.LABEL_KERNEL_ID}={kid}")
            for kid in gone
            for kind in ("jk", "pods")
        )

    harness.wait_until("the deleted gateway's kernels and pods gone", nothing_left, 60, 0.5)
    for kernel_id in kept.values():
        assert kernels_of(setup, kernel_id), "another gateway's kernel went too"
    harness.wait_until(
        "the JupyterGateway's finalizer to complete",
        lambda: kubectl.get(crds.JUPYTER_GATEWAY.plural, "solo") is None,
        60,
        0.5,
    )
