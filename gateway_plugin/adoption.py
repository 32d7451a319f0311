"""Active-active gateway replicas: every replica serves every kernel of its JupyterGateway.

No sticky sessions: a Service spreads requests over the replicas, so each must know every kernel.

* **Continuous adoption** (:class:`KernelSync`, a 250 ms tornado callback reading only the kernel
  watch's cache): a JupyterKernel of this JupyterGateway that carries a session and that this
  replica does not run is adopted (one Secret GET, then EG's ``start_kernel_from_session``); a
  kernel whose JupyterKernel disappeared without this replica deleting it - shut down, culled or
  restarted through another replica - is *forgotten*: dropped locally, nothing deleted. The kernel
  list is the same on every replica; a kernel started through one is usable through another
  about as fast as the watch delivers its session annotation.
* **Hydrate on miss** for every kernel route (:class:`KubeflowMappingKernelManager`): EG checks
  unknown ids for websocket, model and delete; jupyter_server's own check (interrupt, restart,
  shutdown) hydrates here too.
* **One owner per kernel** (annotation ``kubeflow.tkestack.io/gateway-owner`` = the replica's pod
  name ``POD_NAME``, the ``replica`` of the application's runtime): only the owner culls the
  kernel and restarts it after its pod died, so those happen once. The launching replica owns a
  kernel; a replica that starts claims the kernels it adopts at boot (last writer wins: one
  owner at a time); a stopping replica releases its kernels, and the sync claims unowned ones.
"""

from __future__ import annotations

import contextlib
from typing import Any

from enterprise_gateway.services.kernels.remotemanager import RemoteMappingKernelManager
from tornado import web

from elastic_jupyter import crds

from .kernel_secret import read_kernel_secret
from .kube import ApiError, KubeApi, kernels_path

SYNC_INTERVAL_MS = 250


def set_owner(api: KubeApi, namespace: str, name: str, owner: str) -> None:
    """Record ``owner`` (``""``: none) as the replica responsible for a JupyterKernel."""
    patch = {"metadata": {"annotations": {crds.ANNOTATION_GATEWAY_OWNER: owner or None}}}
    api.request(
        "PATCH",
        kernels_path(namespace, name),
        body=patch,
        content_type="application/merge-patch+json",
        timeout=5.0,
    )


def responsible(owner: str, replica: str) -> bool:
    """Whether ``replica`` culls and restarts a kernel whose owner annotation is ``owner``
    (an unowned kernel - one replica, or older kernels - is everyone's). ``replica`` is the
    asking application's :attr:`~.gateway_runtime.GatewayRuntime.replica`."""
    return not owner or owner == replica


class KubeflowMappingKernelManager(RemoteMappingKernelManager):  # type: ignore[misc]
    """EG's kernel manager with hydrate-on-miss on every route and owner-only culling."""

    def _check_kernel_id(self, kernel_id: str) -> None:
        """jupyter_server's check (interrupt, restart, shutdown...): an unknown id is first
        looked up on the JupyterKernels (EG's ``check_kernel_id`` does that for the rest)."""
        if kernel_id not in self and not self._refresh_kernel(kernel_id):
            raise web.HTTPError(404, f"Kernel does not exist: {kernel_id}")

    async def cull_kernel_if_idle(self, kernel_id: str) -> None:
        """Cull only the kernels this replica owns: each idle kernel is culled once."""
        sessions = getattr(self.parent, "kernel_session_manager", None)
        owns = getattr(sessions, "owns_kernel", None)
        if callable(owns) and not owns(kernel_id):
            return
        await super().cull_kernel_if_idle(kernel_id)


def forget_kernel(manager: Any, kernel_id: str) -> None:
    """Drop a kernel from this replica without touching its JupyterKernel or pod."""
    kernel = manager._kernels.get(kernel_id)
    if kernel is None:
        return
    proxy = getattr(kernel, "process_proxy", None)
    if proxy is not None:
        proxy._delete_requested = True  # its cleanup must delete nothing
    with contextlib.suppress(Exception):
        kernel.stop_restarter()
    with contextlib.suppress(Exception):
        manager.stop_watching_activity(kernel_id)
    with contextlib.suppress(Exception):
        manager.stop_buffering(kernel_id)
    with contextlib.suppress(Exception):
        kernel.cleanup_resources(restart=False)
    manager.remove_kernel(kernel_id)


class KernelSync:
    """The periodic reconciliation of this replica's kernels with the JupyterKernels (see the
    module docstring). ``store`` is the :class:`~.session_store.KubeflowKernelSessionManager`,
    whose constructor calls :meth:`start` and whose detach calls :meth:`stop`; tornado calls
    :meth:`sync` every ``SYNC_INTERVAL_MS`` on EG's loop."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.adopting: set[str] = set()
        self.forgotten = 0
        self.claimed: set[tuple[str, str]] = set()

    def start(self) -> None:
        from tornado.ioloop import PeriodicCallback

        self._callback = PeriodicCallback(self.sync, SYNC_INTERVAL_MS)
        self._callback.start()

    def stop(self) -> None:
        callback = getattr(self, "_callback", None)
        if callback is not None:
            callback.stop()

    def sync(self) -> None:
        try:
            self._forget_ended()
            self._adopt_new()
        except Exception as err:  # the sync must outlive any surprise
            self.store.log.warning("kernel sync failed: %r", err)

    def _forget_ended(self) -> None:
        manager = self.store.kernel_manager
        watch = self.store.watch
        for kernel_id in list(manager.list_kernel_ids()):
            kernel = manager._kernels.get(kernel_id)
            proxy = getattr(kernel, "process_proxy", None)
            if kernel is None or proxy is None or getattr(kernel, "restarting", False):
                continue
            namespace = getattr(proxy, "kernel_namespace", None)
            name = getattr(proxy, "kernel_resource_name", None)
            if not namespace or not name or getattr(proxy, "_delete_requested", True):
                continue  # launching, or ended by this replica: EG's own path handles it
            if watch.get(namespace, name) is None and watch.was_deleted(namespace, name):
                self.store.log.info(
                    "Kernel %s: JupyterKernel %s/%s was deleted by another replica or the "
                    "operator: forgetting it here",
                    kernel_id,
                    namespace,
                    name,
                )
                forget_kernel(manager, kernel_id)
                self.forgotten += 1

    def _adopt_new(self) -> None:
        manager = self.store.kernel_manager
        me = self.store.runtime.replica
        for status in self.store._candidates():
            if not status.owner and status.key not in self.claimed and status.kernel_id in manager:
                self.claimed.add(status.key)  # an unowned kernel this replica runs: claim it
                self.store.api_background(
                    set_owner, self.store.api, status.namespace, status.name, me
                )
            if status.kernel_id in manager or status.kernel_id in self.adopting:
                continue
            self.adopting.add(status.kernel_id)
            self.store.api_background(self._fetch, status, then=self._adopt)

    def _fetch(self, status: Any) -> tuple[Any, dict[str, str] | None]:
        try:
            return status, read_kernel_secret(self.store.api, status.namespace, status.name)
        except ApiError as err:
            self.store.log.warning("Kernel %s: cannot read its Secret: %s", status.kernel_id, err)
            return status, None

    def _adopt(self, result: tuple[Any, dict[str, str] | None]) -> None:
        status, secret = result
        try:
            if secret is None or status.kernel_id in self.store.kernel_manager:
                return
            if self.store.adopt_status(status, secret):
                self.store.log.info("Kernel %s: adopted from another replica", status.kernel_id)
        finally:
            self.adopting.discard(status.kernel_id)
