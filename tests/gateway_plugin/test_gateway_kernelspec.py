"""The original project's JupyterKernelSpec (article argv, old class name) starts a kernel.

Full path: JupyterKernelSpec → the operator's kernel.json ConfigMap → the gateway's
kernelspec sync → Enterprise Gateway → KubeflowProcessProxy → JupyterKernel → pod.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin.kube import ApiError

from .conftest import KERNEL_IMAGE, Cluster, Gateway, wait_until

pytestmark = pytest.mark.slow

ARTICLE_ARGV = [
    "kubeflow-launcher",
    "--verbose",
    "--RemoteProcessProxy.kernel-id",
    "{kernel_id}",
    "--RemoteProcessProxy.port-range",
    "{port_range}",
    "--RemoteProcessProxy.response-address",
    "{response_address}",
]


@pytest.fixture(scope="module")
def ns(gw_cluster: Cluster) -> Iterator[str]:
    namespace = gw_cluster.create_namespace("gw-spec")
    yield namespace
    with contextlib.suppress(ApiError):
        gw_cluster.api.request("DELETE", f"/api/v1/namespaces/{namespace}")


def test_original_jupyterkernelspec_runs_a_kernel(
    gateway_factory: Callable[..., Gateway], gw_cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    gw_cluster.apply_template(ns, "original-tpl", {"containers": [{"name": "kernel"}]})
    spec: dict[str, Any] = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL_SPEC.kind,
        "metadata": {"name": "python-kubernetes", "namespace": ns},
        "spec": {
            "language": "Python",
            "displayName": "Elastic Python Kernel on Kubernetes",
            "image": KERNEL_IMAGE,
            "className": "enterprise_gateway.services.processproxies.kubeflow.KubeflowProcessProxy",
            "command": ARTICLE_ARGV,
            "template": {"name": "original-tpl", "namespace": ns},
            "resources": {"requests": {"cpu": "100m"}},
        },
    }
    path = f"/apis/{crds.API_VERSION}/namespaces/{ns}/{crds.JUPYTER_KERNEL_SPEC.plural}"
    gw_cluster.api.request("POST", path, body=spec)
    manager = "elastic_jupyter.gateway_plugin.kernelspec_sync.SyncedKernelSpecManager"
    gateway = gateway_factory(
        ns,
        {},
        env={"ELASTIC_JUPYTER_KERNELSPEC_DIR": str(tmp_path / "kernelspecs")},
        args=[f"--EnterpriseGatewayApp.kernel_spec_manager_class={manager}"],
        name="spec-gw",
    )
    wait_until(
        lambda: (
            "python-kubernetes"
            in (gateway.request("GET", "/api/kernelspecs")[1] or {}).get("kernelspecs", {})
        ),
        20,
        "the gateway to serve the JupyterKernelSpec",
    )
    status, body, _ = gateway.start_kernel("python-kubernetes")
    assert status == 201, body
    kid = body["id"]
    (jk,) = [
        k
        for k in gw_cluster.kernels(ns)
        if k["metadata"]["labels"].get(crds.LABEL_KERNEL_ID) == kid
    ]
    container = jk["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == KERNEL_IMAGE
    assert container["resources"] == {"requests": {"cpu": "100m"}}
    assert jk["spec"]["template"]["metadata"]["labels"]["team"] == "tests"
    assert gateway.execute(kid, "print('from a JupyterKernelSpec')").stdout.strip() == (
        "from a JupyterKernelSpec"
    )
    assert gateway.request("DELETE", f"/api/kernels/{kid}")[0] == 204
