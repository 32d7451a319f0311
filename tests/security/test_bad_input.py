"""Bad input fails fast: a string where ``securityContext`` expects an object (the CRD kept pod
templates open so the original's YAML applies) made the operator's handler raise ValueError and
the user waited the whole launch timeout. Now the CRD types ``securityContext`` (and the other
fields the pod policy reads), so the API server refuses it naming the field; for the fields it
still keeps open the template is ``Valid=False`` naming the field, and a kernel using it fails at
once with that reason — through the real gateway too, where the notebook user reads it.
"""

# The fixtures come from tenant_support (imported below), which ruff sees as redefined.
# ruff: noqa: F811

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin.kube import ApiError
from elastic_jupyter.sandbox.cluster import SandboxCluster, SandboxError
from tests.gateway_plugin.conftest import (  # noqa: F401 (fixtures)
    Cluster,
    Gateway,
    gateway_factory,
    gw_cluster,
    gw_operator,
    kernelspec,
)
from tests.operator.conftest import kernel_manifest, pod, wait_status
from tests.security.tenant_support import (  # noqa: F401 (fixtures)
    custom,
    kubectl_apply,
    policy_operator,
    tenant_ns,
    wait_condition,
)

STRING_CONTEXT = {"containers": [{"name": "kernel"}], "securityContext": "runAsUser: 0"}
# Fields the CRD keeps open (any PodSpec field it does not list): only the operator can say.
STRING_PROBE = {"containers": [{"name": "kernel", "livenessProbe": "tcp"}]}


def template(name: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL_TEMPLATE.kind,
        "metadata": {"name": name},
        "spec": {"template": {"spec": pod_spec}},
    }


def test_string_security_context_is_refused_by_the_api_server(
    sandbox: SandboxCluster, tenant_ns: str
) -> None:
    with pytest.raises(SandboxError) as refused:
        kubectl_apply(sandbox, tenant_ns, template("stringy", STRING_CONTEXT))
    assert "spec.template.spec.securityContext" in str(refused.value)
    assert "must be of type object" in str(refused.value)
    kernel = kernel_manifest("typo")
    kernel["spec"]["template"]["spec"]["containers"][0]["securityContext"] = True
    with pytest.raises(SandboxError, match=r"containers\[0\]\.securityContext"):
        kubectl_apply(sandbox, tenant_ns, kernel)


def test_template_with_a_wrongly_typed_field_is_not_valid(
    sandbox: SandboxCluster, tenant_ns: str
) -> None:
    kubectl_apply(sandbox, tenant_ns, template("stringy", STRING_PROBE))
    path = custom(crds.JUPYTER_KERNEL_TEMPLATE.plural, tenant_ns, "stringy")
    cond = wait_condition(sandbox, path, crds.CONDITION_VALID, crds.REASON_INVALID_SPEC)
    assert cond["status"] == "False"
    assert "spec.template.spec.containers[0].livenessProbe: must be an object" in cond["message"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"readinessProbe": 5}, "spec.template.spec.containers[0].readinessProbe"),
        ({"affinity": ["zone-a"]}, "spec.template.spec.affinity"),
        ({"livenessProbe": "tcp"}, "spec.template.spec.containers[0].livenessProbe"),
    ],
)
def test_kernel_with_wrong_types_fails_at_once(
    sandbox: SandboxCluster, tenant_ns: str, patch: dict[str, Any], field: str
) -> None:
    manifest = kernel_manifest("typo")
    spec = manifest["spec"]["template"]["spec"]
    if "affinity" not in patch:
        spec["containers"][0].update(patch)
    else:
        spec.update(patch)
    kubectl_apply(sandbox, tenant_ns, manifest)
    status = wait_status(
        sandbox,
        tenant_ns,
        "typo",
        timeout=10,
        phase=crds.PHASE_FAILED,
        reason=crds.REASON_INVALID_SPEC,
    )
    assert field in status["message"]
    assert pod(sandbox, tenant_ns, "typo") is None


# --- Through the real gateway: what the notebook user sees -------------------------------------


@pytest.fixture(scope="module")
def bad_ns(gw_cluster: Cluster) -> Iterator[str]:
    namespace = gw_cluster.create_namespace("gw-badinput")
    gw_cluster.apply_template(namespace, "stringy", STRING_PROBE)
    root = {"containers": [{"name": "kernel"}], "securityContext": {"runAsUser": 0}}
    gw_cluster.apply_template(namespace, "root", root)
    yield namespace
    with contextlib.suppress(ApiError):
        gw_cluster.api.request("DELETE", f"/api/v1/namespaces/{namespace}")


@pytest.fixture(scope="module")
def bad_gateway(gateway_factory: Callable[..., Gateway], bad_ns: str) -> Gateway:
    specs = {
        "py-stringy": kernelspec(template=(bad_ns, "stringy")),
        "py-root": kernelspec(template=(bad_ns, "root")),
    }
    return gateway_factory(bad_ns, specs)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "reason", "field"),
    [
        ("py-stringy", crds.REASON_INVALID_SPEC, "containers[0].livenessProbe"),
        ("py-root", crds.REASON_POLICY_VIOLATION, "spec.template.spec.securityContext.runAsUser"),
    ],
)
def test_user_reads_the_reason_within_seconds(
    bad_gateway: Gateway, spec: str, reason: str, field: str
) -> None:
    status, body, elapsed = bad_gateway.start_kernel(spec, {})
    assert status == 500, body
    assert reason in body["message"] and field in body["message"], body
    assert elapsed < 5
