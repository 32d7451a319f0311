"""JupyterGateway → manifests: the pure builders of `gateway_objects`."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.operator import gateway_objects as go
from elastic_jupyter.operator import gateway_status


def gateway(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": crds.API_VERSION,
        "kind": "JupyterGateway",
        "metadata": {"name": "gw", "namespace": "team", "uid": "uid-1", "generation": 3},
        "spec": spec,
    }


def env_of(dep: dict[str, Any]) -> dict[str, Any]:
    container = dep["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def args_of(dep: dict[str, Any]) -> list[str]:
    return list(dep["spec"]["template"]["spec"]["containers"][0]["args"])


def test_every_object_is_owned_labelled_and_named_after_the_gateway() -> None:
    objs = go.owned_objects(gateway())
    assert [o["kind"] for o in objs] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
    ]
    for obj in [*objs, go.auth_secret(gateway(), "t")]:
        meta = obj["metadata"]
        assert meta["namespace"] == "team"
        assert meta["labels"][crds.LABEL_GATEWAY] == "gw"
        assert meta["labels"][crds.LABEL_COMPONENT] == crds.COMPONENT_GATEWAY
        (owner,) = meta["ownerReferences"]
        assert owner == {
            "apiVersion": crds.API_VERSION,
            "kind": "JupyterGateway",
            "name": "gw",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    assert go.auth_secret(gateway(), "t")["metadata"]["name"] == "gw-auth"


def test_role_is_least_privilege() -> None:
    role = go.role(gateway())
    rules = role["rules"]
    granted = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    # What the plugin needs.
    for verb in ("get", "list", "watch", "create", "delete"):
        assert (crds.GROUP, "jupyterkernels", verb) in granted
    # Kernel status is the operator's: the gateway never updates a JupyterKernel or its
    # status; it merge-patches only the session annotations (session_store.py, adoption.py).
    assert (crds.GROUP, "jupyterkernels", "update") not in granted
    assert (crds.GROUP, "jupyterkernels/status", "patch") not in granted
    assert (crds.GROUP, "jupyterkernels", "patch") in granted
    assert (crds.GROUP, "jupyterkerneltemplates", "get") in granted
    assert ("", "configmaps", "watch") in granted
    # What it must not have: it reads JupyterKernel status, never pods, and posts no Events.
    assert not any(r in ("pods", "events") for _, r, _ in granted)
    assert {r for _, r, _ in granted} == {
        "jupyterkernels",
        "jupyterkerneltemplates",
        "jupytergateways",
        "configmaps",
        "secrets",
    }
    assert not any("*" in (g, r, v) for g, r, v in granted)
    # Secrets: each kernel's Secret (launch token, session key): written, read back at
    # adoption, merged into; never listed or watched, never deleted (the JupyterKernel owns
    # it). And its clients Secret, read by name only.
    assert {v for _, r, v in granted if r == "secrets"} == {"create", "get", "patch"}
    named = [r for r in rules if r["resources"] == ["secrets"] and r.get("resourceNames")]
    assert named == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get"],
            "resourceNames": ["gw-clients"],
        }
    ]
    assert (crds.GROUP, "jupyterkerneltemplates", "create") not in granted
    gateway_rule = next(r for r in rules if r["resources"] == ["jupytergateways"])
    assert gateway_rule["resourceNames"] == ["gw"]
    assert set(gateway_rule["verbs"]) <= {"get", "list", "watch"}
    binding = go.role_binding(gateway())
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "gw",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gw", "namespace": "team"}]


def test_deployment_defaults() -> None:
    dep = go.deployment(gateway())
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == go.DEFAULT_IMAGE
    assert container["command"] == ["jupyter-enterprisegateway"]
    assert pod["serviceAccountName"] == "gw"
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = env_of(dep)
    assert env["EG_NAME"] == "gw"
    assert env["EG_NAMESPACE"] == "team"
    assert env["EG_SHARED_NAMESPACE"] == "true"
    assert env["EG_RESPONSE_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["EG_RESPONSE_PORT"] == "8877"
    assert env["EG_CULL_IDLE_TIMEOUT"] == "3600"
    assert env["EG_KERNELSPEC_CACHE_ENABLED"] == "false"
    assert env["EG_AUTH_TOKEN"] == {"secretKeyRef": {"name": "gw-auth", "key": "token"}}
    assert "EG_DEFAULT_KERNEL_NAME" not in env  # the sync picks python_kubernetes or the first
    assert "EG_KERNEL_CLUSTER_ROLE" not in env  # never cluster-admin by default
    args = args_of(dep)
    assert "--RemoteMappingKernelManager.cull_idle_timeout=3600" in args
    assert "--RemoteMappingKernelManager.cull_interval=60" in args
    assert "--RemoteMappingKernelManager.cull_connected=False" in args
    assert "--log-level=INFO" in args
    assert f"--EnterpriseGatewayApp.kernel_spec_manager_class={go.KERNELSPEC_MANAGER_CLASS}" in args
    # Kernel sessions live on the JupyterKernels (adoption after restarts, detach on SIGTERM).
    assert f"--EnterpriseGatewayApp.kernel_session_manager_class={go.SESSION_MANAGER_CLASS}" in args
    # The emptyDir the kernelspec sync writes into.
    assert {"name": "kernelspecs", "mountPath": go.KERNELSPEC_DIR} in container["volumeMounts"]


def test_every_spec_field_has_an_effect() -> None:
    base = go.deployment(gateway())
    changes: dict[str, Any] = {
        "defaultKernel": "python-kubernetes",
        "cullIdleTimeout": 10,
        "cullInterval": 5,
        "cullConnected": True,
        "kernelLaunchTimeout": 120,
        "logLevel": "DEBUG",
        "image": "example.com/eg:1",
        "resources": {"limits": {"cpu": "1"}},
        "clusterRole": "kernel-controller",
        "portRange": "40000..41000",
        "kernelNamespace": "kernels",
        "allowKernelNamespace": True,
        "kernelNamespaces": ["team-a"],
        "imagePullPolicy": "Always",
        "allowedClientEnv": ["MY_VAR"],
        "env": [{"name": "EG_MAX_KERNELS_PER_USER", "value": "3"}],
        "auth": {"mode": "disable"},
    }
    for field, value in changes.items():
        changed = go.deployment(gateway(**{field: value}))
        assert changed["spec"] != base["spec"], field
        assert (
            changed["metadata"]["annotations"][crds.ANNOTATION_SPEC_HASH]
            != base["metadata"]["annotations"][crds.ANNOTATION_SPEC_HASH]
        ), field
    env = env_of(go.deployment(gateway(**changes)))
    assert env["EG_DEFAULT_KERNEL_NAME"] == "python-kubernetes"
    assert env["EG_PORT_RANGE"] == "40000..41000"
    assert env["EG_KERNEL_LAUNCH_TIMEOUT"] == "120"
    assert env["EG_CLIENT_ENVS"] == "MY_VAR"
    assert env["EG_MAX_KERNELS_PER_USER"] == "3"
    assert env["EJ_KERNEL_NAMESPACE"] == "kernels"
    assert env["EJ_ALLOW_KERNEL_NAMESPACE"] == "true"
    assert env["EJ_KERNEL_NAMESPACES"] == "team-a"
    assert "EG_AUTH_TOKEN" not in env


def test_kernel_namespaces_are_comma_joined_and_absent_when_unset() -> None:
    env = env_of(
        go.deployment(gateway(allowKernelNamespace=True, kernelNamespaces=["a", "b", "a"]))
    )
    assert env["EJ_KERNEL_NAMESPACES"] == "a,b"
    # Unset adds no env entry: existing gateways are not rolled out by an operator upgrade.
    assert "EJ_KERNEL_NAMESPACES" not in env_of(go.deployment(gateway()))
    assert "EJ_KERNEL_NAMESPACES" not in env_of(go.deployment(gateway(kernelNamespaces=[])))


def test_kernels_list_is_served_live_and_does_not_restart_the_pod() -> None:
    before = go.deployment(gateway(kernels=["a"]))
    after = go.deployment(gateway(kernels=["a", "b"]))
    assert before["spec"] == after["spec"]


def test_rendering_is_deterministic() -> None:
    body = gateway(cullIdleTimeout=10, kernels=["x"])
    assert go.deployment(body) == go.deployment(copy.deepcopy(body))


def test_negative_cull_timeout_disables_culling() -> None:
    assert "--RemoteMappingKernelManager.cull_idle_timeout=0" in args_of(
        go.deployment(gateway(cullIdleTimeout=-1))
    )


def test_service_exposes_http_and_response_ports() -> None:
    svc = go.service(gateway())
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"http": 8888, "response": 8877}
    assert svc["spec"]["selector"] == go.labels("gw")
    assert svc["spec"]["selector"] == go.deployment(gateway())["spec"]["selector"]["matchLabels"]


def test_custom_secret_name() -> None:
    body = gateway(auth={"secretName": "shared-token"})
    assert go.auth_secret(body, "t")["metadata"]["name"] == "shared-token"
    assert env_of(go.deployment(body))["EG_AUTH_TOKEN"]["secretKeyRef"]["name"] == "shared-token"


def grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_kernel_namespace_rbac_only_for_another_namespace() -> None:
    assert go.kernel_namespace_rbac(gateway()) == []
    assert go.kernel_namespace_rbac(gateway(kernelNamespace="team")) == []
    role, binding = go.kernel_namespace_rbac(gateway(kernelNamespace="kernels"))
    assert role["kind"] == "Role"
    assert role["metadata"]["name"] == "team.gw"
    assert role["metadata"]["namespace"] == "kernels"
    assert "ownerReferences" not in role["metadata"]
    assert binding["kind"] == "RoleBinding"
    assert binding["metadata"] == role["metadata"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "team.gw",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gw", "namespace": "team"}]
    # Exactly what the plugin does there (gateway_plugin/kernel_watch.py, session_store.py,
    # kernel_secret.py), nothing more: no update, no Secret list/watch/delete.
    kernel_verbs = ("get", "list", "watch", "create", "patch", "delete")
    assert grants(role) == {
        *((crds.GROUP, "jupyterkernels", v) for v in kernel_verbs),
        (crds.GROUP, "jupyterkerneltemplates", "get"),
        *(("", "secrets", v) for v in ("create", "get", "patch")),
    }


def test_each_listed_kernel_namespace_gets_a_role_and_binding() -> None:
    body = gateway(
        allowKernelNamespace=True,
        kernelNamespace="kernels",
        kernelNamespaces=["a", "team", "kernels", "b", "a"],
    )
    assert go.rbac_namespaces(body) == ["kernels", "a", "b"]  # never the gateway's own
    objs = go.kernel_namespace_rbac(body)
    assert [(o["kind"], o["metadata"]["namespace"]) for o in objs] == [
        ("Role", "kernels"),
        ("RoleBinding", "kernels"),
        ("Role", "a"),
        ("RoleBinding", "a"),
        ("Role", "b"),
        ("RoleBinding", "b"),
    ]
    assert {o["metadata"]["name"] for o in objs} == {"team.gw"}
    assert go.external_objects(body) == objs
    # Part of what the operator applies, and nothing cluster-scoped among it.
    owned = go.owned_objects(body)
    assert all(o in owned for o in objs)
    assert not any(o["kind"].startswith("Cluster") for o in owned)
    assert all(o["metadata"].get("namespace") for o in owned)


def test_listed_namespaces_grant_nothing_unless_clients_may_pick() -> None:
    # Without allowKernelNamespace the plugin refuses every other namespace: no Role there.
    assert go.rbac_namespaces(gateway(kernelNamespaces=["a"])) == []
    # Clients may pick any namespace: the operator grants none (an administrator binds).
    assert go.rbac_namespaces(gateway(allowKernelNamespace=True)) == []


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"logLevel": "LOUD"}, "spec.logLevel"),
        ({"portRange": "10..20"}, "spec.portRange"),
        ({"portRange": "abc"}, "spec.portRange"),
        ({"kernels": ["a"], "defaultKernel": "b"}, "spec.defaultKernel"),
    ],
)
def test_validate_says_what_to_fix(spec: dict[str, Any], fragment: str) -> None:
    (problem,) = go.validate(spec)
    assert fragment in problem


def test_validate_accepts_a_good_spec() -> None:
    assert go.validate({"logLevel": "DEBUG", "portRange": "40000..41000"}) == []


def _dep(ready: int, updated: int = 1, replicas: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "status": {
            "observedGeneration": 2,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "availableReplicas": ready,
        },
    }


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_status_running_with_url_and_kernelspecs() -> None:
    st = gateway_status.status(gateway(), _dep(1), ["python-kubernetes", "r"], 2, [], "T")
    assert st["phase"] == "Running"
    assert st["readyReplicas"] == 1
    assert st["url"] == "http://gw.team.svc:8888"
    assert st["kernelSpecs"] == ["python-kubernetes", "r"]
    assert st["kernels"] == 2
    assert st["authSecretName"] == "gw-auth"
    conds = conditions(st)
    assert conds["Ready"]["status"] == "True"
    assert conds["KernelSpecsResolved"]["status"] == "True"
    assert conds["Progressing"]["status"] == "False"


def test_status_names_missing_kernelspecs() -> None:
    st = gateway_status.status(
        gateway(kernels=["python-kubernetes", "nope"]), _dep(1), ["python-kubernetes"], 0, [], "T"
    )
    cond = conditions(st)["KernelSpecsResolved"]
    assert cond["status"] == "False"
    assert cond["reason"] == crds.REASON_KERNELSPEC_NOT_FOUND
    assert "nope" in cond["message"] and "kubectl get jks" in cond["message"]
    assert st["kernelSpecs"] == ["python-kubernetes"]


def test_status_reports_the_builtin_kernelspec_of_a_bare_gateway() -> None:
    """The article's JupyterGateway (only cullIdleTimeout) in a namespace without kernelspecs
    serves the built-in Python kernelspec; a named but missing kernelspec gets no built-in."""
    st = gateway_status.status(gateway(), _dep(1), [], 0, [], "T")
    assert st["kernelSpecs"] == [crds.BUILTIN_KERNELSPEC]
    cond = conditions(st)["KernelSpecsResolved"]
    assert (cond["status"], cond["reason"]) == ("True", "BuiltInKernelSpec")
    assert crds.BUILTIN_KERNELSPEC in cond["message"]
    st = gateway_status.status(gateway(kernels=["nope"]), _dep(1), [], 0, [], "T")
    assert st["kernelSpecs"] == []
    assert conditions(st)["KernelSpecsResolved"]["status"] == "False"


def test_status_pending_rollout_and_invalid() -> None:
    st = gateway_status.status(gateway(), _dep(1, updated=1, replicas=2), [], 0, [], "T")
    assert st["phase"] == "Pending"
    assert conditions(st)["Progressing"]["status"] == "True"
    st = gateway_status.status(gateway(), None, [], 0, ["spec.logLevel bad"], "T")
    assert st["phase"] == "Failed"
    assert conditions(st)["Valid"]["status"] == "False"


def test_condition_keeps_transition_time() -> None:
    first = gateway_status.status(gateway(), _dep(1), ["a"], 0, [], "T1")
    body = gateway()
    body["status"] = first
    second = gateway_status.status(body, _dep(1), ["a"], 0, [], "T2")
    assert conditions(second)["Ready"]["lastTransitionTime"] == "T1"
    third = gateway_status.status(body, _dep(0), ["a"], 0, [], "T3")
    assert conditions(third)["Ready"]["lastTransitionTime"] == "T3"


def test_nothing_cluster_wide_and_the_old_grant_is_only_deleted() -> None:
    for body in (gateway(allowKernelNamespace=True), gateway(kernelNamespace="k")):
        kinds = [o["kind"] for o in go.owned_objects(body)]
        assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    role, binding = go.legacy_cluster_rbac(gateway(allowKernelNamespace=True))
    assert (role["kind"], binding["kind"]) == ("ClusterRole", "ClusterRoleBinding")
    assert role["metadata"] == binding["metadata"] == {"name": "elastic-jupyter-gateway:team:gw"}
    assert [o["kind"] for o in go.external_objects(gateway(kernelNamespace="k"))] == [
        "Role",
        "RoleBinding",
    ]


def test_stale_external_objects_follow_the_spec() -> None:
    both = gateway(allowKernelNamespace=True, kernelNamespace="k", kernelNamespaces=["a"])
    only_k = gateway(kernelNamespace="k")  # allowKernelNamespace off: "a" is no longer used
    stale = go.stale_external_objects(both, only_k)
    assert [(o["kind"], o["metadata"]["namespace"]) for o in stale] == [
        ("Role", "a"),
        ("RoleBinding", "a"),
    ]
    assert go.stale_external_objects(only_k, both) == []
    assert len(go.stale_external_objects(both, gateway())) == 4
