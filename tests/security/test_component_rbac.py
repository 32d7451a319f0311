"""What each component's ServiceAccount may and may not do, pinned by ``kubectl auth can-i``.

The accounts and grants are the shipped ones: the operator's from ``crds/rbac/`` (applied to
the sandbox), a gateway's from ``operator/gateway_objects.py`` (what the operator creates for a
JupyterGateway), a notebook pod's: none (``automountServiceAccountToken: false``, and the
namespace's ``default`` account holds nothing). A grant added or widened without updating this
matrix fails here; so does one that goes missing (the end-to-end suites also run every
component under these accounts).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from elastic_jupyter import crds
from elastic_jupyter.operator import notebook_objects
from elastic_jupyter.operator.service_accounts import (
    direct_notebook_kubeconfig,
    gateway_kubeconfig,
    operator_kubeconfig,
)
from elastic_jupyter.sandbox.cluster import SandboxCluster

pytestmark = pytest.mark.kubectl


def _can_i(sandbox: SandboxCluster, kubeconfig: Path, *args: str) -> bool:
    result = sandbox.kubectl("auth", "can-i", *args, check=False, kubeconfig=kubeconfig)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


def _check(sandbox: SandboxCluster, kubeconfig: Path, matrix: list[tuple[bool, str]]) -> list[str]:
    wrong = []
    for expected, question in matrix:
        if _can_i(sandbox, kubeconfig, *question.split()) != expected:
            wrong.append(f"{'may' if expected else 'must not'}: {question}")
    return wrong


@pytest.fixture
def namespaces(sandbox: SandboxCluster) -> Iterator[tuple[str, str]]:
    names = (f"sec-gw-{uuid.uuid4().hex[:6]}", f"sec-other-{uuid.uuid4().hex[:6]}")
    for name in names:
        sandbox.create_namespace(name)
    yield names
    for name in names:
        sandbox.delete_namespace(name)


def test_operator_service_account(sandbox: SandboxCluster, namespaces: tuple[str, str]) -> None:
    ns, _ = namespaces
    kc = operator_kubeconfig(sandbox)
    jk = "jupyterkernels.kubeflow.tkestack.io"
    matrix = [
        # kernels → pods, everywhere (an operator for all namespaces)
        (True, f"create pods -n {ns}"),
        (True, f"watch pods -n {ns}"),
        (True, f"patch {jk} --subresource=status -n {ns}"),
        (True, f"list {jk} --all-namespaces"),
        (True, f"create configmaps -n {ns}"),
        (True, f"create deployments.apps -n {ns}"),
        (True, f"create roles.rbac.authorization.k8s.io -n {ns}"),
        # namespace consent is read, never written (operator/namespace_consent.py)
        (True, f"get namespaces/{ns}"),
        (False, f"patch namespaces/{ns}"),
        # a NetworkPolicy per gateway (operator/network_policy.py)
        (True, f"create networkpolicies.networking.k8s.io -n {ns}"),
        # warm pools (operator/warm_pools.py): pool kernels and their claim-key Secrets are
        # created; failed, idle-too-long and never-completed claims deleted
        (True, f"create {jk} -n {ns}"),
        (True, f"delete {jk} -n {ns}"),
        (True, f"create secrets -n {ns}"),
        (False, f"update {jk} -n {ns}"),
        # what it never does: kernel pods go by garbage collection, nothing cluster-wide is
        # granted, no shortcut around RBAC escalation checks, no exec into kernels
        (False, f"delete pods -n {ns}"),
        (False, f"update pods -n {ns}"),
        (False, f"create pods --subresource=exec -n {ns}"),
        (False, "create clusterroles.rbac.authorization.k8s.io"),
        (False, "create clusterrolebindings.rbac.authorization.k8s.io"),
        (False, f"escalate roles.rbac.authorization.k8s.io -n {ns}"),
        (False, "bind clusterroles.rbac.authorization.k8s.io"),
        (False, "impersonate users"),
        (False, f"impersonate serviceaccounts -n {ns}"),
        (False, "delete namespaces"),
        (False, "create namespaces"),
        (False, "delete nodes"),
        (False, "create customresourcedefinitions.apiextensions.k8s.io"),
        (False, f"delete configmaps -n {ns}"),
        (False, f"create jupytergateways.kubeflow.tkestack.io -n {ns}"),
        (False, f"delete jupyterkerneltemplates.kubeflow.tkestack.io -n {ns}"),
    ]
    assert _check(sandbox, kc, matrix) == []


def test_gateway_service_account(sandbox: SandboxCluster, namespaces: tuple[str, str]) -> None:
    ns, other = namespaces
    kc = gateway_kubeconfig(sandbox, ns, "gw")
    kf = "kubeflow.tkestack.io"
    matrix = [
        # what the plugin calls (gateway_plugin/launcher.py, kernel_watch.py, kernelspec_sync.py)
        (True, f"create jupyterkernels.{kf} -n {ns}"),
        (True, f"delete jupyterkernels.{kf} -n {ns}"),
        (True, f"watch jupyterkernels.{kf} -n {ns}"),
        (True, f"get jupyterkerneltemplates.{kf}/tpl -n {ns}"),
        (True, f"get jupytergateways.{kf}/gw -n {ns}"),
        (True, f"watch configmaps -n {ns}"),
        # each kernel's Secret (launch token), and its notebooks' token digests by name only
        (True, f"create secrets -n {ns}"),
        (True, f"get secrets/{crds.gateway_clients_secret_name('gw')} -n {ns}"),
        # the session annotations on its kernels (session_store.py, adoption.py)
        (True, f"patch jupyterkernels.{kf} -n {ns}"),
        # never: kernel status is the operator's, pods are read through the JupyterKernel
        (False, f"update jupyterkernels.{kf} -n {ns}"),
        (False, f"patch jupyterkernels.{kf} --subresource=status -n {ns}"),
        (False, f"get pods -n {ns}"),
        (False, f"create pods -n {ns}"),
        (False, f"list jupyterkerneltemplates.{kf} -n {ns}"),
        (False, f"get jupytergateways.{kf}/another -n {ns}"),
        (False, f"list jupytergateways.{kf} -n {ns}"),
        (False, f"create configmaps -n {ns}"),
        # secrets: not listed, watched or deleted; the gateway's token comes as env
        (False, f"list secrets -n {ns}"),
        (False, f"watch secrets -n {ns}"),
        (False, f"delete secrets -n {ns}"),
        (False, f"get secrets/{ns}-auth -n {other}"),
        # nothing in another namespace it was not given
        (False, f"list jupyterkernels.{kf} -n {other}"),
        (False, f"create jupyterkernels.{kf} -n {other}"),
        (False, f"get pods -n {other}"),
        (False, f"list jupyterkernels.{kf} --all-namespaces"),
        (False, f"create rolebindings.rbac.authorization.k8s.io -n {ns}"),
        (False, "impersonate users"),
    ]
    assert _check(sandbox, kc, matrix) == []


def test_gateway_kernel_namespace_grant_is_kernels_only(
    sandbox: SandboxCluster, namespaces: tuple[str, str]
) -> None:
    ns, kernels = namespaces
    kc = gateway_kubeconfig(sandbox, ns, "multi", kernel_namespaces=[kernels])
    kf = "kubeflow.tkestack.io"
    matrix = [
        (True, f"create jupyterkernels.{kf} -n {kernels}"),
        (True, f"watch jupyterkernels.{kf} -n {kernels}"),
        (False, f"update jupyterkernels.{kf} -n {kernels}"),
        (False, f"watch configmaps -n {kernels}"),
        (False, f"get jupytergateways.{kf}/multi -n {kernels}"),
    ]
    assert _check(sandbox, kc, matrix) == []


def test_notebook_pods_get_no_credentials(
    sandbox: SandboxCluster, namespaces: tuple[str, str]
) -> None:
    ns, _ = namespaces
    notebook = {
        "apiVersion": "kubeflow.tkestack.io/v1alpha1",
        "kind": "JupyterNotebook",
        "metadata": {"name": "nb", "namespace": ns, "uid": "u"},
        "spec": {},
    }
    pod = notebook_objects.deployment(notebook, None)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod.get("serviceAccountName", "default") == "default"
    # and the account it runs under may do nothing, were a token ever mounted
    kc = sandbox.serviceaccount_kubeconfig(ns, "default")
    matrix = [
        (False, f"list pods -n {ns}"),
        (False, f"get secrets -n {ns}"),
        (False, f"list jupyterkernels.kubeflow.tkestack.io -n {ns}"),
        (False, f"create jupyterkernels.kubeflow.tkestack.io -n {ns}"),
        (False, f"get configmaps -n {ns}"),
    ]
    assert _check(sandbox, kc, matrix) == []


def test_direct_notebook_service_account(
    sandbox: SandboxCluster, namespaces: tuple[str, str]
) -> None:
    """A direct-mode notebook (``spec.kernels``): exactly what the provisioner and the
    kernelspec manager call, in the kernel namespace and its own; a tenant's notebook user
    holding this token reaches nothing else (docs/security.md says what RBAC cannot narrow)."""
    ns, kernels = namespaces
    third = f"sec-third-{uuid.uuid4().hex[:6]}"
    sandbox.create_namespace(third)
    try:
        kc = direct_notebook_kubeconfig(sandbox, ns, "nb", kernel_namespace=kernels)
        kf = "kubeflow.tkestack.io"
        matrix = [
            # the provisioner (provisioner/__init__.py lists its calls), in the kernel namespace
            *[
                (True, f"{verb} jupyterkernels.{kf} -n {kernels}")
                for verb in ("create", "get", "list", "watch", "patch", "delete")
            ],
            (True, f"get jupyterkerneltemplates.{kf}/tpl -n {kernels}"),
            (True, f"create secrets -n {kernels}"),
            (True, f"patch secrets/k1 -n {kernels}"),
            # RBAC cannot narrow get to Secrets created later: every Secret of the kernel
            # namespace can be read by name (keep other Secrets out of a kernel namespace)
            (True, f"get secrets/k1 -n {kernels}"),
            # the kernelspec manager's watch, in the notebook's own namespace only
            (True, f"list configmaps -n {ns}"),
            (True, f"watch configmaps -n {ns}"),
            # never: pods, status, listing Secrets, other namespaces, RBAC, anything cluster-wide
            (False, f"create pods -n {kernels}"),
            (False, f"create pods -n {ns}"),
            (False, f"get pods -n {kernels}"),
            (False, f"create pods --subresource=exec -n {kernels}"),
            (False, f"update jupyterkernels.{kf} -n {kernels}"),
            (False, f"patch jupyterkernels.{kf} --subresource=status -n {kernels}"),
            (False, f"list secrets -n {kernels}"),
            (False, f"watch secrets -n {kernels}"),
            (False, f"delete secrets -n {kernels}"),
            (False, f"list jupyterkerneltemplates.{kf} -n {kernels}"),
            (False, f"create configmaps -n {ns}"),
            (False, f"get configmaps/x -n {ns}"),
            (False, f"watch configmaps -n {kernels}"),
            (False, f"get secrets/{ns}-token -n {ns}"),
            (False, f"list secrets -n {ns}"),
            (False, f"create jupyterkernels.{kf} -n {ns}"),
            (False, f"list jupyterkernels.{kf} -n {third}"),
            (False, f"get secrets/db-password -n {third}"),
            (False, f"list jupyterkernels.{kf} --all-namespaces"),
            (False, f"list jupyternotebooks.{kf} -n {ns}"),
            (False, f"create rolebindings.rbac.authorization.k8s.io -n {kernels}"),
            (False, f"create roles.rbac.authorization.k8s.io -n {ns}"),
            (False, "impersonate users"),
            (False, "list namespaces"),
        ]
        assert _check(sandbox, kc, matrix) == []
        # kernels in its own namespace: the same kernel rules there, nothing in another
        own = direct_notebook_kubeconfig(sandbox, ns, "solo")
        assert (
            _check(
                sandbox,
                own,
                [
                    (True, f"create jupyterkernels.{kf} -n {ns}"),
                    (True, f"create secrets -n {ns}"),
                    (True, f"watch configmaps -n {ns}"),
                    (False, f"create jupyterkernels.{kf} -n {kernels}"),
                    (False, f"list secrets -n {ns}"),
                    (False, f"create pods -n {ns}"),
                ],
            )
            == []
        )
    finally:
        sandbox.delete_namespace(third)
