"""Gateway restart with kernel session persistence: kernels survive, orphans are removed."""

from __future__ import annotations

import contextlib
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin.kube import ApiError, kernels_path

from .conftest import KERNEL_IMAGE, Cluster, Gateway, kernelspec, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ns(gw_cluster: Cluster) -> Iterator[str]:
    namespace = gw_cluster.create_namespace("gw-persist")
    yield namespace
    with contextlib.suppress(ApiError):
        gw_cluster.api.request("DELETE", f"/api/v1/namespaces/{namespace}")


def orphan_manifest(namespace: str, gateway: str) -> dict[str, object]:
    """What a gateway that died between creating a JupyterKernel and saving its session leaves."""
    kid = str(uuid.uuid4())
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL.kind,
        "metadata": {
            "name": f"orphan-{kid}",
            "namespace": namespace,
            "labels": {
                crds.LABEL_KERNEL_ID: kid,
                crds.LABEL_COMPONENT: crds.COMPONENT_KERNEL,
                crds.LABEL_MANAGED_BY: crds.MANAGED_BY,
                crds.LABEL_GATEWAY: gateway,
            },
        },
        "spec": {
            "kernelId": kid,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "kernel", "image": "busybox", "command": ["sleep", "300"]}
                    ]
                }
            },
        },
    }


def test_restarted_gateway_keeps_running_kernels_and_removes_orphans(
    gateway_factory: Callable[..., Gateway],
    gw_cluster: Cluster,
    ns: str,
    tmp_path: Path,
) -> None:
    env = {
        "EG_KERNEL_SESSION_PERSISTENCE": "True",
        "EG_AVAILABILITY_MODE": "standalone",
        "EG_PERSISTENCE_ROOT": str(tmp_path / "sessions"),
        "EJ_ORPHAN_GRACE_SECONDS": "1",
    }
    specs = {"py": kernelspec(image=KERNEL_IMAGE)}
    # the boot hook starts the sweep before any kernel is revived: revived kernels must survive
    manager = "elastic_jupyter.gateway_plugin.kernelspec_sync.KubeflowKernelSpecManager"
    args = [f"--EnterpriseGatewayApp.kernel_spec_manager_class={manager}"]
    first = gateway_factory(ns, specs, env=env, workdir=tmp_path, name="persist", args=args)
    kernels = []
    for value in ("'alpha'", "'beta'"):
        status, body, _ = first.start_kernel("py")
        assert status == 201, body
        kernels.append(body["id"])
        assert first.execute(body["id"], f"state = {value}").status == "ok"

    first.stop(signal.SIGKILL)  # a crash: no kernel is shut down
    orphan = orphan_manifest(ns, "persist")
    gw_cluster.api.request("POST", kernels_path(ns), body=orphan)

    second = gateway_factory(ns, specs, env=env, workdir=tmp_path, name="persist", args=args)
    status, listed = second.request("GET", "/api/kernels")
    assert status == 200
    assert set(kernels) <= {k["id"] for k in listed}
    for kid, value in zip(kernels, ("alpha", "beta")):
        assert second.execute(kid, "print(state)").stdout.strip() == value

    orphan_name = orphan["metadata"]["name"]  # type: ignore[index]
    wait_until(
        lambda: all(k["metadata"]["name"] != orphan_name for k in gw_cluster.kernels(ns)),
        15,
        "the orphaned JupyterKernel to be deleted",
    )
    time.sleep(1.5)  # more sweeps, each past the grace period
    assert len(gw_cluster.kernels(ns)) == len(kernels)
    for kid, value in zip(kernels, ("alpha", "beta")):
        assert second.execute(kid, "print(state)").stdout.strip() == value
    for kid in kernels:
        assert second.request("DELETE", f"/api/kernels/{kid}")[0] == 204
    wait_until(lambda: not gw_cluster.kernels(ns), 20, "every JupyterKernel to be deleted")
