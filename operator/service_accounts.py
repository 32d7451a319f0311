"""Run each component under the ServiceAccount our manifests give it, on a test cluster.

Tests, benchmarks and the demo start the operator and Enterprise Gateway as local processes.
With RBAC enforced they must authenticate as the operator's and the gateway's own accounts, not
as a cluster admin, so a missing or excessive grant shows. This module does it from the same
sources as a real install: the operator's ServiceAccount and ClusterRoles come from
``crds/rbac/`` (applied to the sandbox with the CRDs), a gateway's ServiceAccount, Role and
RoleBinding from :mod:`.gateway_objects`, exactly what the operator creates for a
JupyterGateway. ``cluster`` is a :class:`elastic_jupyter.sandbox.cluster.SandboxCluster` (or
anything with its ``request`` and ``serviceaccount_kubeconfig``); the test's own setup keeps
using the admin kubeconfig.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from elastic_jupyter import crds
from elastic_jupyter.operator import direct_notebook_objects, gateway_objects

#: where crds/rbac/ puts the operator's account
OPERATOR_NAMESPACE = "elastic-jupyter-system"
OPERATOR_SERVICE_ACCOUNT = "elastic-jupyter-operator"

_PLURALS = {
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
}


class Cluster(Protocol):
    def request(self, method: str, path: str, body: Any = None) -> Any: ...

    def serviceaccount_kubeconfig(self, namespace: str, name: str) -> Path: ...


def operator_kubeconfig(cluster: Cluster) -> Path:
    """A kubeconfig of the operator's ServiceAccount (``crds/rbac/`` must be applied)."""
    return cluster.serviceaccount_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT)


def gateway_objects_for(
    namespace: str, name: str, kernel_namespaces: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The ServiceAccount, Role and RoleBindings the operator gives gateway ``name``
    (kernels also allowed in ``kernel_namespaces``), without owner references: a local
    gateway has no JupyterGateway object to own them."""
    spec: dict[str, Any] = {}
    if kernel_namespaces:
        spec = {"allowKernelNamespace": True, "kernelNamespaces": list(kernel_namespaces)}
    gateway = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_GATEWAY.kind,
        "metadata": {"name": name, "namespace": namespace, "uid": ""},
        "spec": spec,
    }
    objects = [
        gateway_objects.service_account(gateway),
        gateway_objects.role(gateway),
        gateway_objects.role_binding(gateway),
        *gateway_objects.kernel_namespace_rbac(gateway),
    ]
    for obj in objects:
        obj["metadata"].pop("ownerReferences", None)
    return objects


def gateway_kubeconfig(
    cluster: Cluster, namespace: str, name: str, kernel_namespaces: Sequence[str] = ()
) -> Path:
    """Create gateway ``name``'s account and grants (as the admin), return its kubeconfig."""
    _create(cluster, gateway_objects_for(namespace, name, kernel_namespaces))
    return cluster.serviceaccount_kubeconfig(namespace, name)


def _create(cluster: Cluster, objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        base, plural = _PLURALS[obj["kind"]]
        ns = obj["metadata"]["namespace"]
        try:
            cluster.request("POST", f"{base}/namespaces/{ns}/{plural}", obj)
        except urllib.error.HTTPError as err:
            if err.code != 409:  # already there (a restarted component of the same name)
                raise


def direct_notebook_objects_for(
    namespace: str, name: str, kernel_namespace: str | None = None
) -> list[dict[str, Any]]:
    """The ServiceAccount, Roles and RoleBindings the operator gives a direct-mode
    JupyterNotebook ``name`` (kernels in ``kernel_namespace``, default its own), without owner
    references: a notebook server run locally has no JupyterNotebook object to own them."""
    kernels: dict[str, Any] = {"namespace": kernel_namespace} if kernel_namespace else {}
    notebook = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_NOTEBOOK.kind,
        "metadata": {"name": name, "namespace": namespace, "uid": ""},
        "spec": {"kernels": kernels},
    }
    objects = [
        o
        for o in direct_notebook_objects.home_objects(notebook, 0)
        + direct_notebook_objects.external_rbac(notebook)
        if o["kind"] in _PLURALS
    ]
    for obj in objects:
        obj["metadata"].pop("ownerReferences", None)
    return objects


def direct_notebook_kubeconfig(
    cluster: Cluster, namespace: str, name: str, kernel_namespace: str | None = None
) -> Path:
    """Create a direct-mode notebook's account and grants (as the admin), return its
    kubeconfig: what a notebook server of ``spec.kernels`` runs with."""
    _create(cluster, direct_notebook_objects_for(namespace, name, kernel_namespace))
    account = direct_notebook_objects.service_account_name(name)
    return cluster.serviceaccount_kubeconfig(namespace, account)
