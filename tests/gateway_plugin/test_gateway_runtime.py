"""Two Enterprise Gateway applications in one process share none of the plugin's state.

Each application gets its own :class:`GatewayRuntime` (settings, API client, JupyterKernel
watch, orphan sweep, kernelspec sync, live proxies, background tasks, client owners). Here two
real ``EnterpriseGatewayApp`` objects - same gateway name ``gw`` in two namespaces, each as its
own ServiceAccount - are initialised in this test process exactly as EG does at start-up
(``init_configurables`` with the plugin's kernelspec, kernel and session managers), each starts
a real kernel through its kernel manager (process proxy → JupyterKernel → operator → pod →
kernel launcher → the process's ResponseManager), and the test checks that nothing crossed:
kernelspecs, watches, API clients (and their credentials), proxies, tasks and kernels.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin.adoption import KubeflowMappingKernelManager
from elastic_jupyter.gateway_plugin.gateway_runtime import GatewayRuntime
from elastic_jupyter.gateway_plugin.kernelspec_sync import SyncedKernelSpecManager
from elastic_jupyter.gateway_plugin.kube import ApiError, kernels_path
from elastic_jupyter.gateway_plugin.session_store import KubeflowKernelSessionManager

from .conftest import KERNEL_IMAGE, USER, Cluster, free_port

pytestmark = pytest.mark.slow

GATEWAY = "gw"  # the same name in both namespaces: the harder case for anything shared


@pytest.fixture
def namespaces(gw_cluster: Cluster, gw_operator: Path) -> Iterator[tuple[str, str]]:
    """Two namespaces, each with one JupyterKernelSpec (``alpha`` in the first, ``beta`` in
    the second) that the operator renders into a kernelspec ConfigMap."""
    names = (gw_cluster.create_namespace("gw-rt-a"), gw_cluster.create_namespace("gw-rt-b"))
    for namespace, spec_name in zip(names, ("alpha", "beta"), strict=True):
        body = {
            "apiVersion": crds.API_VERSION,
            "kind": crds.JUPYTER_KERNEL_SPEC.kind,
            "metadata": {"name": spec_name, "namespace": namespace},
            "spec": {"language": "Python", "displayName": spec_name, "image": KERNEL_IMAGE},
        }
        path = f"/apis/{crds.API_VERSION}/namespaces/{namespace}/{crds.JUPYTER_KERNEL_SPEC.plural}"
        gw_cluster.api.request("POST", path, body=body)
    yield names
    for namespace in names:
        with contextlib.suppress(ApiError):
            gw_cluster.api.request("DELETE", f"/api/v1/namespaces/{namespace}")


def gateway_env(cluster: Cluster, namespace: str, workdir: Path) -> dict[str, str]:
    """What the operator's Deployment gives one gateway (the parts the plugin reads)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EG_", "EJ_", "KERNEL_"))}
    return {
        **base,
        "KUBECONFIG": str(cluster.gateway_kubeconfig(namespace, GATEWAY)),
        "EG_NAME": GATEWAY,
        "EG_NAMESPACE": namespace,
        "POD_NAME": f"{GATEWAY}-{namespace}",
        "ELASTIC_JUPYTER_KERNELSPEC_DIR": str(workdir / namespace),
    }


def gateway_app(runtime: GatewayRuntime, workdir: Path) -> Any:
    """An Enterprise Gateway application configured as the operator configures the gateway,
    initialised as ``EnterpriseGatewayApp.initialize`` does (no HTTP server)."""
    from enterprise_gateway.enterprisegatewayapp import EnterpriseGatewayApp

    app = EnterpriseGatewayApp()
    app.kernel_spec_manager_class = SyncedKernelSpecManager
    app.kernel_manager_class = KubeflowMappingKernelManager
    app.kernel_session_manager_class = KubeflowKernelSessionManager
    app.runtime_dir = str(workdir / "runtime" / uuid.uuid4().hex[:6])
    runtime.attach(app)
    app.init_configurables()
    return app


async def eventually(check: Any, timeout: float, what: str) -> None:
    """Await ``check()`` truthy (the loop keeps running: EG's callbacks and our tasks)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(check):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


def kernel_objects(cluster: Cluster, namespace: str, kernel_id: str) -> list[dict[str, Any]]:
    return [
        k
        for k in cluster.kernels(namespace)
        if k["metadata"]["labels"].get(crds.LABEL_KERNEL_ID) == kernel_id
    ]


def test_two_gateway_apps_in_one_process_share_nothing(
    gw_cluster: Cluster,
    namespaces: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # EG's own settings (one ResponseManager per process, whatever the applications).
    monkeypatch.setenv("EG_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("EG_RESPONSE_PORT", str(free_port()))
    monkeypatch.setenv("EG_KERNEL_LAUNCH_TIMEOUT", "60")
    asyncio.run(_two_apps(gw_cluster, namespaces, tmp_path))


async def _two_apps(cluster: Cluster, namespaces: tuple[str, str], workdir: Path) -> None:
    from enterprise_gateway.services.processproxies.processproxy import ResponseManager

    runtimes = [GatewayRuntime(env=gateway_env(cluster, ns, workdir)) for ns in namespaces]
    apps = [gateway_app(runtime, workdir) for runtime in runtimes]
    try:
        await _check_apart(cluster, namespaces, runtimes, apps)
    finally:
        for app in apps:
            with contextlib.suppress(Exception):
                await app.kernel_manager.shutdown_all(now=True)
            app.kernel_session_manager.detach()
        ResponseManager.instance().stop_response_manager()
        ResponseManager.clear_instance()


async def _check_apart(
    cluster: Cluster, namespaces: tuple[str, str], runtimes: list[GatewayRuntime], apps: list[Any]
) -> None:
    a, b = runtimes
    # Each application found its own runtime, from every object EG built for it.
    for runtime, app in zip(runtimes, apps, strict=True):
        assert GatewayRuntime.of(app.kernel_spec_manager) is runtime
        assert GatewayRuntime.of(app.kernel_manager) is runtime
        assert app.kernel_session_manager.runtime is runtime
        assert runtime.app is app
    assert a.settings.gateway_namespace == namespaces[0]
    assert b.settings.gateway_namespace == namespaces[1]

    # Kernelspecs: each serves its own namespace's JupyterKernelSpec, not the other's.
    assert a.kernelspec_sync() is not b.kernelspec_sync()
    for app, served in zip(apps, ("alpha", "beta"), strict=True):
        await eventually(
            lambda app=app, served=served: (
                set(app.kernel_spec_manager.find_kernel_specs()) == {served}
            ),
            30,
            f"kernelspec {served} served",
        )

    # API clients: two clients with two identities (each gateway's ServiceAccount).
    assert a.api is not b.api
    a.api.request("GET", kernels_path(namespaces[0]))
    with pytest.raises(ApiError) as denied:
        a.api.request("GET", kernels_path(namespaces[1]))
    assert denied.value.status == 403

    # Watches: one each, over its own namespace.
    assert a.watch is not b.watch
    assert a.watch.namespaces == [namespaces[0]]
    assert b.watch.namespaces == [namespaces[1]]

    # A real kernel through each application.
    ids = []
    for app, spec in zip(apps, ("alpha", "beta"), strict=True):
        kernel_id = await app.kernel_manager.start_kernel(
            kernel_name=spec, env={"KERNEL_USERNAME": USER}
        )
        ids.append(str(kernel_id))
    id_a, id_b = ids
    assert apps[0].kernel_manager.list_kernel_ids() == [id_a]
    assert apps[1].kernel_manager.list_kernel_ids() == [id_b]
    assert [k["metadata"]["name"] for k in kernel_objects(cluster, namespaces[0], id_a)]
    assert kernel_objects(cluster, namespaces[0], id_b) == []
    assert [k["metadata"]["name"] for k in kernel_objects(cluster, namespaces[1], id_b)]
    assert kernel_objects(cluster, namespaces[1], id_a) == []
    assert {p.kernel_id for p in a.live} == {id_a}
    assert {p.kernel_id for p in b.live} == {id_b}
    assert [s.kernel_id for s in a.watch.all()] == [id_a]
    assert [s.kernel_id for s in b.watch.all()] == [id_b]
    proxy_a = apps[0].kernel_manager.get_kernel(id_a).process_proxy
    assert proxy_a.runtime is a and proxy_a.api is a.api and proxy_a.watch is a.watch
    # Each kernel's session names its own replica as owner.
    for runtime, namespace, kernel_id in ((a, namespaces[0], id_a), (b, namespaces[1], id_b)):
        (obj,) = kernel_objects(cluster, namespace, kernel_id)
        annotations = obj["metadata"].get("annotations") or {}
        assert annotations.get(crds.ANNOTATION_GATEWAY_OWNER) == runtime.replica

    # Killing A's kernel runs A's background delete, never B's; B's kernel stays.
    proxy_a.kill()
    assert len(a.tasks) == 1 and not b.tasks
    await apps[0].kernel_manager.shutdown_kernel(id_a, now=True)
    await eventually(
        lambda: not kernel_objects(cluster, namespaces[0], id_a), 30, "A's kernel deleted"
    )
    await asyncio.sleep(1.0)  # B's kernel sync runs every 250 ms: it must not react
    assert apps[1].kernel_manager.list_kernel_ids() == [id_b]
    assert kernel_objects(cluster, namespaces[1], id_b)
    assert apps[1].kernel_manager.get_kernel(id_b).process_proxy.poll() is None
