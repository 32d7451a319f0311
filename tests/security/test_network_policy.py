"""Network exposure of kernels: the NetworkPolicies the operator renders for each gateway.

The sandbox stores NetworkPolicies but cannot enforce them (its pods share the host network),
so the test reads the policies the real operator wrote for ``examples/elastic`` and judges them
with Kubernetes' semantics (:func:`allowed`) for the real pods: a neighbouring pod (the
notebook's, another gateway's kernel) reaching a kernel's iopub or comm port, or the gateway's
response port, and the traffic that must keep flowing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.operator import gateway_objects, network_policy
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.examples import support
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

EXAMPLE = support.REPO / "examples" / "elastic"
GATEWAY = "jupytergateway-elastic"
NOTEBOOK = "jupyternotebook-elastic"


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    wanted = selector.get("matchLabels") or {}
    if not all(labels.get(k) == v for k, v in wanted.items()):
        return False
    for expr in selector.get("matchExpressions") or []:  # Kubernetes' label selector rules
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
        }[op]
        if not ok:
            return False
    return True


def _peer_matches(peer: Mapping[str, Any], pod: Mapping[str, Any], policy_ns: str) -> bool:
    meta = pod["metadata"]
    ns_selector = peer.get("namespaceSelector")
    if ns_selector is None:
        if meta["namespace"] != policy_ns:
            return False
    elif not _selects(ns_selector, {network_policy.NAMESPACE_NAME_LABEL: meta["namespace"]}):
        return False
    return _selects(peer.get("podSelector") or {}, meta.get("labels") or {})


def _port_matches(rule_ports: list[Mapping[str, Any]] | None, port: int) -> bool:
    if not rule_ports:
        return True
    return any(p["port"] <= port <= p.get("endPort", p["port"]) for p in rule_ports)


def allowed(
    policies: list[Mapping[str, Any]],
    source: Mapping[str, Any],
    target: Mapping[str, Any],
    port: int,
) -> bool:
    """Kubernetes' ingress rule: if any policy selects ``target``, some rule must admit."""
    meta = target["metadata"]
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == meta["namespace"]
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and _selects(p["spec"]["podSelector"], meta.get("labels") or {})
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress") or []:
            peers = rule.get("from")
            if (
                peers is None
                or any(_peer_matches(peer, source, meta["namespace"]) for peer in peers)
            ) and _port_matches(rule.get("ports"), port):
                return True
    return False


@pytest.fixture(scope="module")
def operator(sandbox: SandboxCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with support.running_operator(sandbox, "ejnp-*", log):
        yield log


@pytest.fixture(scope="module")
def elastic(sandbox: SandboxCluster, operator: Path) -> Iterator[str]:
    namespace = support.new_namespace(sandbox, "ejnp")
    sandbox.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))

    def running(plural: str, name: str) -> bool:
        obj = support.custom(sandbox, plural, namespace, name)
        return (obj.get("status") or {}).get("phase") == crds.PHASE_RUNNING

    try:
        wait_for(lambda: running("jupytergateways", GATEWAY), 60, 0.2, "gateway Running")
        wait_for(lambda: running("jupyternotebooks", NOTEBOOK), 60, 0.2, "notebook Running")
    except AssertionError as error:
        raise AssertionError(f"{error}\noperator log:\n{support.tail(operator)}") from None
    yield namespace
    sandbox.delete_namespace(namespace)


def _policies(sandbox: SandboxCluster, namespace: str) -> list[dict[str, Any]]:
    path = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"
    items: list[dict[str, Any]] = support.core(sandbox, path)["items"]
    return items


def _pods(sandbox: SandboxCluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    path = f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}"
    pods: list[dict[str, Any]] = support.core(sandbox, path)["items"]
    return pods


def test_kernel_ports_and_response_port_are_fenced(sandbox: SandboxCluster, elastic: str) -> None:
    wait_for(lambda: len(_policies(sandbox, elastic)) == 2, 20, 0.2, "two NetworkPolicies")
    policies = _policies(sandbox, elastic)
    names = sorted(p["metadata"]["name"] for p in policies)
    assert names == [f"{GATEWAY}-gateway", f"{GATEWAY}-kernels"]
    # kubectl shows them (the sandbox serves networking.k8s.io/v1).
    out = sandbox.kubectl("get", "netpol", "-n", elastic, "-o", "name")
    assert f"networkpolicy.networking.k8s.io/{GATEWAY}-kernels" in out.stdout

    base = support.service_url(sandbox, elastic, GATEWAY)
    admin = support.secret_value(sandbox, elastic, crds.gateway_auth_secret_name(GATEWAY))
    status, body = support.http_post(
        base + "/api/kernels", {"name": "python-kubernetes", "env": {}}, admin, timeout=90
    )
    assert status == 201, body
    kernel_id = body["id"]
    try:
        (kernel,) = _pods(sandbox, elastic, f"{crds.LABEL_KERNEL_ID}={kernel_id}")
        (gateway,) = support.gateway_pods(sandbox, elastic, GATEWAY)
        (notebook,) = _pods(sandbox, elastic, f"{crds.LABEL_NOTEBOOK}={NOTEBOOK}")
        # The kernel's real ports (the launcher logs them) lie in the range the policy names.
        first, last = network_policy.kernel_port_range(
            support.custom(sandbox, "jupytergateways", elastic, GATEWAY)
        ) or (0, 0)
        assert (first, last) == (40000, 41999)
        log = sandbox.kubectl("logs", kernel["metadata"]["name"], "-n", elastic).stdout
        line = next(x for x in log.splitlines() if "ports: shell" in x)
        ports = [int(w.strip(",")) for w in line.split("ports: ", 1)[1].split() if w[0].isdigit()]
        assert len(ports) == 6 and all(first <= p <= last for p in ports), line
        iopub = ports[1]

        # A neighbour (the notebook pod, where any user has a terminal) cannot reach the
        # kernel's iopub or comm port, nor the gateway's response port.
        assert not allowed(policies, notebook, kernel, iopub)
        assert not allowed(policies, notebook, gateway, gateway_objects.RESPONSE_PORT)
        # A kernel of another gateway (same namespace) is a neighbour too.
        stranger = {
            "metadata": {
                "namespace": elastic,
                "labels": {**kernel["metadata"]["labels"], crds.LABEL_GATEWAY: "other"},
            }
        }
        assert not allowed(policies, stranger, kernel, iopub)
        assert not allowed(policies, stranger, gateway, gateway_objects.RESPONSE_PORT)
        # A pod of another namespace with the gateway's labels is not the gateway.
        impostor = {"metadata": {"namespace": "elsewhere", "labels": gateway["metadata"]["labels"]}}
        assert not allowed(policies, impostor, kernel, iopub)
        # What must flow: gateway → kernel ports; kernel → response port; anyone → HTTP.
        assert allowed(policies, gateway, kernel, iopub)
        assert allowed(policies, gateway, kernel, last)
        assert not allowed(policies, gateway, kernel, 22)
        assert allowed(policies, kernel, gateway, gateway_objects.RESPONSE_PORT)
        assert allowed(policies, notebook, gateway, gateway_objects.HTTP_PORT)
    finally:
        support.http_delete(f"{base}/api/kernels/{kernel_id}", admin)


def test_policies_follow_the_kernel_namespaces() -> None:
    gateway = {
        "metadata": {"name": "gw", "namespace": "team", "uid": "u"},
        "spec": {"kernelNamespace": "kernels", "portRange": "0..0"},
    }
    external = network_policy.external_policies(gateway)
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in external] == [
        ("kernels", "team.gw-kernels")
    ]
    rule = external[0]["spec"]["ingress"][0]
    assert "ports" not in rule  # 0..0: any port, still only from the gateway
    assert rule["from"][0]["namespaceSelector"] == {
        "matchLabels": {network_policy.NAMESPACE_NAME_LABEL: "team"}
    }
    response = network_policy.gateway_policy(gateway)["spec"]["ingress"][0]["from"]
    assert {
        p.get("namespaceSelector", {})
        .get("matchLabels", {})
        .get(network_policy.NAMESPACE_NAME_LABEL, "team")
        for p in response
    } == {"team", "kernels"}
    after = {**gateway, "spec": {}}
    assert network_policy.stale_external_policies(gateway, after) == external
