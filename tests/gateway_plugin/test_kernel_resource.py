"""The JupyterKernel builder: pure functions, no cluster and no gateway."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin.kernel_manifest import build_kernel_manifest
from elastic_jupyter.gateway_plugin.kernel_resource import (
    GPU_RESOURCE,
    GatewayRef,
    KernelRequestError,
    LaunchInput,
    kernel_resource_name,
    label_value,
    plan_kernel,
    resources_from_env,
)
from elastic_jupyter.gateway_plugin.settings import GatewaySettings, SettingsError
from elastic_jupyter.kernel_launcher import env as launcher_env

KID = "3f0c9a52-8a1e-4c4e-9f57-0f6f0c1b2d3e"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
SETTINGS = GatewaySettings(gateway_name="gw", gateway_namespace="team")

TEMPLATE: dict[str, Any] = {
    "apiVersion": crds.API_VERSION,
    "kind": "JupyterKernelTemplate",
    "metadata": {"name": "tpl", "namespace": "team"},
    "spec": {
        "template": {
            "metadata": {"labels": {"team": "a"}, "annotations": {"note": "kept"}},
            "spec": {
                "containers": [
                    {
                        "name": "kernel",
                        "env": [{"name": "FROM_TEMPLATE", "value": "1"}, {"name": "KERNEL_ID"}],
                        "resources": {"limits": {"memory": "8Gi"}},
                    },
                    {"name": "sidecar", "image": "busybox"},
                ],
                "nodeSelector": {"pool": "kernels"},
            },
        }
    },
}


def launch(**changes: Any) -> LaunchInput:
    base = LaunchInput(
        kernel_id=KID,
        kernelspec_name="python-kubernetes",
        response_address="10.0.0.1:8877",
        public_key="MIGfMA0",
        port_range="0..0",
        env={"KERNEL_USERNAME": "jovyan", "KERNEL_LANGUAGE": "python", "KERNEL_ID": KID},
        image_name="elastic-jupyter/kernel-py:dev",
        template=("team", "tpl"),
        name_suffix="abcde",
    )
    return replace(base, **changes)


def env_of(manifest: dict[str, Any]) -> dict[str, str]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_manifest_carries_labels_image_env_and_template_metadata() -> None:
    plan = plan_kernel(launch(), SETTINGS)
    gateway = GatewayRef("gw", "team", uid="u-1")
    manifest = build_kernel_manifest(plan, TEMPLATE, gateway)

    assert manifest["apiVersion"] == crds.API_VERSION
    assert manifest["kind"] == crds.JUPYTER_KERNEL.kind
    meta = manifest["metadata"]
    assert meta["namespace"] == "team"
    assert DNS_LABEL.match(meta["name"]) and KID in meta["name"]
    assert meta["labels"] == {
        crds.LABEL_KERNEL_ID: KID,
        crds.LABEL_COMPONENT: crds.COMPONENT_KERNEL,
        crds.LABEL_MANAGED_BY: crds.MANAGED_BY,
        crds.LABEL_GATEWAY: "gw",
        crds.LABEL_KERNELSPEC: "python-kubernetes",
        crds.LABEL_KERNEL_USERNAME: "jovyan",
        crds.LABEL_GATEWAY_UID: "u-1",  # ownership by uid, also in other namespaces
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": crds.API_VERSION,
            "kind": "JupyterGateway",
            "name": "gw",
            "uid": "u-1",
            "controller": True,
        }
    ]
    pod = manifest["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"note": "kept"}
    assert pod["metadata"]["labels"]["team"] == "a"
    assert pod["metadata"]["labels"][crds.LABEL_KERNEL_ID] == KID
    assert pod["spec"]["nodeSelector"] == {"pool": "kernels"}
    kernel, sidecar = pod["spec"]["containers"]
    assert kernel["image"] == "elastic-jupyter/kernel-py:dev"
    assert sidecar == {"name": "sidecar", "image": "busybox"}
    env = env_of(manifest)
    assert env["FROM_TEMPLATE"] == "1"
    assert env[launcher_env.KERNEL_ID] == KID
    assert env[launcher_env.RESPONSE_ADDRESS] == "10.0.0.1:8877"
    assert env[launcher_env.PUBLIC_KEY] == "MIGfMA0"
    assert env[launcher_env.PORT_RANGE] == "0..0"
    assert env[launcher_env.KERNEL_USERNAME] == "jovyan"
    assert env[launcher_env.KERNEL_LANGUAGE] == "python"
    assert env[launcher_env.KERNEL_NAME] == "python-kubernetes"
    assert [e["name"] for e in kernel["env"]].count("KERNEL_ID") == 1
    assert manifest["spec"]["kernelId"] == KID
    assert manifest["spec"]["gateway"] == {"name": "gw", "namespace": "team"}
    # the template object itself is never modified
    assert "image" not in TEMPLATE["spec"]["template"]["spec"]["containers"][0]


def test_no_owner_reference_across_namespaces_or_without_uid() -> None:
    plan = plan_kernel(launch(), SETTINGS)
    other = build_kernel_manifest(plan, TEMPLATE, GatewayRef("gw", "elsewhere", uid="u"))
    no_uid = build_kernel_manifest(plan, TEMPLATE, GatewayRef("gw", "team"))
    assert "ownerReferences" not in other["metadata"]
    assert "ownerReferences" not in no_uid["metadata"]


def test_without_template_a_default_kernel_container_is_used() -> None:
    plan = plan_kernel(launch(template=None), SETTINGS)
    manifest = build_kernel_manifest(plan, None, GatewayRef("gw", "team"))
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "kernel"
    assert container["image"] == "elastic-jupyter/kernel-py:dev"


def test_image_precedence_kernelspec_then_template_then_operator() -> None:
    """No image anywhere is not an error: the kernel container is left without one and the
    operator puts its default kernel image on the pod (the article's image-less example)."""
    plan = plan_kernel(launch(image_name=None, template=None), SETTINGS)
    manifest = build_kernel_manifest(plan, None, GatewayRef("gw", "team"))
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "kernel" and "image" not in container
    with_image = copy.deepcopy(TEMPLATE)
    with_image["spec"]["template"]["spec"]["containers"][0]["image"] = "template/kernel:1"
    manifest = build_kernel_manifest(plan, with_image, GatewayRef("gw", "team"))
    assert manifest["spec"]["template"]["spec"]["containers"][0]["image"] == "template/kernel:1"
    plan = plan_kernel(launch(image_name="spec/kernel:1"), SETTINGS)
    manifest = build_kernel_manifest(plan, with_image, GatewayRef("gw", "team"))
    assert manifest["spec"]["template"]["spec"]["containers"][0]["image"] == "spec/kernel:1"


def test_broken_template_is_a_clear_500() -> None:
    plan = plan_kernel(launch(image_name=None, template=None), SETTINGS)
    with pytest.raises(KernelRequestError) as err:
        build_kernel_manifest(plan, {"spec": {}}, GatewayRef("gw", "team"))
    assert "spec.template" in err.value.message


@pytest.mark.parametrize(
    "username",
    ["jovyan", "Jane Doe@corp.example", "ü" * 80, "-_-", "a" * 300, "UPPER.case_name"],
)
def test_names_and_labels_are_valid_for_any_user(username: str) -> None:
    for kid in (KID, "not-a-uuid", "X" * 100):
        name = kernel_resource_name(kid, username, "x1y2z")
        assert DNS_LABEL.match(name) and len(name) <= 63, name
    value = label_value(username)
    assert LABEL_VALUE.match(value) and len(value) <= 63, value


def test_restarts_get_distinct_names_for_the_same_kernel() -> None:
    names = {plan_kernel(launch(name_suffix=None), SETTINGS).name for _ in range(20)}
    assert len(names) == 20
    assert all(KID in n for n in names)


def test_client_keys_and_kernelspec_env_reach_the_container() -> None:
    env = {
        "KERNEL_USERNAME": "jovyan",
        "KERNEL_WORKING_DIR": "/home/jovyan/work",
        "KERNEL_EXTRA": "x",
        "SPEC_VAR": "from-spec",
        "EG_SECRET": "never",
        "PATH": "/usr/bin",
    }
    plan = plan_kernel(launch(env=env, kernelspec_env_names=("SPEC_VAR",)), SETTINGS)
    got = env_of(build_kernel_manifest(plan, TEMPLATE, GatewayRef("gw", "team")))
    assert got["KERNEL_WORKING_DIR"] == "/home/jovyan/work"
    assert got["KERNEL_EXTRA"] == "x"
    assert got["SPEC_VAR"] == "from-spec"
    assert "EG_SECRET" not in got and "PATH" not in got


@pytest.mark.parametrize(
    ("client_env", "status", "words"),
    [
        ({"RESPONSE_ADDRESS": "1.2.3.4:1"}, 400, "RESPONSE_ADDRESS is set by the gateway"),
        ({"PUBLIC_KEY": "abc"}, 400, "PUBLIC_KEY"),
        ({"KERNEL_ID": "11111111-1111-4111-8111-111111111111"}, 400, "KERNEL_ID"),
        ({"KERNEL_POD_NAME": "mine"}, 400, "KERNEL_POD_NAME"),
        ({"KERNEL_NAMESPACE": "prod"}, 403, "EJ_ALLOW_KERNEL_NAMESPACE"),
        ({"KERNEL_IMAGE": "evil/image"}, 403, "EJ_ALLOWED_KERNEL_IMAGES"),
        ({"KERNEL_BAD": "a\x00b"}, 400, "NUL"),
        ({"bad name": "v"}, 400, "invalid"),
    ],
)
def test_client_cannot_override_what_the_gateway_owns(
    client_env: dict[str, str], status: int, words: str
) -> None:
    env = {"KERNEL_USERNAME": "jovyan", **client_env}
    with pytest.raises(KernelRequestError) as err:
        plan_kernel(launch(env=env, client_env=client_env), SETTINGS)
    assert err.value.status == status
    assert words in err.value.message


def test_allowed_client_choices() -> None:
    same_id = {"KERNEL_ID": KID, "KERNEL_NAMESPACE": "team"}
    plan = plan_kernel(launch(client_env=same_id), SETTINGS)
    assert plan.namespace == "team"

    allowing = replace(SETTINGS, allow_kernel_namespace=True, allowed_images=("registry/*",))
    env = {"KERNEL_USERNAME": "jovyan", "KERNEL_NAMESPACE": "prod", "KERNEL_IMAGE": "registry/x"}
    plan = plan_kernel(launch(env=env, client_env=env), allowing)
    assert plan.namespace == "prod" and plan.image == "registry/x"


def test_kernelspec_namespace_is_ignored_unless_allowed() -> None:
    env = {"KERNEL_USERNAME": "jovyan", "KERNEL_NAMESPACE": "other"}
    assert plan_kernel(launch(env=env), SETTINGS).namespace == "team"


def test_missing_username_and_unusable_ids_are_refused() -> None:
    with pytest.raises(KernelRequestError) as err:
        plan_kernel(launch(env={}), SETTINGS)
    assert err.value.status == 400 and "KERNEL_USERNAME" in err.value.message
    with pytest.raises(KernelRequestError, match="longer than 253"):
        plan_kernel(launch(env={"KERNEL_USERNAME": "u" * 300}), SETTINGS)
    with pytest.raises(KernelRequestError, match="use a UUID"):
        plan_kernel(launch(kernel_id="a/b"), SETTINGS)


def test_resources_from_kernel_env() -> None:
    res = resources_from_env(
        {
            "KERNEL_CPUS": "500m",
            "KERNEL_MEMORY": "1Gi",
            "KERNEL_CPUS_LIMIT": "2",
            "KERNEL_MEMORY_LIMIT": "4Gi",
            "KERNEL_GPUS": "1",
        }
    )
    assert res == {
        "requests": {"cpu": "500m", "memory": "1Gi", GPU_RESOURCE: "1"},
        "limits": {"cpu": "2", "memory": "4Gi", GPU_RESOURCE: "1"},
    }
    assert resources_from_env({"KERNEL_GPUS_LIMIT": "2"})["limits"] == {GPU_RESOURCE: "2"}
    assert resources_from_env({"KERNEL_GPUS": "0"}) == {}
    plan = plan_kernel(launch(env={"KERNEL_USERNAME": "u", "KERNEL_CPUS": "1"}), SETTINGS)
    kernel = build_kernel_manifest(plan, TEMPLATE, GatewayRef("gw", "team"))["spec"]["template"]
    assert kernel["spec"]["containers"][0]["resources"] == {
        "limits": {"memory": "8Gi"},
        "requests": {"cpu": "1"},
    }


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"KERNEL_CPUS": "lots"}, "KERNEL_CPUS='lots' is not a Kubernetes quantity"),
        ({"KERNEL_MEMORY": "4Gi", "KERNEL_MEMORY_LIMIT": "1Gi"}, "below"),
        ({"KERNEL_GPUS": "1.5"}, "whole number"),
        ({"KERNEL_GPUS": "1", "KERNEL_GPUS_LIMIT": "2"}, "overcommitted"),
    ],
)
def test_bad_resources_name_the_field(env: dict[str, str], words: str) -> None:
    with pytest.raises(KernelRequestError) as err:
        resources_from_env(env)
    assert err.value.status == 400 and words in err.value.message


def test_kernel_argv_and_spark_mode_reach_the_launcher() -> None:
    argv = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    plan = plan_kernel(launch(kernel_argv=argv, spark_context_init_mode="none"), SETTINGS)
    env = env_of(build_kernel_manifest(plan, TEMPLATE, GatewayRef("gw", "team")))
    assert json.loads(env[launcher_env.KERNEL_ARGV]) == argv
    assert env["KERNEL_SPARK_CONTEXT_INIT_MODE"] == "none"


def test_settings_from_env() -> None:
    settings = GatewaySettings.from_env(
        {
            "EG_NAME": "gw",
            "EG_NAMESPACE": "team",
            "EJ_ALLOW_KERNEL_NAMESPACE": "true",
            "EJ_ALLOWED_KERNEL_IMAGES": "a/*, b/c",
            "EJ_UNSCHEDULABLE_GRACE_SECONDS": "2.5",
            "EJ_DEFAULT_KERNEL_TEMPLATE": "tpl",
        }
    )
    assert settings.allowed_images == ("a/*", "b/c")
    assert settings.unschedulable_grace == 2.5
    assert settings.default_template == ("team", "tpl")
    # namespace mode never watches cluster-wide: the gateway's namespace to start with
    assert settings.boot_watch_namespaces == ("team",)
    assert GatewaySettings.from_env({}).boot_watch_namespaces == ("default",)
    separate = GatewaySettings.from_env({"EG_NAMESPACE": "gw", "EJ_KERNEL_NAMESPACE": "kernels"})
    assert separate.boot_watch_namespaces == ("kernels",)
    listed = GatewaySettings.from_env(
        {
            "EG_NAMESPACE": "gw",
            "EJ_KERNEL_NAMESPACE": "kernels",
            "EJ_ALLOW_KERNEL_NAMESPACE": "true",
            "EJ_KERNEL_NAMESPACES": "a, b,a",
        }
    )
    assert listed.kernel_namespaces == ("a", "b")
    assert listed.boot_watch_namespaces == ("kernels", "gw", "a", "b")
    env = {"KERNEL_USERNAME": "u", "KERNEL_NAMESPACE": "kernels"}
    plan = plan_kernel(launch(env={"KERNEL_USERNAME": "u"}), separate)
    assert plan.namespace == "kernels"
    assert plan_kernel(launch(env=env, client_env=env), separate).namespace == "kernels"
    owner = build_kernel_manifest(plan, None, GatewayRef("gw", "gw", uid="u"))
    assert "ownerReferences" not in owner["metadata"]
    for bad in (
        {"EG_NAME": "Bad_Name"},
        {"EJ_ALLOW_KERNEL_NAMESPACE": "maybe"},
        {"EJ_KERNEL_NAMESPACES": "ok,Not_OK"},
        {"EG_PROHIBITED_UIDS": "root"},
        {"EJ_ALLOW_KERNEL_UID_GID": "sometimes"},
    ):
        with pytest.raises(SettingsError):
            GatewaySettings.from_env(bad)
    with pytest.raises(SettingsError, match="EJ_ORPHAN_GRACE_SECONDS"):
        GatewaySettings.from_env({"EJ_ORPHAN_GRACE_SECONDS": "soon"})


def test_kernelspec_resources_are_the_base_the_client_overrides() -> None:
    spec_resources = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": 4}}
    env = {"KERNEL_USERNAME": "u", "KERNEL_MEMORY": "3Gi"}
    plan = plan_kernel(launch(env=env, resources=spec_resources), SETTINGS)
    assert plan.resources == {
        "requests": {"cpu": "1", "memory": "3Gi"},
        "limits": {"memory": "4"},
    }
    with pytest.raises(KernelRequestError) as err:
        plan_kernel(launch(resources={"requests": ["cpu"]}), SETTINGS)
    assert err.value.status == 500 and "spec.resources" in err.value.message


def test_client_namespace_must_be_listed_when_a_list_is_set() -> None:
    settings = replace(SETTINGS, allow_kernel_namespace=True, kernel_namespaces=("lab",))
    env = {"KERNEL_USERNAME": "u", "KERNEL_NAMESPACE": "lab"}
    assert plan_kernel(launch(env=env, client_env=env), settings).namespace == "lab"
    other = {"KERNEL_USERNAME": "u", "KERNEL_NAMESPACE": "elsewhere"}
    with pytest.raises(KernelRequestError) as err:
        plan_kernel(launch(env=other, client_env=other), settings)
    assert err.value.status == 403 and "EJ_KERNEL_NAMESPACES" in err.value.message
    # a namespace EG itself put into the env (not the client's) falls back to the default
    assert plan_kernel(launch(env=other), settings).namespace == "team"
    anywhere = replace(settings, kernel_namespaces=())
    assert plan_kernel(launch(env=other, client_env=other), anywhere).namespace == "elsewhere"


def identity_env(**values: str) -> dict[str, str]:
    return {"KERNEL_USERNAME": "jovyan", **values}


def pod_spec_of(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def test_client_uid_and_gid_become_the_pods_security_context() -> None:
    env = identity_env(KERNEL_UID="1234", KERNEL_GID="2345")
    plan = plan_kernel(launch(env=env, client_env=env), SETTINGS)
    assert (plan.run_as_user, plan.run_as_group) == (1234, 2345)
    template = copy.deepcopy(TEMPLATE)
    pod = template["spec"]["template"]["spec"]
    pod["securityContext"] = {"runAsUser": 1000, "fsGroup": 100}
    pod["containers"][0]["securityContext"] = {"runAsUser": 1000, "readOnlyRootFilesystem": True}
    spec = pod_spec_of(build_kernel_manifest(plan, template, GatewayRef("gw", "team")))
    # the pod gets both ids, other keys of the template stay
    assert spec["securityContext"] == {"runAsUser": 1234, "runAsGroup": 2345, "fsGroup": 100}
    # the kernel container's own runAsUser would win over the pod's: it is replaced too,
    # while the container gets no runAsGroup it did not have
    assert spec["containers"][0]["securityContext"] == {
        "runAsUser": 1234,
        "readOnlyRootFilesystem": True,
    }
    assert "securityContext" not in spec["containers"][1]
    # the template object itself is never modified
    assert pod["securityContext"] == {"runAsUser": 1000, "fsGroup": 100}


def test_without_client_ids_the_template_keeps_its_own() -> None:
    # EG always fills KERNEL_UID/GID (default 1000/100) into the launch env: only the client's
    # own values count
    env = identity_env(KERNEL_UID="1000", KERNEL_GID="100")
    plan = plan_kernel(launch(env=env, client_env={"KERNEL_USERNAME": "jovyan"}), SETTINGS)
    assert (plan.run_as_user, plan.run_as_group, plan.service_account) == (None, None, None)
    spec = pod_spec_of(build_kernel_manifest(plan, TEMPLATE, GatewayRef("gw", "team")))
    assert "securityContext" not in spec and "serviceAccountName" not in spec


@pytest.mark.parametrize(
    ("values", "status", "names"),
    [
        ({"KERNEL_UID": "0"}, 403, "EG_PROHIBITED_UIDS"),
        ({"KERNEL_GID": "0"}, 403, "EG_PROHIBITED_GIDS"),
        ({"KERNEL_UID": "root"}, 400, "KERNEL_UID"),
        ({"KERNEL_GID": "-5"}, 400, "KERNEL_GID"),
        ({"KERNEL_UID": str(2**32)}, 400, "KERNEL_UID"),
    ],
)
def test_bad_or_prohibited_client_ids_are_refused(
    values: dict[str, str], status: int, names: str
) -> None:
    env = identity_env(**values)
    with pytest.raises(KernelRequestError) as err:
        plan_kernel(launch(env=env, client_env=env), SETTINGS)
    assert err.value.status == status and names in err.value.message


def test_client_ids_can_be_turned_off_and_prohibited_lists_changed() -> None:
    env = identity_env(KERNEL_UID="1234")
    off = replace(SETTINGS, allow_kernel_uid_gid=False)
    with pytest.raises(KernelRequestError) as err:
        plan_kernel(launch(env=env, client_env=env), off)
    assert err.value.status == 403 and "EJ_ALLOW_KERNEL_UID_GID" in err.value.message
    settings = GatewaySettings.from_env(
        {"EG_PROHIBITED_UIDS": "0, 1234", "EG_PROHIBITED_GIDS": "", "EJ_KERNEL_GID_RANGE": "0-99"}
    )
    assert settings.prohibited_uids == {0, 1234} and settings.prohibited_gids == frozenset()
    with pytest.raises(KernelRequestError, match="EG_PROHIBITED_UIDS"):
        plan_kernel(launch(env=env, client_env=env), settings)
    root_group = identity_env(KERNEL_GID="0")
    plan = plan_kernel(launch(env=root_group, client_env=root_group), settings)
    assert plan.run_as_group == 0


def test_client_service_account_needs_the_allow_list() -> None:
    env = identity_env(KERNEL_SERVICE_ACCOUNT_NAME="spark-runner")
    with pytest.raises(KernelRequestError) as err:
        plan_kernel(launch(env=env, client_env=env), SETTINGS)
    assert err.value.status == 403
    assert "EJ_ALLOWED_KERNEL_SERVICE_ACCOUNTS" in err.value.message

    allowed = replace(SETTINGS, allowed_service_accounts=("spark-*",))
    plan = plan_kernel(launch(env=env, client_env=env), allowed)
    template = copy.deepcopy(TEMPLATE)
    template["spec"]["template"]["spec"]["serviceAccount"] = "old-alias"
    template["spec"]["template"]["spec"]["serviceAccountName"] = "from-template"
    spec = pod_spec_of(build_kernel_manifest(plan, template, GatewayRef("gw", "team")))
    assert spec["serviceAccountName"] == "spark-runner" and "serviceAccount" not in spec

    other = identity_env(KERNEL_SERVICE_ACCOUNT_NAME="admin")
    with pytest.raises(KernelRequestError, match="EJ_ALLOWED_KERNEL_SERVICE_ACCOUNTS"):
        plan_kernel(launch(env=other, client_env=other), allowed)
    bad = identity_env(KERNEL_SERVICE_ACCOUNT_NAME="Not A Name")
    with pytest.raises(KernelRequestError) as err:
        plan_kernel(
            launch(env=bad, client_env=bad), replace(SETTINGS, allowed_service_accounts=("*",))
        )
    assert err.value.status == 400
    settings = GatewaySettings.from_env({"EJ_ALLOWED_KERNEL_SERVICE_ACCOUNTS": "a, spark-*"})
    assert settings.allowed_service_accounts == ("a", "spark-*")
    # the template's own service account stays when the client names none
    plan = plan_kernel(launch(), allowed)
    spec = pod_spec_of(build_kernel_manifest(plan, template, GatewayRef("gw", "team")))
    assert spec["serviceAccountName"] == "from-template"
