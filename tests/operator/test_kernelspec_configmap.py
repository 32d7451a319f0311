"""JupyterKernelSpec → kernel.json ConfigMap, and template validation: pure functions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.operator import kernel_templates
from elastic_jupyter.operator import kernelspec_configmap as render

NOW = "2026-01-01T00:00:00Z"


def kernelspec(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "language": "python",
        "displayName": "Elastic Python",
        "image": "elastic-jupyter/kernel-py:dev",
        "template": {"name": "tpl"},
    }
    base.update(spec)
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL_SPEC.kind,
        "metadata": {"name": "python-kubernetes", "namespace": "ns", "uid": "u1", "generation": 2},
        "spec": {k: v for k, v in base.items() if v is not None},
    }


def kernel_json(body: dict[str, Any]) -> dict[str, Any]:
    rendering = render.render(body)
    assert rendering.configmap is not None
    document: dict[str, Any] = json.loads(rendering.configmap["data"]["kernel.json"])
    return document


def test_configmap_identity() -> None:
    configmap = render.render(kernelspec()).configmap
    assert configmap is not None
    assert configmap["metadata"]["name"] == "python-kubernetes"
    assert configmap["metadata"]["namespace"] == "ns"
    assert configmap["metadata"]["labels"] == {
        crds.LABEL_MANAGED_BY: crds.MANAGED_BY,
        crds.LABEL_KERNELSPEC: "python-kubernetes",
    }
    owner = configmap["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("JupyterKernelSpec", "u1", True)


def test_kernel_json_defaults() -> None:
    document = kernel_json(kernelspec())
    assert document["display_name"] == "Elastic Python"
    assert document["language"] == "python"
    assert document["argv"] == [
        "kubeflow-launcher",
        "--RemoteProcessProxy.kernel-id",
        "{kernel_id}",
        "--RemoteProcessProxy.port-range",
        "{port_range}",
        "--RemoteProcessProxy.response-address",
        "{response_address}",
        "--RemoteProcessProxy.public-key",
        "{public_key}",
        "--kernel-template-name",
        "tpl",
        "--kernel-template-namespace",
        "ns",
    ]
    proxy = document["metadata"]["process_proxy"]
    assert proxy["class_name"] == "elastic_jupyter.gateway_plugin.KubeflowProcessProxy"
    assert proxy["config"] == {
        "image_name": "elastic-jupyter/kernel-py:dev",
        "kernel_template_name": "tpl",
        "kernel_template_namespace": "ns",
    }


def test_display_name_and_language_fall_back() -> None:
    document = kernel_json(kernelspec(displayName=None, language=None))
    assert document["display_name"] == "python-kubernetes"
    assert document["language"] == "python"


def test_env_is_rendered_not_ignored() -> None:
    env = [
        {"name": "A", "value": "1"},
        {"name": "EMPTY"},
        {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    assert kernel_json(kernelspec(env=env))["env"] == {"A": "1", "EMPTY": ""}


def test_resources_and_port_range_go_to_the_proxy_config() -> None:
    resources = {"limits": {"nvidia.com/gpu": 1}}
    config = kernel_json(kernelspec(resources=resources, portRange="40000..41000"))["metadata"][
        "process_proxy"
    ]["config"]
    assert config["resources"] == resources
    assert config["port_range"] == "40000..41000"


@pytest.mark.parametrize(
    ("class_name", "expected"),
    [
        (None, render.KUBEFLOW_PROXY),
        (render.ORIGINAL_KUBEFLOW_PROXY, render.KUBEFLOW_PROXY),
        (
            "enterprise_gateway.services.processproxies.k8s.KubernetesProcessProxy",
            "enterprise_gateway.services.processproxies.k8s.KubernetesProcessProxy",
        ),
    ],
)
def test_class_name(class_name: str | None, expected: str) -> None:
    document = kernel_json(kernelspec(className=class_name))
    assert document["metadata"]["process_proxy"]["class_name"] == expected


def test_custom_launcher_command_gets_the_template_flags_appended() -> None:
    command = ["kubeflow-launcher", "--verbose", "--RemoteProcessProxy.kernel-id", "{kernel_id}"]
    argv = kernel_json(kernelspec(command=command, template={"name": "t", "namespace": "o"}))[
        "argv"
    ]
    assert argv == [*command, "--kernel-template-name", "t", "--kernel-template-namespace", "o"]


def test_other_custom_commands_are_kept_as_they_are() -> None:
    command = ["python", "/launch_kubernetes.py", "{kernel_id}"]
    assert kernel_json(kernelspec(command=command))["argv"] == command


def test_template_less_kernelspec_is_rendered_and_valid() -> None:
    """The original's template was optional: no template means the default kernel pod."""
    rendering = render.render(kernelspec(template=None))
    assert rendering.configmap is not None
    assert rendering.problem is None
    document = kernel_json(kernelspec(template=None))
    assert "--kernel-template-name" not in document["argv"]
    config = document["metadata"]["process_proxy"]["config"]
    assert config == {"image_name": "elastic-jupyter/kernel-py:dev"}
    assert document["metadata"]["process_proxy"]["class_name"] == render.KUBEFLOW_PROXY
    status = render.kernelspec_status(
        rendering, None, "python-kubernetes", 2, None, NOW, "elastic-jupyter/kernel-py:dev"
    )
    assert status["valid"] is True
    assert status["configMapName"] == "python-kubernetes"
    assert status["image"] == "elastic-jupyter/kernel-py:dev"
    assert "default kernel pod" in status["conditions"][0]["message"]


@pytest.mark.parametrize(
    ("own", "template_image", "expected"),
    [
        ("spec/image:1", "template/image:1", "spec/image:1"),
        (None, "template/image:1", "template/image:1"),
        (None, "", "operator/default:1"),
        (None, None, "operator/default:1"),
    ],
)
def test_kernel_image_precedence(
    own: str | None, template_image: str | None, expected: str
) -> None:
    """kernelspec image, else the template's kernel container image, else the operator's."""
    body = kernelspec(image=own)
    assert render.kernel_image(body, template_image, "operator/default:1") == expected


def test_template_index_carries_the_kernel_container_image() -> None:
    template = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "sidecar", "image": "sidecar:1"},
                        {"name": "kernel", "image": "kernel:1"},
                    ]
                }
            }
        }
    }
    assert kernel_templates.kernel_image(template) == "kernel:1"
    del template["spec"]["template"]["spec"]["containers"][1]["image"]
    assert kernel_templates.kernel_image(template) == ""
    assert kernel_templates.kernel_image({"spec": {}}) == ""


def test_missing_template_is_fine_for_other_process_proxies() -> None:
    body = kernelspec(
        template=None,
        className="enterprise_gateway.services.processproxies.k8s.KubernetesProcessProxy",
    )
    rendering = render.render(body)
    assert rendering.configmap is not None
    status = render.kernelspec_status(rendering, None, "python-kubernetes", 2, None, NOW)
    assert status["valid"] is True


@pytest.mark.parametrize(
    ("validity", "valid", "reason"),
    [
        ((True, crds.REASON_SPEC_VALID, "ok"), True, crds.REASON_SPEC_VALID),
        (None, False, "TemplateNotFound"),
        ((False, "NoContainers", "no containers"), False, "TemplateInvalid"),
    ],
)
def test_status_follows_the_template(
    validity: tuple[bool, str, str] | None, valid: bool, reason: str
) -> None:
    rendering = render.render(kernelspec())
    status = render.kernelspec_status(rendering, validity, "python-kubernetes", 2, None, NOW)
    assert status["valid"] is valid
    assert status["configMapName"] == "python-kubernetes"
    assert status["observedGeneration"] == 2
    assert status["conditions"][0]["type"] == crds.CONDITION_VALID
    assert status["conditions"][0]["reason"] == reason


def test_status_patch() -> None:
    rendering = render.render(kernelspec())
    first = render.kernelspec_status(
        rendering, (True, crds.REASON_SPEC_VALID, ""), "cm", 2, None, NOW
    )
    same = render.kernelspec_status(
        rendering, (True, crds.REASON_SPEC_VALID, ""), "cm", 2, first, "later"
    )
    assert render.status_patch(first, same) is None
    gone = render.kernelspec_status(rendering, None, None, 3, first, "later")
    patch = render.status_patch(first, gone)
    assert patch is not None
    assert patch["configMapName"] is None
    assert patch["valid"] is False


def test_configmap_differs() -> None:
    desired = render.render(kernelspec()).configmap
    assert desired is not None
    assert not render.configmap_differs(desired, desired)
    edited = json.loads(json.dumps(desired))
    edited["data"]["kernel.json"] = "{}"
    assert render.configmap_differs(edited, desired)


def template(spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "t", "namespace": "ns"}, "spec": spec}


@pytest.mark.parametrize(
    ("spec", "valid", "reason"),
    [
        (
            {"template": {"spec": {"containers": [{"name": "kernel"}]}}},
            True,
            crds.REASON_SPEC_VALID,
        ),
        ({}, False, crds.REASON_TEMPLATE_MISSING),
        ({"template": {"metadata": {}}}, False, crds.REASON_TEMPLATE_MISSING),
        ({"template": {"spec": {"containers": []}}}, False, "NoContainers"),
        (
            {"template": {"spec": {"containers": [{"name": "Kernel_1"}]}}},
            False,
            "InvalidContainerName",
        ),
        ({"template": {"spec": {"containers": [{"image": "x"}]}}}, False, "InvalidContainerName"),
        (
            {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}},
            False,
            "DuplicateContainerName",
        ),
        (
            {
                "template": {
                    "metadata": {"component": "kernel"},
                    "spec": {"containers": [{"name": "kernel"}]},
                }
            },
            True,
            "MisplacedTemplateMetadata",
        ),
    ],
)
def test_template_validation(spec: dict[str, Any], valid: bool, reason: str) -> None:
    validity = kernel_templates.validate(template(spec))
    assert (validity.valid, validity.reason) == (valid, reason)
    assert validity.message


def test_template_status() -> None:
    validity = kernel_templates.validate(template({}))
    status = kernel_templates.template_status(validity, 4, None, NOW)
    assert status["valid"] is False
    assert status["observedGeneration"] == 4
    assert status["conditions"][0]["reason"] == crds.REASON_TEMPLATE_MISSING
