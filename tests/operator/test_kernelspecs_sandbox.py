"""JupyterKernelSpec → ConfigMap and JupyterKernelTemplate validation, against the sandbox."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.operator import settings
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.helpers import wait_for
from tests.operator.conftest import OperatorProcess, events, get

pytestmark = pytest.mark.slow

BASE = f"/apis/{crds.GROUP}/{crds.VERSION}/namespaces/{{ns}}"
SPECS = BASE + f"/{crds.JUPYTER_KERNEL_SPEC.plural}"
TEMPLATES = BASE + f"/{crds.JUPYTER_KERNEL_TEMPLATE.plural}"


def kernelspec(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL_SPEC.kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def template(
    name: str, containers: list[dict[str, Any]], metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    pod_template: dict[str, Any] = {"spec": {"containers": containers}}
    if metadata is not None:
        pod_template["metadata"] = metadata
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL_TEMPLATE.kind,
        "metadata": {"name": name},
        "spec": {"template": pod_template},
    }


def merge_patch(sandbox: SandboxCluster, path: str, patch: dict[str, Any]) -> None:
    request = urllib.request.Request(
        sandbox.url + path,
        data=json.dumps(patch).encode(),
        method="PATCH",
        headers={"Content-Type": "application/merge-patch+json", **sandbox.auth_headers},
    )
    urllib.request.urlopen(request, timeout=10).close()


def kernel_json(sandbox: SandboxCluster, namespace: str, name: str) -> dict[str, Any] | None:
    configmap = get(sandbox, f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    if configmap is None:
        return None
    document: dict[str, Any] = json.loads(configmap["data"]["kernel.json"])
    return document


def valid_reason(sandbox: SandboxCluster, path: str) -> str | None:
    status = (get(sandbox, path) or {}).get("status") or {}
    for condition in status.get("conditions") or []:
        if condition["type"] == crds.CONDITION_VALID:
            return str(condition["reason"])
    return None


def test_kernelspec_lifecycle(
    sandbox: SandboxCluster, op_namespace: str, operator_proc: OperatorProcess
) -> None:
    ns = op_namespace
    spec_path = f"{SPECS.format(ns=ns)}/py"
    sandbox.request(
        "POST",
        SPECS.format(ns=ns),
        kernelspec(
            "py",
            language="python",
            displayName="Python",
            image="elastic-jupyter/kernel-py:dev",
            env=[{"name": "A", "value": "1"}],
            template={"name": "tpl"},
        ),
    )
    # The ConfigMap is rendered even before the template exists; the status says what is wrong.
    document = wait_for(lambda: kernel_json(sandbox, ns, "py"), timeout=10)
    assert document is not None
    assert document["env"] == {"A": "1"}
    assert document["argv"][-4:] == [
        "--kernel-template-name",
        "tpl",
        "--kernel-template-namespace",
        ns,
    ]
    wait_for(lambda: valid_reason(sandbox, spec_path) == "TemplateNotFound", timeout=10)
    assert (get(sandbox, spec_path) or {})["status"]["configMapName"] == "py"

    # The template appears: the kernelspec becomes valid.
    sandbox.request("POST", TEMPLATES.format(ns=ns), template("tpl", [{"name": "kernel"}]))
    wait_for(lambda: valid_reason(sandbox, spec_path) == crds.REASON_SPEC_VALID, timeout=10)
    assert (get(sandbox, spec_path) or {})["status"]["valid"] is True

    # An edit updates the ConfigMap.
    merge_patch(sandbox, spec_path, {"spec": {"displayName": "Python 3", "language": "python3"}})
    wait_for(
        lambda: (kernel_json(sandbox, ns, "py") or {}).get("display_name") == "Python 3",
        timeout=10,
    )

    # Deleting the template in use is reported on the kernelspec.
    sandbox.request("DELETE", f"{TEMPLATES.format(ns=ns)}/tpl")
    wait_for(lambda: valid_reason(sandbox, spec_path) == "TemplateNotFound", timeout=10)
    wait_for(
        lambda: (
            ("Warning", "TemplateNotFound") in [(t, r) for t, r, _ in events(sandbox, ns, "py")]
        ),
        timeout=10,
    )

    # Deleting the kernelspec removes its ConfigMap.
    sandbox.request("DELETE", spec_path)
    wait_for(lambda: kernel_json(sandbox, ns, "py") is None, timeout=10)


def test_kernelspec_without_template_is_valid(
    sandbox: SandboxCluster, op_namespace: str, operator_proc: OperatorProcess
) -> None:
    """The original treated the template as optional: kernel.json is rendered without a
    template reference (the gateway then builds the default kernel pod)."""
    ns = op_namespace
    body = kernelspec("bare", language="python", image="team/kernel-py:3")
    sandbox.request("POST", SPECS.format(ns=ns), body)
    path = f"{SPECS.format(ns=ns)}/bare"
    wait_for(lambda: valid_reason(sandbox, path) == crds.REASON_SPEC_VALID, timeout=10)
    status = (get(sandbox, path) or {})["status"]
    assert status["valid"] is True
    assert status["configMapName"] == "bare"
    assert status["image"] == "team/kernel-py:3"
    document = kernel_json(sandbox, ns, "bare")
    assert document is not None
    assert "--kernel-template-name" not in document["argv"]
    assert document["metadata"]["process_proxy"]["config"] == {"image_name": "team/kernel-py:3"}


def test_kernelspec_status_reports_the_image_its_kernels_run(
    sandbox: SandboxCluster, op_namespace: str, operator_proc: OperatorProcess
) -> None:
    """kernelspec image, else the template's kernel container image, else the operator's
    default; the status follows template edits."""
    ns = op_namespace
    path = f"{SPECS.format(ns=ns)}/imageless"

    def image() -> str | None:
        return ((get(sandbox, path) or {}).get("status") or {}).get("image")

    containers = [{"name": "sidecar", "image": "busybox"}, {"name": "kernel", "image": "tpl/k:1"}]
    sandbox.request("POST", TEMPLATES.format(ns=ns), template("tpl-img", containers))
    sandbox.request(
        "POST", SPECS.format(ns=ns), kernelspec("imageless", template={"name": "tpl-img"})
    )
    wait_for(lambda: image() == "tpl/k:1", timeout=10, message="the template's image")
    merge_patch(
        sandbox,
        f"{TEMPLATES.format(ns=ns)}/tpl-img",
        {"spec": {"template": {"spec": {"containers": [{"name": "kernel"}]}}}},
    )
    wait_for(
        lambda: image() == settings.DEFAULT_KERNEL_IMAGE,
        timeout=10,
        message="the operator's default image once the template names none",
    )
    merge_patch(sandbox, path, {"spec": {"image": "own/k:2"}})
    wait_for(lambda: image() == "own/k:2", timeout=10, message="the kernelspec's own image")


# Only what the CRD schema lets through can reach the operator (names and an empty container
# list are rejected by the API server); the pure tests cover the rest.
@pytest.mark.parametrize(
    ("containers", "metadata", "valid", "reason"),
    [
        ([{"name": "kernel"}], None, True, crds.REASON_SPEC_VALID),
        ([{"name": "a"}, {"name": "a"}], None, False, "DuplicateContainerName"),
        ([{"name": "kernel"}], {"component": "kernel"}, True, "MisplacedTemplateMetadata"),
    ],
    ids=["valid", "duplicate-names", "misplaced-labels"],
)
def test_template_validation_is_reported(
    sandbox: SandboxCluster,
    op_namespace: str,
    operator_proc: OperatorProcess,
    containers: list[dict[str, Any]],
    metadata: dict[str, Any] | None,
    valid: bool,
    reason: str,
) -> None:
    ns = op_namespace
    sandbox.request("POST", TEMPLATES.format(ns=ns), template("t", containers, metadata))
    path = f"{TEMPLATES.format(ns=ns)}/t"
    wait_for(lambda: valid_reason(sandbox, path) == reason, timeout=10)
    assert (get(sandbox, path) or {})["status"]["valid"] is valid
    if reason != crds.REASON_SPEC_VALID:
        wait_for(lambda: reason in [r for _, r, _m in events(sandbox, ns, "t")], timeout=10)
