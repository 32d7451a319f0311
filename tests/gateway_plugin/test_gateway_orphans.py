"""Gateway boot: orphans go without any kernel start; namespace mode and client identity.

* A gateway SIGKILLed with a running kernel, restarted without persistence and never asked to
  start a kernel, deletes the kernel's JupyterKernel (and so its pod) after the grace period:
  the boot hook (``KubeflowKernelSpecManager``) started the watch and the sweep.
* With ``EJ_ALLOW_KERNEL_NAMESPACE`` a kernel runs in another namespace and every request the
  gateway makes names a namespace (no cluster-wide list or watch).
* A client's ``KERNEL_UID``/``KERNEL_GID`` reach the JupyterKernel's pod template; uid 0 and an
  unlisted service account are refused with the setting to change.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin.kube import ApiError

from .conftest import KERNEL_IMAGE, Cluster, Gateway, kernelspec, wait_until

pytestmark = pytest.mark.slow

BOOT_MANAGER = "elastic_jupyter.gateway_plugin.kernelspec_sync.KubeflowKernelSpecManager"
GRACE = 3.0


@pytest.fixture
def ns(gw_cluster: Cluster) -> Iterator[str]:
    namespace = gw_cluster.create_namespace("gw-orphan")
    yield namespace
    with contextlib.suppress(ApiError):
        gw_cluster.api.request("DELETE", f"/api/v1/namespaces/{namespace}")


def kernel_pods(cluster: Cluster, ns: str, kernel_id: str) -> list[dict[str, Any]]:
    return [
        p
        for p in cluster.pods(ns)
        if (p["metadata"].get("labels") or {}).get(crds.LABEL_KERNEL_ID) == kernel_id
    ]


def kernel_objects(cluster: Cluster, ns: str, kernel_id: str) -> list[dict[str, Any]]:
    return [
        k
        for k in cluster.kernels(ns)
        if k["metadata"]["labels"].get(crds.LABEL_KERNEL_ID) == kernel_id
    ]


def test_orphans_of_a_killed_gateway_go_without_any_kernel_start(
    gateway_factory: Callable[..., Gateway], gw_cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    specs = {"py": kernelspec(image=KERNEL_IMAGE)}
    options: dict[str, Any] = {
        "env": {"EJ_ORPHAN_GRACE_SECONDS": str(GRACE)},
        "args": [f"--EnterpriseGatewayApp.kernel_spec_manager_class={BOOT_MANAGER}"],
        "name": "orphan-gw",
        "workdir": tmp_path,
    }
    first = gateway_factory(ns, specs, **options)
    status, body, _ = first.start_kernel("py")
    assert status == 201, body
    kid = body["id"]
    assert first.execute(kid, "print('alive')").stdout.strip() == "alive"
    assert kernel_objects(gw_cluster, ns, kid) and kernel_pods(gw_cluster, ns, kid)

    first.stop(signal.SIGKILL)  # no shutdown: the kernel keeps its pod
    second = gateway_factory(ns, specs, **options)  # no persistence: the session is lost
    up = time.monotonic()
    assert kernel_objects(gw_cluster, ns, kid), "deleted before the grace period"
    assert second.request("GET", "/api/kernels") == (200, [])

    wait_until(lambda: not kernel_objects(gw_cluster, ns, kid), 30, "the orphan to be deleted")
    assert time.monotonic() - up >= GRACE - 1.0
    wait_until(lambda: not kernel_pods(gw_cluster, ns, kid), 30, "the orphan's pod to go")
    log = second.log_text()
    assert f"JupyterKernel watch (namespaces {ns}) and orphan sweep started" in log
    assert f"kernel {kid} has no session on this gateway" in log


def gateway_requests(cluster: Cluster) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = cluster.get_json("/sandbox/requests?limit=0")["items"]
    return [r for r in rows if str(r.get("userAgent", "")).startswith("elastic-jupyter-gateway")]


def test_namespace_mode_watches_only_namespaces_in_use(
    gateway_factory: Callable[..., Gateway], gw_cluster: Cluster, ns: str
) -> None:
    lab = gw_cluster.create_namespace("gw-lab")
    try:
        gateway = gateway_factory(
            ns,
            {"py": kernelspec(image=KERNEL_IMAGE)},
            env={"EJ_ALLOW_KERNEL_NAMESPACE": "true"},
            name="ns-gw",
            kernel_namespaces=[lab],  # as an admin binds a gateway that may go anywhere
        )
        status, body, _ = gateway.start_kernel("py", {"KERNEL_NAMESPACE": lab})
        assert status == 201, body
        kid = body["id"]
        (jk,) = kernel_objects(gw_cluster, lab, kid)
        assert gateway.execute(kid, "print('in lab')").stdout.strip() == "in lab"
        assert gateway.request("DELETE", f"/api/kernels/{kid}")[0] == 204
        wait_until(lambda: not kernel_objects(gw_cluster, lab, kid), 20, "the kernel to go")

        kernel_requests = [
            r for r in gateway_requests(gw_cluster) if r.get("resource") == "jupyterkernels"
        ]
        lists = {r["namespace"] for r in kernel_requests if r["verb"] == "list"}
        assert {ns, lab} <= lists, kernel_requests
        assert all(r.get("namespace") for r in kernel_requests), "a cluster-wide request"
        assert "now also watching namespace " + lab in gateway.log_text()
        assert jk["metadata"]["namespace"] == lab
    finally:
        with contextlib.suppress(ApiError):
            gw_cluster.api.request("DELETE", f"/api/v1/namespaces/{lab}")


def test_client_identity_reaches_the_pod_template_or_is_refused(
    gateway_factory: Callable[..., Gateway], gw_cluster: Cluster, ns: str
) -> None:
    gateway = gateway_factory(ns, {"py": kernelspec(image=KERNEL_IMAGE)}, name="id-gw")
    status, body, _ = gateway.start_kernel("py", {"KERNEL_UID": "1000", "KERNEL_GID": "100"})
    assert status == 201, body
    kid = body["id"]
    (jk,) = kernel_objects(gw_cluster, ns, kid)
    context = jk["spec"]["template"]["spec"]["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (1000, 100)
    assert gateway.request("DELETE", f"/api/kernels/{kid}")[0] == 204

    for env, words in (
        ({"KERNEL_UID": "0"}, "EG_PROHIBITED_UIDS"),
        ({"KERNEL_SERVICE_ACCOUNT_NAME": "admin"}, "EJ_ALLOWED_KERNEL_SERVICE_ACCOUNTS"),
    ):
        status, body, _ = gateway.start_kernel("py", env)
        assert status == 403, body
        assert words in json.dumps(body)
    wait_until(lambda: not gw_cluster.kernels(ns), 20, "no JupyterKernel left")
