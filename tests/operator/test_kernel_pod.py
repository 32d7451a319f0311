"""JupyterKernel → Pod: the pure builder (no cluster)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.kernel_launcher import env as launcher_env
from elastic_jupyter.operator import kernel_pod


def kernel(**spec_overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL.kind,
        "metadata": {
            "name": "k-0f1e2d",
            "namespace": "team-a",
            "uid": "uid-123",
            "generation": 1,
            "labels": {
                crds.LABEL_KERNEL_ID: "0f1e2d",
                crds.LABEL_GATEWAY: "gw",
                crds.LABEL_KERNELSPEC: "python-kubernetes",
                "unrelated": "not-copied",
            },
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
                "spec": {
                    "restartPolicy": "Always",
                    "containers": [
                        {
                            "name": "kernel",
                            "image": "elastic-jupyter/kernel-py:dev",
                            "env": [{"name": launcher_env.KERNEL_ID, "value": "0f1e2d"}],
                        }
                    ],
                },
            }
        },
    }
    body["spec"].update(spec_overrides)
    return body


def test_pod_is_named_after_the_kernel_and_owned_by_it() -> None:
    pod = kernel_pod.build_pod(kernel())
    assert pod["kind"] == "Pod"
    assert pod["metadata"]["name"] == "k-0f1e2d"
    assert pod["metadata"]["namespace"] == "team-a"
    assert pod["metadata"]["ownerReferences"] == [
        {
            "apiVersion": crds.API_VERSION,
            "kind": "JupyterKernel",
            "name": "k-0f1e2d",
            "uid": "uid-123",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_labels_and_annotations() -> None:
    labels = kernel_pod.build_pod(kernel())["metadata"]["labels"]
    assert labels[crds.LABEL_KERNEL_ID] == "0f1e2d"
    assert labels[crds.LABEL_COMPONENT] == crds.COMPONENT_KERNEL
    assert labels[crds.LABEL_MANAGED_BY] == crds.MANAGED_BY
    assert labels[crds.LABEL_KERNEL] == "k-0f1e2d"
    assert labels[crds.LABEL_GATEWAY] == "gw"
    assert labels[crds.LABEL_KERNELSPEC] == "python-kubernetes"
    assert labels["team"] == "a"
    assert "unrelated" not in labels
    annotations = kernel_pod.build_pod(kernel())["metadata"]["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert annotations[kernel_pod.ANNOTATION_GENERATION] == "1"
    assert annotations["note"] == "x"


def test_template_cannot_hide_the_pod_from_the_operator() -> None:
    body = kernel()
    body["spec"]["template"]["metadata"]["labels"][crds.LABEL_COMPONENT] = "other"
    labels = kernel_pod.build_pod(body)["metadata"]["labels"]
    assert labels[crds.LABEL_COMPONENT] == crds.COMPONENT_KERNEL


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("label", "from-label"),
        ("spec", "from-spec"),
        ("env", "from-env"),
    ],
)
def test_kernel_id_sources(where: str, expected: str) -> None:
    body = kernel()
    del body["metadata"]["labels"][crds.LABEL_KERNEL_ID]
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": launcher_env.KERNEL_ID, "value": "from-env"}]
    if where == "label":
        body["metadata"]["labels"][crds.LABEL_KERNEL_ID] = "from-label"
    elif where == "spec":
        body["spec"]["kernelId"] = "from-spec"
    pod = kernel_pod.build_pod(body)
    assert pod["metadata"]["labels"][crds.LABEL_KERNEL_ID] == expected


def test_launcher_is_the_default_command_and_env_is_kept() -> None:
    container = kernel_pod.build_pod(kernel())["spec"]["containers"][0]
    assert container["command"] == ["kubeflow-kernel-launcher"]
    names = [var["name"] for var in container["env"]]
    assert names[0] == launcher_env.KERNEL_ID
    by_name = {var["name"]: var for var in container["env"]}
    assert by_name["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert by_name["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert by_name["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert by_name[launcher_env.KERNEL_POD_IP]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "status.podIP"
    )


def test_template_command_and_env_win() -> None:
    body = kernel()
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["python", "-c", "pass"]
    container["env"].append({"name": "POD_NAME", "value": "mine"})
    built = kernel_pod.build_pod(body)["spec"]["containers"][0]
    assert built["command"] == ["python", "-c", "pass"]
    assert [v for v in built["env"] if v["name"] == "POD_NAME"] == [
        {"name": "POD_NAME", "value": "mine"}
    ]


def test_the_container_named_kernel_runs_the_kernel() -> None:
    body = kernel()
    body["spec"]["template"]["spec"]["containers"].insert(
        0, {"name": "sidecar", "image": "busybox", "command": ["sleep", "1"]}
    )
    containers = kernel_pod.build_pod(body)["spec"]["containers"]
    assert containers[0]["command"] == ["sleep", "1"]
    assert "env" not in containers[0]
    assert containers[1]["command"] == ["kubeflow-kernel-launcher"]


def test_restart_policy_is_always_never() -> None:
    assert kernel_pod.build_pod(kernel())["spec"]["restartPolicy"] == "Never"


def test_non_root_security_context_by_default() -> None:
    pod = kernel_pod.build_pod(kernel())
    assert pod["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 100,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["spec"]["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def test_template_security_context_wins() -> None:
    body = kernel()
    body["spec"]["template"]["spec"]["securityContext"] = {"runAsUser": 0, "fsGroup": 100}
    body["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {
        "capabilities": {"add": ["SYS_PTRACE"]}
    }
    pod = kernel_pod.build_pod(body)
    assert pod["spec"]["securityContext"]["runAsUser"] == 0
    assert pod["spec"]["securityContext"]["fsGroup"] == 100
    assert "runAsNonRoot" not in pod["spec"]["securityContext"]  # uid 0 would not start
    container_context = pod["spec"]["containers"][0]["securityContext"]
    assert container_context["capabilities"] == {"add": ["SYS_PTRACE"]}
    assert container_context["allowPrivilegeEscalation"] is False


def test_builder_does_not_modify_its_input() -> None:
    body = kernel()
    before = copy.deepcopy(body)
    kernel_pod.build_pod(body)
    assert body == before


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"template": None}, "spec.template is missing"),
        ({"template": {"spec": {"containers": []}}}, "at least one container"),
        ({"template": {"spec": {"containers": [{"image": "x"}]}}}, "needs a name"),
    ],
)
def test_invalid_kernels_are_reported(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(kernel_pod.InvalidKernelError, match=message):
        kernel_pod.build_pod(kernel(**spec))


def test_misplaced_template_metadata() -> None:
    template = {"metadata": {"component": "kernel", "labels": {"a": "b"}}, "spec": {}}
    assert kernel_pod.misplaced_template_metadata(template) == ["component"]
    assert kernel_pod.misplaced_template_metadata({"metadata": {"labels": {}}}) == []


def test_kernel_without_an_image_gets_the_operators_default_image() -> None:
    """Neither kernelspec nor template named an image: the operator's default fills it; an
    image that is there (the kernelspec's or the template's) is never replaced."""
    body = kernel()
    containers = body["spec"]["template"]["spec"]["containers"]
    containers.append({"name": "sidecar", "image": "busybox"})
    del containers[0]["image"]
    pod = kernel_pod.build_pod(body, "registry.example/kernel-py:9")
    kernel_container, sidecar = pod["spec"]["containers"]
    assert kernel_container["image"] == "registry.example/kernel-py:9"
    assert sidecar["image"] == "busybox"
    pod = kernel_pod.build_pod(kernel(), "registry.example/kernel-py:9")
    assert pod["spec"]["containers"][0]["image"] == "elastic-jupyter/kernel-py:dev"


def test_the_kernels_secret_is_mounted_only_when_the_gateway_names_it() -> None:
    plain = kernel_pod.build_pod(kernel())
    assert not plain["spec"].get("volumes")
    body = kernel()
    body["metadata"]["annotations"] = {crds.ANNOTATION_KERNEL_SECRET: "k-0f1e2d"}
    pod = kernel_pod.build_pod(body)
    assert pod["spec"]["volumes"] == [
        {"name": crds.KERNEL_SECRET_VOLUME, "secret": {"secretName": "k-0f1e2d"}}
    ]
    container = pod["spec"]["containers"][0]
    assert container["volumeMounts"] == [
        {
            "name": crds.KERNEL_SECRET_VOLUME,
            "mountPath": crds.KERNEL_SECRET_MOUNT_PATH,
            "readOnly": True,
        }
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[launcher_env.KERNEL_LAUNCH_TOKEN_FILE] == (
        f"{crds.KERNEL_SECRET_MOUNT_PATH}/{crds.KERNEL_SECRET_LAUNCH_TOKEN_KEY}"
    )
    # Only the kernel's own Secret (its own name): an annotation cannot mount another one.
    body["metadata"]["annotations"] = {crds.ANNOTATION_KERNEL_SECRET: "someone-elses"}
    assert not kernel_pod.build_pod(body)["spec"].get("volumes")
