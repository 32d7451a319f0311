"""The images we ship, built here with podman (``make images``) and run: smoke tests.

* kernel-py: ``kubeflow-kernel-launcher`` (the image's CMD) starts ipykernel and reports its
  connection info to Enterprise Gateway's real ResponseManager on the host, which accepts it;
  a cell then runs in that kernel, as the image's non-root user;
* gateway: Enterprise Gateway starts with our plugin (its boot hook watches the sandbox) and
  serves the kernelspecs of a mounted directory on ``GET /api/kernelspecs``;
* operator: starts, reaches the sandbox and does its job there (a JupyterKernelSpec becomes
  a ConfigMap);
* every image runs as its non-root user.

The first run builds the images (minutes, see docs/kernel-images.md); later runs reuse them
while their inputs are unchanged.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.helpers import free_port, wait_for
from tests.images.podman import (
    BUILD_TIMEOUT,
    BUILT,
    IMAGE_USERS,
    Container,
    build_images,
    image_ref,
    podman,
    require_podman,
)
from tests.kernel_launcher.conftest import ResponseServer, connect_client, execute

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT + 300)]


@pytest.fixture(scope="session")
def built_images() -> None:
    require_podman()
    build_images(*BUILT)


@pytest.fixture(scope="module")
def response_server() -> Iterator[ResponseServer]:
    server = ResponseServer()
    yield server
    server.close()


def readable_kubeconfig(sandbox: SandboxCluster, tmp_path: Path) -> Path:
    """A copy of the sandbox's kubeconfig a non-root container user can read."""
    copy = tmp_path / "kubeconfig"
    copy.write_text(sandbox.kubeconfig.read_text())
    copy.chmod(0o644)
    return copy


@pytest.mark.parametrize("name", BUILT)
def test_image_runs_as_its_non_root_user(built_images: None, name: str) -> None:
    config = json.loads(podman("image", "inspect", image_ref(name)))[0]["Config"]
    user = str(config.get("User") or "")
    assert user.split(":")[0] == str(IMAGE_USERS[name])
    uid = podman("run", "--rm", "--pull=never", "--entrypoint=id", image_ref(name), "-u")
    assert int(uid.strip()) == IMAGE_USERS[name]


def test_kernel_image_reports_to_the_gateway_and_runs_a_cell(
    built_images: None, response_server: ResponseServer
) -> None:
    kernel_id = str(uuid.uuid4())
    response_server.register(kernel_id)
    env = {
        "KERNEL_ID": kernel_id,
        "RESPONSE_ADDRESS": response_server.response_address,
        "PUBLIC_KEY": response_server.public_key,
        "KERNEL_BIND_IP": "127.0.0.1",
    }
    with Container(image_ref("kernel-py"), env=env) as kernel:
        message = response_server.wait_info(kernel_id, timeout=60)
        assert message is not None, f"EG never accepted the payload:\n{kernel.logs()}"
        info = message["connection_info"]
        assert info["kernel_id"] == kernel_id
        client = connect_client(info)
        try:
            reply, outputs = execute(client, "import os, sys; print(os.getuid(), sys.prefix)")
        finally:
            client.stop_channels()
        assert reply["status"] == "ok"
        assert "".join(outputs).split() == ["1000", "/opt/venv"]
        assert kernel.exec_uid() == 1000


def test_gateway_image_serves_mounted_kernelspecs(
    built_images: None, sandbox: SandboxCluster, namespace: str, tmp_path: Path
) -> None:
    kernels = tmp_path / "kernels"
    spec_dir = kernels / "python-image"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "display_name": "Python (image)",
                "language": "python",
                "argv": ["kubeflow-launcher", "--kernel-id", "{kernel_id}"],
                "metadata": {
                    "process_proxy": {
                        "class_name": "elastic_jupyter.gateway_plugin.KubeflowProcessProxy",
                        "config": {"image_name": "elastic-jupyter/kernel-py:dev"},
                    }
                },
            }
        )
    )
    kernels.chmod(0o755)
    port = free_port()
    args = (
        "--ip=127.0.0.1",
        f"--port={port}",
        "--EnterpriseGatewayApp.kernel_spec_manager_class="
        "elastic_jupyter.gateway_plugin.kernelspec_sync.KubeflowKernelSpecManager",
        "--KernelSpecManager.ensure_native_kernel=False",
    )
    env = {"KUBECONFIG": "/etc/elastic-jupyter/kubeconfig", "EG_NAMESPACE": namespace}
    volumes = {
        str(readable_kubeconfig(sandbox, tmp_path)): "/etc/elastic-jupyter/kubeconfig:ro",
        str(kernels): "/usr/local/share/jupyter/kernels:ro",
    }
    with Container(image_ref("gateway"), *args, env=env, volumes=volumes) as gateway:

        def kernelspecs() -> dict[str, Any] | None:
            url = f"http://127.0.0.1:{port}/api/kernelspecs"
            with urllib.request.urlopen(url, timeout=5) as response:
                body: dict[str, Any] = json.loads(response.read())
                return body

        try:
            body = wait_for(kernelspecs, timeout=90, interval=0.5)
        except AssertionError as err:
            raise AssertionError(f"{err}\ngateway log:\n{gateway.logs()}") from err
        assert set(body["kernelspecs"]) == {"python-image"}
        served = body["kernelspecs"]["python-image"]["spec"]
        assert served["display_name"] == "Python (image)"
        proxy = served["metadata"]["process_proxy"]["class_name"]
        assert proxy == "elastic_jupyter.gateway_plugin.KubeflowProcessProxy"
        # Our plugin booted inside EG: its JupyterKernel watch runs against the sandbox.
        try:
            wait_for(lambda: "JupyterKernel watch" in gateway.logs(), timeout=30)
        except AssertionError as err:
            raise AssertionError(f"{err}\ngateway log:\n{gateway.logs()}") from err
        assert "gateway services not started" not in gateway.logs()
        assert gateway.exec_uid() == 1000


def test_operator_image_reaches_the_sandbox(
    built_images: None, sandbox: SandboxCluster, namespace: str, tmp_path: Path
) -> None:
    live, metrics = free_port(), free_port()
    args = (
        "--namespace",
        namespace,
        "--liveness",
        f"http://127.0.0.1:{live}/healthz",
        "--metrics-port",
        str(metrics),
    )
    env = {"KUBECONFIG": "/etc/elastic-jupyter/kubeconfig"}
    volumes = {str(readable_kubeconfig(sandbox, tmp_path)): "/etc/elastic-jupyter/kubeconfig:ro"}
    with Container(image_ref("operator"), *args, env=env, volumes=volumes) as operator:
        sandbox.request(
            "POST",
            f"/apis/{crds.GROUP}/{crds.VERSION}/namespaces/{namespace}/"
            f"{crds.JUPYTER_KERNEL_SPEC.plural}",
            {
                "apiVersion": crds.API_VERSION,
                "kind": crds.JUPYTER_KERNEL_SPEC.kind,
                "metadata": {"name": "py"},
                "spec": {
                    "language": "python",
                    "displayName": "Python",
                    "image": "elastic-jupyter/kernel-py:dev",
                    "template": {"name": "tpl"},
                },
            },
        )

        def configmap() -> Any:
            return sandbox.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/py")

        try:
            rendered = wait_for(configmap, timeout=90, interval=0.5)
        except AssertionError as err:
            raise AssertionError(f"{err}\noperator log:\n{operator.logs()}") from err
        document = json.loads(rendered["data"]["kernel.json"])
        assert (document["language"], document["display_name"]) == ("python", "Python")
        assert operator.running()
        assert operator.exec_uid() == IMAGE_USERS["operator"]
