"""Attack: a tenant names a JupyterGateway (or kernelspec) like an object that already exists in
the namespace — the RoleBinding ``edit`` the team relies on, somebody's ConfigMap — so that the
operator rewrites it (the gateway's service account gains ``edit``) or adopts it (and later
garbage-collects it). Objects without our controller owner reference are never touched; the
status says ``NameConflict``.
"""

# The fixtures come from tenant_support (imported below), which ruff sees as redefined.
# ruff: noqa: F811

from __future__ import annotations

import time
from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.operator.conftest import get
from tests.security.tenant_support import (  # noqa: F401 (fixtures)
    custom,
    exists,
    kubectl_apply,
    policy_operator,
    tenant_ns,
    wait_condition,
)


def team_edit_binding() -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "Group", "name": "team", "apiGroup": "rbac.authorization.k8s.io"}],
    }


def test_gateway_named_like_a_rolebinding_leaves_it_alone(
    sandbox: SandboxCluster, tenant_ns: str
) -> None:
    kubectl_apply(sandbox, tenant_ns, team_edit_binding())
    binding = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{tenant_ns}/rolebindings/edit"
    before = get(sandbox, binding)
    gateway = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_GATEWAY.kind,
        "metadata": {"name": "edit"},
        "spec": {},
    }
    kubectl_apply(sandbox, tenant_ns, gateway)
    path = custom(crds.JUPYTER_GATEWAY.plural, tenant_ns, "edit")
    cond = wait_condition(sandbox, path, crds.CONDITION_VALID, crds.REASON_NAME_CONFLICT)
    assert cond["status"] == "False"
    assert "not owned by this resource" in cond["message"]
    after = get(sandbox, binding) or {}
    assert after["subjects"] == before["subjects"]  # type: ignore[index]
    assert after["roleRef"] == before["roleRef"]  # type: ignore[index]
    assert not after["metadata"].get("ownerReferences")


def test_kernelspec_does_not_adopt_or_delete_a_foreign_configmap(
    sandbox: SandboxCluster, tenant_ns: str
) -> None:
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "python"},
        "data": {"notes.txt": "the team's own data"},
    }
    kubectl_apply(sandbox, tenant_ns, configmap)
    kernelspec = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL_SPEC.kind,
        "metadata": {"name": "python"},
        "spec": {"template": {"name": "any"}},
    }
    kubectl_apply(sandbox, tenant_ns, kernelspec)
    path = custom(crds.JUPYTER_KERNEL_SPEC.plural, tenant_ns, "python")
    cond = wait_condition(sandbox, path, crds.CONDITION_VALID, crds.REASON_NAME_CONFLICT)
    assert "ConfigMap" in cond["message"]
    cm_path = f"/api/v1/namespaces/{tenant_ns}/configmaps/python"
    current = get(sandbox, cm_path) or {}
    assert current["data"] == {"notes.txt": "the team's own data"}
    assert not current["metadata"].get("ownerReferences")
    sandbox.kubectl("delete", "-n", tenant_ns, "jupyterkernelspec", "python")
    time.sleep(1.5)  # garbage collection would have run by now
    assert exists(sandbox, cm_path)


def test_gateway_named_like_a_service_keeps_its_selector(
    sandbox: SandboxCluster, tenant_ns: str
) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "team-web"}, "ports": [{"port": 80}]},
    }
    kubectl_apply(sandbox, tenant_ns, service)
    gateway = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_GATEWAY.kind,
        "metadata": {"name": "web"},
        "spec": {},
    }
    kubectl_apply(sandbox, tenant_ns, gateway)
    path = custom(crds.JUPYTER_GATEWAY.plural, tenant_ns, "web")
    cond = wait_condition(sandbox, path, crds.CONDITION_VALID, crds.REASON_NAME_CONFLICT)
    assert f"Service {tenant_ns}/web" in cond["message"]
    current = get(sandbox, f"/api/v1/namespaces/{tenant_ns}/services/web") or {}
    assert current["spec"]["selector"] == {"app": "team-web"}
    assert [p["port"] for p in current["spec"]["ports"]] == [80]
