"""A JupyterNotebook in direct mode (``spec.kernels``) → manifests: pure builders, no cluster."""

from __future__ import annotations

from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.operator import direct_notebook_objects as dno
from elastic_jupyter.operator import notebook_config
from elastic_jupyter.operator import notebook_objects as no


def notebook(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": crds.API_VERSION,
        "kind": "JupyterNotebook",
        "metadata": {"name": "nb", "namespace": "team", "uid": "uid-9", "generation": 1},
        "spec": spec,
    }


def container(dep: dict[str, Any]) -> dict[str, Any]:
    return dict(dep["spec"]["template"]["spec"]["containers"][0])


def env_of(dep: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(dep)["env"]}


def rules_of(role: dict[str, Any]) -> set[tuple[str, str, tuple[str, ...]]]:
    return {
        (r["apiGroups"][0], r["resources"][0], tuple(sorted(r["verbs"]))) for r in role["rules"]
    }


def test_mode() -> None:
    assert not dno.is_direct(notebook())
    assert dno.is_direct(notebook(kernels={}))
    assert dno.is_direct(notebook(kernels={"mode": "Direct"}))
    assert not dno.is_direct(notebook(kernels={"mode": "Gateway"}, gateway={"name": "gw"}))


def test_direct_server_has_no_gateway_url_and_the_provisioner_classes() -> None:
    nb = notebook(kernels={"cullIdleTimeout": 120, "cullInterval": 5})
    dep = no.deployment(nb, None)
    args = container(dep)["args"]
    assert not any(a.startswith("--gateway-url") for a in args)
    assert (
        "--ServerApp.kernel_manager_class="
        "elastic_jupyter.provisioner.server.DirectMappingKernelManager" in args
    )
    assert (
        "--ServerApp.kernel_spec_manager_class="
        "elastic_jupyter.provisioner.kernelspecs.DirectKernelSpecManager" in args
    )
    assert "--MappingKernelManager.cull_idle_timeout=120" in args
    assert "--MappingKernelManager.cull_interval=5" in args
    # defaults, and 0 turns the culler off
    defaults = container(no.deployment(notebook(kernels={}), None))["args"]
    assert "--MappingKernelManager.cull_idle_timeout=3600" in defaults
    assert "--MappingKernelManager.cull_interval=60" in defaults
    off = container(no.deployment(notebook(kernels={"cullIdleTimeout": 0}), None))["args"]
    assert "--MappingKernelManager.cull_idle_timeout=0" in off


def test_direct_env_image_token_and_kernelspec_dir() -> None:
    nb = notebook(kernels={"namespace": "compute", "kernelSpecs": ["py", "r"]})
    dep = no.deployment(nb, None)
    env = env_of(dep)
    assert env["EJ_NOTEBOOK_NAME"] == "nb"
    assert env["EJ_NOTEBOOK_NAMESPACE"] == "team"
    assert env["EJ_NOTEBOOK_UID"] == "uid-9"
    assert env["EJ_KERNEL_NAMESPACE"] == "compute"
    assert env["EJ_RESPONSE_PORT"] == "8877"
    assert env["ELASTIC_JUPYTER_KERNELSPECS"] == "py,r"
    assert env["ELASTIC_JUPYTER_KERNELSPEC_NAMESPACE"] == "team"
    assert env["ELASTIC_JUPYTER_KERNELSPEC_DIR"] == dno.KERNELSPEC_DIR
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert "JUPYTER_GATEWAY_AUTH_TOKEN" not in env
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "nb-notebook"
    assert pod["automountServiceAccountToken"] is True
    assert {"name": dno.KERNELSPEC_VOLUME, "emptyDir": {}} in pod["volumes"]
    mounts = {m["name"]: m["mountPath"] for m in container(dep)["volumeMounts"]}
    assert mounts[dno.KERNELSPEC_VOLUME] == dno.KERNELSPEC_DIR
    assert container(dep)["image"] == dno.DEFAULT_IMAGE
    # a template's own image and env win
    own = notebook(
        kernels={},
        template={
            "spec": {
                "containers": [
                    {
                        "name": "nb",
                        "image": "mine",
                        "env": [{"name": "EJ_RESPONSE_PORT", "value": "9"}],
                    }
                ]
            }
        },
    )
    assert container(no.deployment(own, None))["image"] == "mine"
    assert env_of(no.deployment(own, None))["EJ_RESPONSE_PORT"] == "9"


def test_without_direct_mode_nothing_changes() -> None:
    pod = no.deployment(notebook(), None)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
    assert container(no.deployment(notebook(), None))["image"] == no.DEFAULT_IMAGE
    gw = no.deployment(notebook(kernels={"mode": "Gateway"}, gateway={"name": "gw"}), None)
    assert any(a.startswith("--gateway-url") for a in container(gw)["args"])
    assert not any("provisioner" in a for a in container(gw)["args"])


def test_config_map_has_no_gateway_fix_in_direct_mode() -> None:
    text = no.config_map(notebook(kernels={}))["data"][notebook_config.FILE_NAME]
    assert text == notebook_config.server_config(uses_gateway=False)
    assert "kernel_websocket_connection_class" not in text


def test_direct_with_gateway_is_invalid_naming_both_fields() -> None:
    problems = no.validate(notebook(kernels={}, gateway={"name": "gw"})["spec"])
    assert len(problems) == 1
    assert "spec.kernels" in problems[0] and "spec.gateway" in problems[0]
    assert problems[0].reason == crds.REASON_INVALID_SPEC
    assert no.validate(notebook(kernels={"mode": "Gateway"}, gateway={"name": "gw"})["spec"]) == []


def test_rbac_in_the_notebooks_namespace_is_exactly_the_contract() -> None:
    objs = dno.home_objects(notebook(kernels={}), 8888)
    kinds = [o["kind"] for o in objs]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "NetworkPolicy", "NetworkPolicy"]
    role = objs[1]
    assert rules_of(role) == {
        (crds.GROUP, "jupyterkernels", ("create", "delete", "get", "list", "patch", "watch")),
        (crds.GROUP, "jupyterkerneltemplates", ("get",)),
        ("", "secrets", ("create", "get", "patch")),
        ("", "configmaps", ("list", "watch")),
    }
    binding = objs[2]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "nb-notebook", "namespace": "team"}
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == "nb-notebook"
    for obj in objs:
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "uid-9"
    assert dno.external_objects(notebook(kernels={})) == []


def test_another_kernel_namespace_gets_kernel_rules_only_with_the_owner_mark() -> None:
    nb = notebook(kernels={"namespace": "compute"})
    home = dno.home_objects(nb, 8888)
    assert rules_of(home[1]) == {("", "configmaps", ("list", "watch"))}
    external = dno.external_objects(nb)
    assert [(o["kind"], o["metadata"]["namespace"]) for o in external] == [
        ("Role", "compute"),
        ("RoleBinding", "compute"),
        ("NetworkPolicy", "compute"),
    ]
    for obj in external:
        assert obj["metadata"]["name"].startswith("team.nb-")
        assert "ownerReferences" not in obj["metadata"]
        assert obj["metadata"]["annotations"][crds.ANNOTATION_OWNER] == "team/nb/uid-9"
    assert ("", "configmaps", ("list", "watch")) not in rules_of(external[0])
    assert external[1]["subjects"][0]["namespace"] == "team"
    # moving the kernels elsewhere leaves the old namespace's objects to delete
    moved = notebook(kernels={"namespace": "other"})
    stale = dno.stale_external_objects(nb, moved)
    assert {o["metadata"]["namespace"] for o in stale} == {"compute"}


def test_network_policies_fence_kernel_ports_and_response_port() -> None:
    nb = notebook(kernels={"namespace": "compute"}, port=8890)
    kernels = dno.kernel_policy(nb)
    assert kernels["metadata"]["namespace"] == "compute"
    assert kernels["spec"]["podSelector"]["matchLabels"] == {
        crds.LABEL_COMPONENT: crds.COMPONENT_KERNEL,
        crds.LABEL_NOTEBOOK: "nb",
    }
    (rule,) = kernels["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 40000, "endPort": 41999}]
    assert rule["from"] == [
        {
            "podSelector": {"matchLabels": no.labels("nb")},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team"}},
        }
    ]
    server = dno.notebook_policy(nb, 8890)
    assert server["metadata"]["namespace"] == "team"
    response, http = server["spec"]["ingress"]
    assert response["ports"] == [{"protocol": "TCP", "port": 8877}]
    assert response["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "compute"
    }
    assert http == {"ports": [{"protocol": "TCP", "port": 8890}]}


def test_owned_kernels_are_this_notebooks_by_uid() -> None:
    mine = {"metadata": {"name": "a", "annotations": {dno.ANNOTATION_NOTEBOOK_UID: "uid-9"}}}
    namesake = {"metadata": {"name": "b", "annotations": {dno.ANNOTATION_NOTEBOOK_UID: "other"}}}
    assert dno.owned_kernels(notebook(kernels={}), [mine, namesake]) == [mine]


def test_status_says_direct_mode() -> None:
    nb = notebook(kernels={"namespace": "compute"})
    status = no.status(nb, None, False, [], "2026-01-01T00:00:00Z")
    resolved = [c for c in status["conditions"] if c["type"] == crds.CONDITION_GATEWAY_RESOLVED]
    assert "direct mode" in resolved[0]["message"] and "compute" in resolved[0]["message"]
