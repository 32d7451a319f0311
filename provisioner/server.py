"""``DirectMappingKernelManager``: a notebook server whose kernel pods outlive it.

jupyter_server 2 shuts every kernel down when it stops and keeps sessions in memory only. With
``ServerApp.kernel_manager_class`` set to
``elastic_jupyter.provisioner.server.DirectMappingKernelManager``:

* **stop** (``ServerApp.cleanup_kernels`` → :meth:`shutdown_all`): kernels of the
  ``kubeflow-provisioner`` are *detached* (ZeroMQ sockets closed, nothing deleted); kernels of
  other provisioners are shut down as before. An explicit shutdown, a restart and the culler
  (``shutdown_kernel``) still end a kernel: its JupyterKernel is deleted.
* **start**: once the server's loop runs, the JupyterKernels labelled with this server's owner
  (``kubeflow.tkestack.io/notebook=<EJ_NOTEBOOK_NAME>``, same notebook namespace and uid, see
  :mod:`.settings`) that are alive and carry a kernel session are *adopted*: a kernel manager
  is rebuilt from the session annotation, the connection key in the kernel's Secret and the
  provisioner info, so ``/api/kernels`` lists them and websockets, interrupts, restarts and
  the culler work as for kernels started here.
* **sessions**: when jupyter_server's session manager saves or updates a session of a kernel
  started here, its path, name and type are written onto the JupyterKernel (annotation
  ``kubeflow.tkestack.io/notebook-session``); adoption puts them back into the session
  manager, so ``/api/sessions`` lists the notebook again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_client.provisioning.factory import KernelProvisionerFactory
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_server.utils import ensure_async
from tornado.ioloop import IOLoop

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin.kube import ApiError, kernels_path

from . import sessions
from .provisioner import KubeflowProvisioner
from .runtime import SYNC_WAIT_SECONDS, DirectRuntime

__all__ = ["DirectMappingKernelManager"]

_HOOKED = "_elastic_jupyter_direct_hooked"


def _utcnow() -> Any:
    from jupyter_server._tz import utcnow

    return utcnow()


class DirectMappingKernelManager(AsyncMappingKernelManager):  # type: ignore[misc]
    """jupyter_server's kernel manager, detaching from and adopting direct-mode kernels."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._adopted: asyncio.Future[int] | None = None
        IOLoop.current().add_callback(self._start_adoption)

    # --- ownership ------------------------------------------------------------------------

    def is_direct(self, kernel_id: str) -> bool:
        """Whether ``kernel_id`` runs through the kubeflow provisioner."""
        km = self._kernels.get(kernel_id)
        return isinstance(getattr(km, "provisioner", None), KubeflowProvisioner)

    # --- stop: detach ---------------------------------------------------------------------

    def detach_kernel(self, kernel_id: str) -> None:
        """Forget a kernel here without ending it (sockets closed, JupyterKernel kept)."""
        km = self._kernels.pop(kernel_id, None)
        if km is None:
            return
        with contextlib.suppress(Exception):
            self.stop_watching_activity(kernel_id)
        with contextlib.suppress(Exception):
            km.stop_restarter()
        with contextlib.suppress(Exception):
            km._close_control_socket()
        with contextlib.suppress(Exception):
            km.cleanup_connection_file()
        self.log.info("Detached kernel %s (its pod keeps running)", kernel_id)

    async def _async_shutdown_all(self, now: bool = False) -> None:
        """Called by the server's stop: detach direct kernels, shut the others down."""
        for kernel_id in list(self._kernels):
            if self.is_direct(kernel_id):
                self.detach_kernel(kernel_id)
        await super()._async_shutdown_all(now=now)

    shutdown_all = _async_shutdown_all

    # --- sessions -------------------------------------------------------------------------

    def _session_manager(self) -> Any:
        return getattr(self.parent, "session_manager", None)

    def _hook_sessions(self) -> None:
        """Write each session of a direct kernel onto its JupyterKernel (see module doc)."""
        manager = self._session_manager()
        if manager is None or getattr(manager, _HOOKED, False):
            return
        setattr(manager, _HOOKED, True)
        save: Callable[..., Awaitable[Any]] = manager.save_session
        update: Callable[..., Awaitable[Any]] = manager.update_session

        async def save_session(session_id: str, *args: Any, **kwargs: Any) -> Any:
            model = await save(session_id, *args, **kwargs)
            await self._record_session(model)
            return model

        async def update_session(session_id: str, **kwargs: Any) -> Any:
            await update(session_id, **kwargs)
            with contextlib.suppress(Exception):
                await self._record_session(await manager.get_session(session_id=session_id))

        manager.save_session = save_session
        manager.update_session = update_session

    async def _record_session(self, model: Any) -> None:
        if not isinstance(model, dict):
            return
        kernel_id = str((model.get("kernel") or {}).get("id") or "")
        km = self._kernels.get(kernel_id)
        provisioner = getattr(km, "provisioner", None)
        if not isinstance(provisioner, KubeflowProvisioner) or not provisioner.has_process:
            return
        runtime = provisioner.runtime
        provisioner.notebook_session = dict(model)
        try:
            await runtime.api.run(
                sessions.save_notebook_session,
                runtime.api,
                provisioner.kernel_namespace,
                provisioner.kernel_resource_name,
                model,
            )
        except ApiError as err:
            self.log.warning("Kernel %s: could not store its session: %s", kernel_id, err)

    async def _async_start_kernel(self, **kwargs: Any) -> str:
        self._hook_sessions()
        if self._adopted is not None:  # a start never races the adoption of the same ids
            with contextlib.suppress(Exception):
                await asyncio.shield(self._adopted)
        return str(await super()._async_start_kernel(**kwargs))

    start_kernel = _async_start_kernel

    async def _async_restart_kernel(self, kernel_id: str, now: bool = False) -> Any:
        """jupyter_server answers a failed restart with 'Exception restarting kernel' only:
        log why (the start's reason, e.g. a failed kernel pod) where the admin looks."""
        try:
            return await super()._async_restart_kernel(kernel_id, now=now)
        except Exception as err:
            self.log.error("Kernel %s: restart failed: %s", kernel_id, err, exc_info=True)
            raise

    restart_kernel = _async_restart_kernel

    # --- start: adopt ---------------------------------------------------------------------

    def _start_adoption(self) -> None:
        self._adopted = asyncio.ensure_future(self.adopt_kernels())

    async def adoption_done(self) -> int:
        """How many kernels the start-up adoption took over (waits for it)."""
        return await self._adopted if self._adopted is not None else 0

    async def adopt_kernels(self) -> int:
        """Adopt this server's running JupyterKernels (see module doc); never raises."""
        self._hook_sessions()
        try:
            runtime = DirectRuntime.current()
            await runtime.ready()
            objects = await runtime.api.run(self._list_owned, runtime)
        except Exception as err:
            self.log.warning("Direct kernels: no adoption at start: %s", err)
            return 0
        adopted = 0
        for obj in objects:
            try:
                adopted += await self._adopt(runtime, obj)
            except Exception as err:
                name = (obj.get("metadata") or {}).get("name")
                self.log.warning("Direct kernels: could not adopt JupyterKernel %s: %s", name, err)
        if adopted:
            self.log.info("Direct kernels: adopted %d running kernel(s)", adopted)
        return adopted

    @staticmethod
    def _list_owned(runtime: DirectRuntime) -> list[dict[str, Any]]:
        """This server's live JupyterKernels (one LIST per kernel namespace)."""
        found: list[dict[str, Any]] = []
        for namespace in runtime.settings.policy.boot_watch_namespaces:
            answer = runtime.api.request(
                "GET",
                kernels_path(namespace),
                query={"labelSelector": runtime.settings.kernel_selector},
                timeout=10.0,
            )
            for obj in answer.get("items") or []:
                meta = obj.get("metadata") or {}
                phase = (obj.get("status") or {}).get("phase")
                if meta.get("deletionTimestamp") or phase != crds.PHASE_RUNNING:
                    continue
                if runtime.settings.owns(meta.get("annotations") or {}):
                    found.append(obj)
        return found

    async def _adopt(self, runtime: DirectRuntime, obj: dict[str, Any]) -> int:
        session = await runtime.api.run(sessions.load_kernel_session, runtime.api, obj)
        if session is None:
            return 0
        kernel_id = str(session["kernel_id"])
        if kernel_id in self._kernels:
            return 0
        status = obj.get("status") or {}
        info = dict(session["connection_info"])
        info["ip"] = str(status.get("podIP") or info.get("ip") or "")
        kernel_name = str(session.get("kernel_name") or "")
        km = self.kernel_manager_factory(
            connection_file=os.path.join(self.connection_dir, f"kernel-{kernel_id}.json"),
            parent=self,
            log=self.log,
            kernel_name=kernel_name,
        )
        km.kernel_id = kernel_id
        km.load_connection_info(info)
        provisioner = KernelProvisionerFactory.instance(
            parent=self.parent
        ).create_provisioner_instance(kernel_id, km.kernel_spec, parent=km)
        if not isinstance(provisioner, KubeflowProvisioner):
            return 0
        identity = dict(session.get("process_info") or {})
        await provisioner.load_provisioner_info(
            {**identity, "kernel_id": kernel_id, "connection_info": info}
        )
        provisioner.comm_ip = info["ip"]
        km.provisioner = provisioner
        env = dict(os.environ)
        model = sessions.notebook_session(obj)
        if model is not None:
            env["JPY_SESSION_NAME"] = str(model.get("path") or "")
        km._launch_args = {"env": env}
        km.ready.set_result(None)
        km._attempted_start = True  # the next restart/shutdown makes a fresh `ready`
        km.start_restarter()
        km._connect_control_socket()
        self._kernels[kernel_id] = km
        self._kernel_connections[kernel_id] = 0
        km.execution_state = "idle"
        km.reason = ""
        km.last_activity = _utcnow()
        self._kernel_ports[kernel_id] = km.ports
        self.start_watching_activity(kernel_id)
        self.add_restart_callback(kernel_id, lambda: self._handle_kernel_died(kernel_id), "dead")
        if not self._initialized_culler:
            self.initialize_culler()
        if model is not None:
            provisioner.notebook_session = model
            await self._restore_session(kernel_id, model)
        self.log.info(
            "Adopted kernel %s (JupyterKernel %s)", kernel_id, provisioner.kernel_resource_name
        )
        return 1

    async def _restore_session(self, kernel_id: str, model: dict[str, Any]) -> None:
        manager = self._session_manager()
        if manager is None:
            return
        session_id = str(model.get("id") or manager.new_session_id())
        if await ensure_async(manager.session_exists(str(model.get("path") or ""))):
            return
        manager.cursor.execute(
            "INSERT INTO session VALUES (?,?,?,?,?)",
            (session_id, model.get("path"), model.get("name"), model.get("type"), kernel_id),
        )


__all__ += ["SYNC_WAIT_SECONDS"]
