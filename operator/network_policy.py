"""JupyterGateway → NetworkPolicies: pure functions, no I/O.

A kernel's ZeroMQ ports (iopub included) and its comm port carry a user's code and output, and
the gateway's response port accepts kernels' connection info. Two policies per gateway keep
them between the gateway and its own kernels:

* ``<gateway>-kernels`` in every namespace the gateway's kernels run in (its own, and the
  others of :func:`gateway_objects.rbac_namespaces`, named ``<gateway ns>.<gateway>-kernels``
  there): the gateway's kernel pods (``component=kernel`` and ``kubeflow.tkestack.io/gateway``)
  accept ingress only from that gateway's pods, only on the kernel port range
  (``spec.portRange``, by default :data:`crds.DEFAULT_PORT_RANGE`; ``0..0`` allows any port,
  still only from the gateway).
* ``<gateway>-gateway`` in the gateway's namespace: the gateway pods accept the response port
  only from their kernels, and the HTTP port from anywhere (notebooks in other namespaces reach
  it; the gateway authenticates every request).

The policies need a network plugin that enforces NetworkPolicy; the sandbox stores them only.
Policies in other namespaces have no owner reference (it cannot cross namespaces): the
operator deletes them, as it does the kernel-namespace Roles (``external_objects``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.operator import gateway_objects, ownership

API_VERSION = "networking.k8s.io/v1"
#: The label every namespace carries with its own name (Kubernetes sets it, 1.22+).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def kernel_policy_name(gateway: Mapping[str, Any], namespace: str) -> str:
    meta = gateway["metadata"]
    prefix = "" if namespace == meta["namespace"] else f"{meta['namespace']}."
    return f"{prefix}{meta['name']}-kernels"


def gateway_policy_name(gateway: Mapping[str, Any]) -> str:
    return f"{gateway['metadata']['name']}-gateway"


def kernel_port_range(gateway: Mapping[str, Any]) -> tuple[int, int] | None:
    """The kernels' ``(first, last)`` port, or None for ``0..0`` (any port)."""
    spec = gateway.get("spec") or {}
    text = str(spec.get("portRange") or crds.DEFAULT_PORT_RANGE)
    lower, _, upper = text.partition("..")
    try:
        first, last = int(lower), int(upper)
    except ValueError:
        return None
    return None if first == 0 and last == 0 else (first, last)


def _kernel_selector(gateway_name: str) -> dict[str, Any]:
    return {
        "matchLabels": {
            crds.LABEL_COMPONENT: crds.COMPONENT_KERNEL,
            crds.LABEL_GATEWAY: gateway_name,
        }
    }


_POOL_KERNELS: dict[str, Any] = {
    "matchLabels": {crds.LABEL_COMPONENT: crds.COMPONENT_KERNEL},
    "matchExpressions": [{"key": f"{crds.GROUP}/pool", "operator": "Exists"}],
}


def _peer(selector: dict[str, Any], namespace: str, here: str) -> dict[str, Any]:
    """Pods matching ``selector`` in ``namespace``, as seen from a policy in ``here``."""
    peer: dict[str, Any] = {"podSelector": selector}
    if namespace != here:
        peer["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}
    return peer


def kernel_namespaces(gateway: Mapping[str, Any]) -> list[str]:
    """Every namespace the gateway's kernels may run in (its own first)."""
    return [gateway["metadata"]["namespace"], *gateway_objects.rbac_namespaces(gateway)]


def kernel_policy(gateway: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """Kernel pods of this gateway in ``namespace``: ingress from the gateway's pods only."""
    meta = gateway["metadata"]
    rule: dict[str, Any] = {
        "from": [
            _peer(
                {"matchLabels": gateway_objects.labels(meta["name"])}, meta["namespace"], namespace
            )
        ],
    }
    ports = kernel_port_range(gateway)
    if ports is not None:
        rule["ports"] = [{"protocol": "TCP", "port": ports[0], "endPort": ports[1]}]
    metadata: dict[str, Any] = {
        "name": kernel_policy_name(gateway, namespace),
        "namespace": namespace,
        "labels": gateway_objects.labels(meta["name"]),
        # No owner reference crosses namespaces: the owner annotation marks it ours.
        "annotations": {crds.ANNOTATION_OWNER: ownership.owner_annotation(gateway)},
    }
    if namespace == meta["namespace"]:
        owner = ownership.owner_reference(gateway, crds.JUPYTER_GATEWAY.kind)
        metadata = ownership.metadata(owner, meta, metadata["labels"], metadata["name"])
    return {
        "apiVersion": API_VERSION,
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": {
            "podSelector": _kernel_selector(meta["name"]),
            "policyTypes": ["Ingress"],
            "ingress": [rule],
        },
    }


def gateway_policy(gateway: Mapping[str, Any]) -> dict[str, Any]:
    """The gateway pods: response port from its kernels only, HTTP from anywhere."""
    meta = gateway["metadata"]
    here = meta["namespace"]
    kernels = [_peer(_kernel_selector(meta["name"]), ns, here) for ns in kernel_namespaces(gateway)]
    # Warm-pool kernels carry no gateway label (they had none when their pod started): any
    # pool kernel of its kernel namespaces may answer a claim (operator/warm_pools.py).
    kernels += [_peer(_POOL_KERNELS, ns, here) for ns in kernel_namespaces(gateway)]
    owner = ownership.owner_reference(gateway, crds.JUPYTER_GATEWAY.kind)
    labels = gateway_objects.labels(meta["name"])
    return {
        "apiVersion": API_VERSION,
        "kind": "NetworkPolicy",
        "metadata": ownership.metadata(owner, meta, labels, gateway_policy_name(gateway)),
        "spec": {
            "podSelector": {"matchLabels": dict(labels)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": kernels,
                    "ports": [{"protocol": "TCP", "port": gateway_objects.RESPONSE_PORT}],
                },
                {"ports": [{"protocol": "TCP", "port": gateway_objects.HTTP_PORT}]},
            ],
        },
    }


def owned_policies(gateway: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The policies in the gateway's namespace (owned by the JupyterGateway)."""
    return [gateway_policy(gateway), kernel_policy(gateway, gateway["metadata"]["namespace"])]


def external_policies(gateway: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The kernel policies in the gateway's other kernel namespaces (the operator deletes
    them)."""
    return [kernel_policy(gateway, ns) for ns in gateway_objects.rbac_namespaces(gateway)]


def stale_external_policies(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Kernel policies ``before`` (the previous spec) had in other namespaces and ``after`` no
    longer renders."""
    keep = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in external_policies(after)}
    return [
        p
        for p in external_policies(before)
        if (p["metadata"]["namespace"], p["metadata"]["name"]) not in keep
    ]
