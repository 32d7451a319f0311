"""Attack: a tenant's JupyterGateway names another namespace (``kube-system``, a neighbour's) as
its kernel namespace, so that the operator creates a Role and RoleBinding there for the tenant's
gateway service account. Only a namespace that opted in (annotation
``kubeflow.tkestack.io/accept-kernels-from``, writable by cluster admins only) gets them.
"""

# The fixtures come from tenant_support (imported below), which ruff sees as redefined.
# ruff: noqa: F811

from __future__ import annotations

import uuid
from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.helpers import wait_for
from tests.security.tenant_support import (  # noqa: F401 (fixtures)
    PREFIX,
    custom,
    exists,
    kubectl_apply,
    policy_operator,
    tenant_ns,
    wait_condition,
)

RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/{kind}/{name}"


def gateway(name: str, kernel_namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_GATEWAY.kind,
        "metadata": {"name": name},
        "spec": {"kernelNamespace": kernel_namespace},
    }


def role_paths(target: str, source: str, name: str) -> list[str]:
    return [
        RBAC.format(ns=target, kind=kind, name=f"{source}.{name}")
        for kind in ("roles", "rolebindings")
    ]


def test_kube_system_is_never_targeted(sandbox: SandboxCluster, tenant_ns: str) -> None:
    kubectl_apply(sandbox, tenant_ns, gateway("grab", "kube-system"))
    path = custom(crds.JUPYTER_GATEWAY.plural, tenant_ns, "grab")
    cond = wait_condition(sandbox, path, crds.CONDITION_VALID, crds.REASON_NAMESPACE_NOT_ACCEPTED)
    assert cond["status"] == "False"
    assert "namespace kube-system does not accept kernels" in cond["message"]
    assert crds.ANNOTATION_ACCEPT_KERNELS_FROM in cond["message"]  # says how an admin allows it
    assert not any(exists(sandbox, p) for p in role_paths("kube-system", tenant_ns, "grab"))


def test_a_namespace_accepts_only_by_its_own_annotation(
    sandbox: SandboxCluster, tenant_ns: str
) -> None:
    target = f"{PREFIX}target-{uuid.uuid4().hex[:6]}"
    sandbox.create_namespace(target)
    try:
        kubectl_apply(sandbox, tenant_ns, gateway("gw", target))
        path = custom(crds.JUPYTER_GATEWAY.plural, tenant_ns, "gw")
        wait_condition(sandbox, path, crds.CONDITION_VALID, crds.REASON_NAMESPACE_NOT_ACCEPTED)
        assert not any(exists(sandbox, p) for p in role_paths(target, tenant_ns, "gw"))

        # The target's admin opts in for this one source namespace; the gateway's periodic
        # consent re-check (2 s in these tests) grants its kernel rights there.
        annotation = f"{crds.ANNOTATION_ACCEPT_KERNELS_FROM}=other,{tenant_ns}"
        sandbox.kubectl("annotate", "namespace", target, annotation)
        wait_for(
            lambda: all(exists(sandbox, p) for p in role_paths(target, tenant_ns, "gw")),
            timeout=20,
            message="the gateway's Role and RoleBinding in the accepting namespace",
        )
        wait_condition(sandbox, path, crds.CONDITION_VALID, crds.REASON_SPEC_VALID)

        # Consent withdrawn: the grant goes at the next re-check, nobody touches the gateway.
        sandbox.kubectl("annotate", "namespace", target, f"{crds.ANNOTATION_ACCEPT_KERNELS_FROM}-")
        wait_for(
            lambda: not any(exists(sandbox, p) for p in role_paths(target, tenant_ns, "gw")),
            timeout=20,
            message="the grant removed after consent was withdrawn",
        )
    finally:
        sandbox.delete_namespace(target)
