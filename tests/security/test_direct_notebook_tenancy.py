"""A tenant's direct-mode JupyterNotebook (``spec.kernels``) against the real operator, RBAC on.

The notebook's own ServiceAccount gets the kernel rights only where the kernels may run: its
namespace, or another one that accepted the tenant's namespace (as for gateways); a bad spec is
refused by the API server naming the field, or reported at once in the status; a deleted
notebook leaves no kernel, pod, Secret, Role or policy behind, in any namespace.
"""

# The fixtures come from tenant_support (imported below), which ruff sees as redefined.
# ruff: noqa: F811

from __future__ import annotations

import json
import uuid
from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.operator import direct_notebook_objects as dno
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.helpers import wait_for
from tests.operator.conftest import get
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
POLICIES = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{name}"
#: A stand-in server (the operator's flags land in sys.argv): this file tests the operator.
IDLE_SERVER = ["python", "-c", "import time; time.sleep(600)"]


def notebook(name: str, kernels: dict[str, Any], **spec: Any) -> dict[str, Any]:
    template = {"spec": {"containers": [{"name": "nb", "image": "python", "command": IDLE_SERVER}]}}
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_NOTEBOOK.kind,
        "metadata": {"name": name},
        "spec": {"kernels": kernels, "template": template, **spec},
    }


def kernel_of(notebook_body: dict[str, Any], name: str, same_namespace: bool) -> dict[str, Any]:
    """A JupyterKernel as the provisioner writes it (the contract of DIRECT_MODE.md)."""
    meta = notebook_body["metadata"]
    body: dict[str, Any] = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL.kind,
        "metadata": {
            "name": name,
            "labels": {crds.LABEL_KERNEL_ID: uuid.uuid4().hex, crds.LABEL_NOTEBOOK: meta["name"]},
            "annotations": {
                dno.ANNOTATION_NOTEBOOK_NAMESPACE: meta["namespace"],
                dno.ANNOTATION_NOTEBOOK_UID: meta["uid"],
            },
        },
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "kernel", "image": "busybox", "command": ["sleep", "600"]}
                    ]
                }
            }
        },
    }
    if same_namespace:
        body["metadata"]["ownerReferences"] = [
            {
                "apiVersion": crds.API_VERSION,
                "kind": crds.JUPYTER_NOTEBOOK.kind,
                "name": meta["name"],
                "uid": meta["uid"],
            }
        ]
    return body


def rbac_paths(namespace: str, name: str) -> list[str]:
    return [RBAC.format(ns=namespace, kind=k, name=name) for k in ("roles", "rolebindings")]


def test_bad_kernels_fields_are_refused_naming_the_field(
    sandbox: SandboxCluster, tenant_ns: str
) -> None:
    for kernels, field in (
        ({"mode": "Local"}, "spec.kernels.mode"),
        ({"cullIdleTimeout": -1}, "spec.kernels.cullIdleTimeout"),
        ({"cullInterval": "soon"}, "spec.kernels.cullInterval"),
        ({"namespace": "Team_A"}, "spec.kernels.namespace"),
        ({"kernelSpecs": "python"}, "spec.kernels.kernelSpecs"),
    ):
        result = sandbox.kubectl(
            "apply",
            "-n",
            tenant_ns,
            "-f",
            "-",
            check=False,
            input=json.dumps(notebook("bad", kernels)),
        )
        assert result.returncode != 0, kernels
        assert field in result.stderr, (kernels, result.stderr)


def test_direct_mode_with_a_gateway_is_invalid_at_once(
    sandbox: SandboxCluster, tenant_ns: str
) -> None:
    kubectl_apply(sandbox, tenant_ns, notebook("both", {}, gateway={"name": "gw"}))
    path = custom(crds.JUPYTER_NOTEBOOK.plural, tenant_ns, "both")
    cond = wait_condition(sandbox, path, crds.CONDITION_VALID, crds.REASON_INVALID_SPEC)
    assert cond["status"] == "False"
    assert "spec.gateway" in cond["message"] and "spec.kernels" in cond["message"]
    assert not exists(sandbox, f"/apis/apps/v1/namespaces/{tenant_ns}/deployments/both")
    assert not any(exists(sandbox, p) for p in rbac_paths(tenant_ns, "both-notebook"))


def test_own_namespace_grants_and_nothing_left_after_delete(
    sandbox: SandboxCluster, tenant_ns: str
) -> None:
    kubectl_apply(sandbox, tenant_ns, notebook("nb", {"cullIdleTimeout": 30}))
    home = rbac_paths(tenant_ns, "nb-notebook")
    wait_for(lambda: all(exists(sandbox, p) for p in home), timeout=20, message="notebook RBAC")
    deployment = wait_for(
        lambda: get(sandbox, f"/apis/apps/v1/namespaces/{tenant_ns}/deployments/nb"),
        timeout=20,
        message="the notebook Deployment",
    )
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "nb-notebook"
    assert pod["automountServiceAccountToken"] is True
    assert "--MappingKernelManager.cull_idle_timeout=30" in pod["containers"][0]["args"]
    assert exists(sandbox, POLICIES.format(ns=tenant_ns, name="nb-kernels"))
    assert exists(sandbox, POLICIES.format(ns=tenant_ns, name="nb-notebook"))

    body = get(sandbox, custom(crds.JUPYTER_NOTEBOOK.plural, tenant_ns, "nb")) or {}
    kernels = custom(crds.JUPYTER_KERNEL.plural, tenant_ns)
    sandbox.request("POST", kernels, kernel_of(body, "k1", same_namespace=True))
    wait_for(
        lambda: exists(sandbox, f"/api/v1/namespaces/{tenant_ns}/pods/k1"),
        timeout=20,
        message="the kernel's pod",
    )
    sandbox.kubectl("delete", "-n", tenant_ns, "jupyternotebook", "nb", "--wait=false")
    wait_for(
        lambda: (
            not exists(sandbox, f"{kernels}/k1")
            and not exists(sandbox, f"/api/v1/namespaces/{tenant_ns}/pods/k1")
            and not any(exists(sandbox, p) for p in home)
        ),
        timeout=30,
        message="kernel, pod and RBAC of the deleted notebook gone",
    )


def test_another_namespace_needs_consent_and_is_cleaned_up(
    sandbox: SandboxCluster, tenant_ns: str
) -> None:
    target = f"{PREFIX}kn-{uuid.uuid4().hex[:6]}"
    sandbox.create_namespace(target)
    try:
        kubectl_apply(sandbox, tenant_ns, notebook("far", {"namespace": target}))
        path = custom(crds.JUPYTER_NOTEBOOK.plural, tenant_ns, "far")
        cond = wait_condition(
            sandbox, path, crds.CONDITION_VALID, crds.REASON_NAMESPACE_NOT_ACCEPTED
        )
        assert f"namespace {target} does not accept" in cond["message"]
        remote = rbac_paths(target, f"{tenant_ns}.far-notebook")
        assert not any(exists(sandbox, p) for p in remote)

        annotation = f"{crds.ANNOTATION_ACCEPT_KERNELS_FROM}={tenant_ns}"
        sandbox.kubectl("annotate", "namespace", target, annotation)
        wait_for(
            lambda: all(exists(sandbox, p) for p in remote),
            timeout=20,
            message="the notebook's Role and RoleBinding in the accepting namespace",
        )
        wait_condition(sandbox, path, crds.CONDITION_VALID, crds.REASON_SPEC_VALID)
        assert exists(sandbox, POLICIES.format(ns=target, name=f"{tenant_ns}.far-kernels"))

        # a kernel of this notebook there, and a namesake's that must survive
        body = get(sandbox, path) or {}
        kernels = custom(crds.JUPYTER_KERNEL.plural, target)
        sandbox.request("POST", kernels, kernel_of(body, "k-far", same_namespace=False))
        other = kernel_of(body, "k-other", same_namespace=False)
        other["metadata"]["annotations"][dno.ANNOTATION_NOTEBOOK_UID] = "someone-else"
        sandbox.request("POST", kernels, other)
        wait_for(
            lambda: exists(sandbox, f"/api/v1/namespaces/{target}/pods/k-far"),
            timeout=20,
            message="the remote kernel's pod",
        )

        sandbox.kubectl("delete", "-n", tenant_ns, "jupyternotebook", "far", "--wait=false")
        wait_for(
            lambda: (
                not exists(sandbox, f"{kernels}/k-far")
                and not exists(sandbox, f"/api/v1/namespaces/{target}/pods/k-far")
                and not any(exists(sandbox, p) for p in remote)
                and not exists(sandbox, POLICIES.format(ns=target, name=f"{tenant_ns}.far-kernels"))
                and not exists(sandbox, path)
            ),
            timeout=30,
            message="remote kernel, pod, Role, RoleBinding and policy gone; notebook deleted",
        )
        assert exists(sandbox, f"{kernels}/k-other")
    finally:
        sandbox.delete_namespace(target)
