"""Attack: a tenant writes a JupyterKernel (or template) asking for a privileged, root, host-
namespace or other-service-account pod. The operator, which may create pods everywhere, must
not render it: the kernel fails at once with ``PolicyViolation`` naming the field, and no pod
exists. A template asking the same is ``Valid=False``.
"""

# The fixtures come from tenant_support (imported below), which ruff sees as redefined.
# ruff: noqa: F811

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.operator.conftest import kernel_manifest, pod, wait_status
from tests.security.tenant_support import (  # noqa: F401 (fixtures)
    custom,
    kubectl_apply,
    policy_operator,
    tenant_ns,
    wait_condition,
)

HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    (
        "privileged",
        {"containers": [{"securityContext": {"privileged": True}}]},
        "containers[0].securityContext.privileged",
    ),
    ("root", {"securityContext": {"runAsUser": 0}}, "securityContext.runAsUser"),
    ("host-pid", {"hostPID": True}, "spec.template.spec.hostPID"),
    (
        "host-path",
        {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
        "volumes[0].hostPath",
    ),
    (
        "admin-sa",
        {"serviceAccountName": "operator-admin"},
        "spec.template.spec.serviceAccountName",
    ),
    (
        "token",
        {"automountServiceAccountToken": True},
        "spec.template.spec.automountServiceAccountToken",
    ),
    (
        "caps",
        {"containers": [{"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]},
        "capabilities.add",
    ),
    ("host-port", {"containers": [{"ports": [{"containerPort": 80, "hostPort": 80}]}]}, "hostPort"),
]


def hostile_kernel(name: str, patch: dict[str, Any]) -> dict[str, Any]:
    manifest = kernel_manifest(name)
    spec = manifest["spec"]["template"]["spec"]
    for key, value in patch.items():
        if key == "containers":
            spec["containers"][0].update(copy.deepcopy(value[0]))
        else:
            spec[key] = copy.deepcopy(value)
    return manifest


@pytest.mark.parametrize(("case", "patch", "field"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_kernel_is_refused_with_the_field(
    sandbox: SandboxCluster, tenant_ns: str, case: str, patch: dict[str, Any], field: str
) -> None:
    name = f"evil-{case}"
    started = time.monotonic()
    kubectl_apply(sandbox, tenant_ns, hostile_kernel(name, patch))
    status = wait_status(
        sandbox, tenant_ns, name, phase=crds.PHASE_FAILED, reason=crds.REASON_POLICY_VIOLATION
    )
    assert time.monotonic() - started < 15  # fails fast, not after a launch timeout
    assert field in status["message"], status["message"]
    assert pod(sandbox, tenant_ns, name) is None  # never rendered


def test_plain_kernel_still_starts_without_a_token(sandbox: SandboxCluster, tenant_ns: str) -> None:
    kubectl_apply(sandbox, tenant_ns, kernel_manifest("fine"))
    wait_status(sandbox, tenant_ns, "fine", phase=crds.PHASE_RUNNING)
    body = pod(sandbox, tenant_ns, "fine") or {}
    assert body["spec"]["automountServiceAccountToken"] is False
    context = body["spec"]["securityContext"]
    assert context["runAsNonRoot"] is True and context["seccompProfile"]["type"] == "RuntimeDefault"


def test_hostile_template_is_not_valid(sandbox: SandboxCluster, tenant_ns: str) -> None:
    template = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL_TEMPLATE.kind,
        "metadata": {"name": "root-template"},
        "spec": {
            "template": {
                "spec": {
                    "hostNetwork": True,
                    "containers": [{"name": "kernel", "image": "busybox"}],
                }
            }
        },
    }
    kubectl_apply(sandbox, tenant_ns, template)
    path = custom(crds.JUPYTER_KERNEL_TEMPLATE.plural, tenant_ns, "root-template")
    cond = wait_condition(sandbox, path, crds.CONDITION_VALID, crds.REASON_POLICY_VIOLATION)
    assert cond["status"] == "False"
    assert "spec.template.spec.hostNetwork" in cond["message"]
