"""Pure unit tests of the tenant-policy functions: no cluster."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin import client_limits
from elastic_jupyter.gateway_plugin.kernel_manifest import build_kernel_manifest
from elastic_jupyter.gateway_plugin.kernel_resource import (
    GatewayRef,
    KernelRequestError,
    LaunchInput,
    plan_kernel,
)
from elastic_jupyter.gateway_plugin.settings import GatewaySettings
from elastic_jupyter.operator import (
    kernel_pod,
    kernel_templates,
    kernelspec_configmap,
    namespace_consent,
    ownership,
    pod_policy,
)

RESTRICTED = pod_policy.PodPolicy()


def rendered(**pod_spec: Any) -> dict[str, Any]:
    spec = {"containers": [{"name": "kernel", "image": "k"}], **copy.deepcopy(pod_spec)}
    kernel = {"metadata": {"name": "k", "namespace": "n"}, "spec": {"template": {"spec": spec}}}
    return kernel_pod.build_pod(kernel)["spec"]


def fields(problems: list[pod_policy.Problem]) -> list[str]:
    return [p.field for p in problems]


def test_defaults_pass_restricted_and_disable_the_token() -> None:
    spec = rendered()
    assert pod_policy.violations(spec, RESTRICTED) == []
    assert spec["automountServiceAccountToken"] is False
    with_init = rendered(initContainers=[{"name": "fetch", "image": "busybox"}])
    assert pod_policy.violations(with_init, RESTRICTED) == []
    privileged_init = rendered(
        initContainers=[{"name": "fetch", "securityContext": {"privileged": True}}]
    )
    assert fields(pod_policy.violations(privileged_init, RESTRICTED)) == [
        "spec.template.spec.initContainers[0].securityContext.privileged"
    ]


@pytest.mark.parametrize(
    ("pod_spec", "field"),
    [
        ({"hostIPC": True}, "spec.template.spec.hostIPC"),
        (
            {"securityContext": {"runAsNonRoot": False}},
            "spec.template.spec.securityContext.runAsNonRoot",
        ),
        ({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}, "seccompProfile.type"),
        ({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}, "sysctls[0]"),
        ({"volumes": [{"name": "d", "hostPath": {"path": "/var/run/docker.sock"}}]}, "hostPath"),
        ({"volumes": [{"name": "n", "nfs": {"server": "x", "path": "/"}}]}, "volumes[0].nfs"),
        ({"serviceAccount": "builder"}, "spec.template.spec.serviceAccountName"),
    ],
)
def test_restricted_violations_name_the_field(pod_spec: dict[str, Any], field: str) -> None:
    found = pod_policy.violations(rendered(**pod_spec), RESTRICTED)
    assert any(field in f for f in fields(found)), found
    assert all("ELASTIC_JUPYTER_" in p.message for p in found)  # says how an admin relaxes it


def test_container_capabilities_and_escalation() -> None:
    spec = rendered(
        containers=[
            {
                "name": "kernel",
                "securityContext": {
                    "allowPrivilegeEscalation": True,
                    "capabilities": {"add": ["NET_BIND_SERVICE", "NET_RAW"]},
                    "procMount": "Unmasked",
                },
            }
        ]
    )
    found = fields(pod_policy.violations(spec, RESTRICTED))
    base = "spec.template.spec.containers[0].securityContext"
    assert f"{base}.allowPrivilegeEscalation" in found
    assert f"{base}.capabilities.add" in found and f"{base}.capabilities.drop" in found
    assert f"{base}.procMount" in found
    allowed = rendered(
        containers=[
            {
                "name": "kernel",
                "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}},
            }
        ]
    )
    assert pod_policy.violations(allowed, RESTRICTED) == []


def test_admin_settings_relax_the_policy() -> None:
    relaxed = pod_policy.PodPolicy.from_env(
        {
            pod_policy.ENV_POD_SECURITY: "privileged",
            pod_policy.ENV_SERVICE_ACCOUNTS: "default, spark-*",
            pod_policy.ENV_TOKEN_AUTOMOUNT: "true",
            pod_policy.ENV_PROCESS_PROXIES: "a.B",
        }
    )
    spec = rendered(hostPID=True, serviceAccountName="spark-x", automountServiceAccountToken=True)
    assert pod_policy.violations(spec, relaxed) == []
    assert fields(pod_policy.violations(rendered(serviceAccountName="admin"), relaxed)) == [
        "spec.template.spec.serviceAccountName"
    ]
    assert "a.B" in relaxed.allowed_process_proxies()
    # A typo never switches the checks off.
    assert pod_policy.PodPolicy.from_env({pod_policy.ENV_POD_SECURITY: "privilegd"}).level == (
        pod_policy.LEVEL_RESTRICTED
    )


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ("not a template", "spec.template"),
        (
            {"spec": {"securityContext": "runAsUser: 0", "containers": []}},
            "spec.template.spec.securityContext",
        ),
        ({"spec": {"containers": ["kernel"]}}, "spec.template.spec.containers[0]"),
        ({"spec": {"containers": [{"name": "k", "command": "python"}]}}, "containers[0].command"),
        (
            {"spec": {"containers": [{"name": "k", "securityContext": {"runAsUser": "0"}}]}},
            "runAsUser",
        ),
        ({"spec": {"volumes": {"a": 1}, "containers": []}}, "spec.template.spec.volumes"),
    ],
)
def test_shape_problems_name_the_field(template: Any, field: str) -> None:
    problems = pod_policy.shape_problems(template)
    assert problems and any(field in p.field for p in problems), problems
    assert "must be" in problems[0].message


def test_template_validity_reports_shape_and_policy() -> None:
    def template(pod_spec: dict[str, Any]) -> dict[str, Any]:
        return {"spec": {"template": {"spec": pod_spec}}}

    stringy = kernel_templates.validate(
        template({"containers": [{"name": "kernel"}], "securityContext": "x"}), RESTRICTED
    )
    assert (stringy.valid, stringy.reason) == (False, crds.REASON_INVALID_SPEC)
    assert "spec.template.spec.securityContext" in stringy.message
    root = kernel_templates.validate(
        template({"containers": [{"name": "kernel"}], "securityContext": {"runAsUser": 0}}),
        RESTRICTED,
    )
    assert (root.valid, root.reason) == (False, crds.REASON_POLICY_VIOLATION)
    fine = kernel_templates.validate(template({"containers": [{"name": "kernel"}]}), RESTRICTED)
    assert fine.valid


def test_namespace_consent() -> None:
    def ns(annotation: str | None) -> dict[str, Any]:
        annotations = {crds.ANNOTATION_ACCEPT_KERNELS_FROM: annotation} if annotation else {}
        return {"metadata": {"name": "t", "annotations": annotations}}

    accepts = namespace_consent.accepts
    assert accepts(None, "a", "a", {})  # its own namespace
    assert not accepts(ns(None), "kube-system", "a", {})
    assert not accepts(None, "t", "a", {})  # absent namespace
    assert accepts(ns("x, a"), "t", "a", {}) and not accepts(ns("x"), "t", "a", {})
    assert accepts(ns("*"), "t", "a", {})
    grants = namespace_consent.parse_grants("t=a,b; shared=* ;broken")
    assert grants == {"t": frozenset({"a", "b"}), "shared": frozenset({"*"})}
    assert accepts(ns(None), "t", "b", grants) and accepts(ns(None), "shared", "z", grants)
    assert "kubectl annotate namespace t" in namespace_consent.refusal_message("t", "a")


def test_is_ours() -> None:
    gateway = {"metadata": {"name": "gw", "namespace": "a", "uid": "u1"}}
    desired = {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True}]}}
    assert ownership.is_ours(
        {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True}]}}, desired
    )
    assert not ownership.is_ours({"metadata": {}}, desired)
    assert not ownership.is_ours({"metadata": {"ownerReferences": [{"uid": "u1"}]}}, desired)
    marked = {
        "metadata": {"annotations": {crds.ANNOTATION_OWNER: ownership.owner_annotation(gateway)}}
    }
    assert ownership.is_ours(copy.deepcopy(marked), marked)
    assert not ownership.is_ours({"metadata": {"annotations": {}}}, marked)


def test_kernelspec_class_allow_list() -> None:
    allowed = RESTRICTED.allowed_process_proxies()
    kernelspec = {"metadata": {"name": "ks", "namespace": "n", "uid": "u"}, "spec": {}}
    local = copy.deepcopy(kernelspec)
    local["spec"]["className"] = (
        "enterprise_gateway.services.processproxies.processproxy.LocalProcessProxy"
    )
    rendering = kernelspec_configmap.render(local, allowed)
    assert rendering.configmap is None and rendering.problem is not None
    assert rendering.problem[0] == crds.REASON_PROCESS_PROXY_NOT_ALLOWED
    assert "spec.className" in rendering.problem[1]
    legacy = copy.deepcopy(kernelspec)
    legacy["spec"] = {
        "className": next(iter(crds.LEGACY_PROCESS_PROXY_CLASSES)),
        "template": {"name": "t"},
    }
    assert kernelspec_configmap.render(legacy, allowed).configmap is not None


# --- Gateway: client env limits ------------------------------------------------------------------


def launch(client_env: dict[str, str], resources: dict[str, Any] | None = None) -> LaunchInput:
    env = {"KERNEL_USERNAME": "alice", **client_env}
    return LaunchInput(
        kernel_id="0f6b1d2c-1111-4c3e-9a57-3f0c9d7e2a11",
        kernelspec_name="python",
        response_address="10.0.0.1:8877",
        public_key="key",
        port_range="0..0",
        env=env,
        client_env=client_env,
        image_name="img",
        resources=resources,
    )


@pytest.mark.parametrize(("name", "value"), [("KERNEL_UID", "1"), ("KERNEL_GID", "10")])
def test_client_ids_outside_the_admin_range_are_refused(name: str, value: str) -> None:
    with pytest.raises(KernelRequestError) as err:
        plan_kernel(launch({name: value}), GatewaySettings())
    assert err.value.status == 403 and name in err.value.message
    assert "RANGE" in err.value.message
    plan = plan_kernel(launch({"KERNEL_UID": "1500", "KERNEL_GID": "1500"}), GatewaySettings())
    assert (plan.run_as_user, plan.run_as_group) == (1500, 1500)


def test_resource_overrides_are_capped_by_the_kernelspec_and_template() -> None:
    caps = {"limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}}
    for var, value in (("KERNEL_CPUS", "3"), ("KERNEL_MEMORY_LIMIT", "8Gi"), ("KERNEL_GPUS", "2")):
        with pytest.raises(KernelRequestError) as err:
            plan_kernel(launch({var: value}, caps), GatewaySettings())
        assert err.value.status == 403 and var in err.value.message, err.value.message
    plan_kernel(launch({"KERNEL_CPUS": "1500m", "KERNEL_GPUS": "1"}, caps), GatewaySettings())
    # The template's kernel container limits are a maximum as well.
    plan = plan_kernel(launch({"KERNEL_MEMORY": "2Gi"}), GatewaySettings())
    container = {"name": "kernel", "image": "i", "resources": {"limits": {"memory": "1Gi"}}}
    template = {"spec": {"template": {"spec": {"containers": [container]}}}}
    with pytest.raises(KernelRequestError, match="KERNEL_MEMORY=2Gi is above"):
        build_kernel_manifest(plan, template, GatewayRef("gw", "n"))


def test_range_parsing() -> None:
    assert client_limits.parse_range("", (1, 2)) == (1, 2)
    assert client_limits.parse_range("10-20", (1, 2)) == (10, 20)
    with pytest.raises(ValueError):
        client_limits.parse_range("20-10", (1, 2))
