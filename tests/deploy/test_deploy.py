"""``kubectl apply -k deploy/`` installs elastic-jupyter in one step, checked with kubectl 1.32.

Rendered with ``kubectl kustomize`` (no cluster) and then applied to the sandbox, where the
operator Deployment's pod runs the real ``elastic-jupyter-operator`` (the sandbox's image map
runs ``elastic-jupyter/operator*`` from the control venv). The Deployment is removed afterwards
so that this cluster-wide operator never acts on other tests' objects.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from elastic_jupyter import crds
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.examples import support
from tests.helpers import wait_for

pytestmark = pytest.mark.kubectl
DEPLOY = support.REPO / "deploy"
NAMESPACE = "elastic-jupyter-system"
OPERATOR = "elastic-jupyter-operator"


def rendered() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH (install kubectl 1.32 to run this test)")
    result = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_kustomization_renders_everything_in_one_step() -> None:
    docs = rendered()
    assert [d["metadata"]["name"] for d in by_kind(docs, "Namespace")] == [NAMESPACE]
    assert {d["metadata"]["name"] for d in by_kind(docs, "CustomResourceDefinition")} == {
        names.crd_name for names in crds.ALL_KINDS
    }
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert pod["serviceAccountName"] == OPERATOR
    assert pod["containers"][0]["command"] == [OPERATOR]
    assert pod["securityContext"]["runAsNonRoot"] is True
    accounts = {
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in by_kind(docs, "ServiceAccount")
    }
    assert (NAMESPACE, OPERATOR) in accounts
    # The operator's ClusterRoles are bound to its ServiceAccount, never to cluster-admin.
    bindings = by_kind(docs, "ClusterRoleBinding")
    assert bindings
    for binding in bindings:
        assert binding["roleRef"]["name"] != "cluster-admin"
        assert {"kind": "ServiceAccount", "name": OPERATOR, "namespace": NAMESPACE} in binding[
            "subjects"
        ]
    granted = {
        (group, resource)
        for role in by_kind(docs, "ClusterRole")
        for rule in role["rules"]
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
    }
    for needed in [
        (crds.GROUP, "jupytergateways"),
        (crds.GROUP, "jupyternotebooks/status"),
        ("apps", "deployments"),
        ("rbac.authorization.k8s.io", "roles"),
        ("", "secrets"),
    ]:
        assert needed in granted, needed


@pytest.mark.slow
def test_apply_k_installs_a_running_operator(sandbox: SandboxCluster) -> None:
    rendered()  # skips without kubectl
    sandbox.kubectl("apply", "-k", str(DEPLOY))
    try:
        result = sandbox.kubectl("apply", "-k", str(DEPLOY))  # idempotent
        assert "created" not in result.stdout
        path = f"/api/v1/namespaces/{NAMESPACE}/pods"

        def running() -> bool:
            pods = support.core(sandbox, path)["items"]
            return any(
                p["status"].get("phase") == "Running"
                and all(c.get("ready") for c in p["status"].get("containerStatuses") or [])
                for p in pods
            )

        wait_for(running, 45, 0.25, "the operator pod Running and ready")
        for names in crds.ALL_KINDS:
            sandbox.kubectl("get", names.plural, "-A")
        # The installed operator works: a JupyterGateway gets its objects.
        namespace = support.new_namespace(sandbox, "ejdeploy")
        try:
            gateway = {
                "apiVersion": crds.API_VERSION,
                "kind": "JupyterGateway",
                "metadata": {"name": "gw", "namespace": namespace},
                "spec": {"auth": {"mode": "disable"}},
            }
            sandbox.kubectl("apply", "-f", "-", input=json.dumps(gateway))
            role = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/gw"
            wait_for(lambda: support.core(sandbox, role), 30, 0.25, "the gateway's Role")
        finally:
            sandbox.delete_namespace(namespace)
    finally:
        sandbox.kubectl("delete", "deployment", OPERATOR, "-n", NAMESPACE, check=False)
        wait_for(
            lambda: not support.core(sandbox, f"/api/v1/namespaces/{NAMESPACE}/pods")["items"],
            30,
            0.25,
            "the operator pod gone",
        )
