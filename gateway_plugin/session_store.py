"""The JupyterKernel is the kernel session: a gateway that starts adopts its running kernels.

:class:`KubeflowKernelSessionManager` is Enterprise Gateway 3.3's ``kernel_session_manager_class``
for elastic-jupyter (the operator's gateway Deployment selects it). Persistence is on by default
and needs no configuration:

* **Where a session lives.** EG keeps, per kernel, ``kernel_id``, ``username``, ``kernel_name``,
  ``connection_info`` (ports, ip, transport, signature scheme, *HMAC key*), ``launch_args`` (the
  start request's env and headers) and ``process_info`` (our proxy's JupyterKernel identity).
  The non-secret fields go into the JupyterKernel's annotation
  ``kubeflow.tkestack.io/kernel-session`` (a merge patch by the gateway); the HMAC key and the
  launch arguments go into the Secret named like the JupyterKernel and owned by it
  (:mod:`.kernel_secret`). Nothing outlives the kernel: deleting the JupyterKernel deletes both.
  The Secret is written before the annotation, so an annotation always means a complete session.
* **Adoption.** The constructor runs while EG initializes - before its HTTP server exists, so
  before the gateway pod's readiness probe can pass - and revives every running JupyterKernel
  of this JupyterGateway (by uid) that carries a session, from the kernel watch's cache plus one
  Secret GET each.
* **Hydrate on miss.** Persistence makes EG run in ``replication`` availability mode, where a
  request for an unknown kernel id (websocket, model, delete) calls :meth:`load_session` then
  revives it: any replica, or a gateway that missed a kernel at boot, answers for it.
* **Detach, never shut down.** EG ends ``start()`` with ``finally: self.shutdown()``, which
  shuts every kernel down; a rollout or an evicted pod would take every user's variables with it.
  The manager replaces that method of the application it belongs to with :meth:`detach`: the
  process goes, its kernels stay, the next gateway adopts them. Kernels end by an explicit
  shutdown, culling, or the deletion of their JupyterGateway (the operator deletes them).

``EG_KERNEL_SESSION_PERSISTENCE=false`` turns all of this off (EG's stock behaviour).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from typing import Any

from enterprise_gateway.services.sessions.kernelsessionmanager import KernelSessionManager
from traitlets import default

from elastic_jupyter import crds

from .adoption import KernelSync, responsible, set_owner
from .api_retry import TRANSIENT, retrying
from .gateway_boot import is_gateway_app
from .gateway_runtime import GatewayRuntime
from .kernel_secret import put_kernel_secret, read_kernel_secret
from .kernel_watch import KernelStatus, KernelWatch
from .kube import ApiError, KubeApi, kernels_path
from .session_record import (
    kernel_resource_of,
    session_annotation,
    session_from_parts,
    session_secret_data,
)

#: Failures of a session write worth retrying: transient ones, and a conflict (the merge patch
#: carries no resourceVersion, so a 409 can only be the server's own hiccup)
RETRIED = TRANSIENT | {409}


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


Obj = dict[str, Any]

#: How long adoption waits at boot for the first list of every watched namespace.
BOOT_SYNC_SECONDS = 30.0


def _persistence_from_env() -> bool:
    raw = os.getenv(KernelSessionManager.session_persistence_env)
    return True if raw is None or not raw.strip() else raw.strip().lower() == "true"


class KubeflowKernelSessionManager(KernelSessionManager):  # type: ignore[misc]
    """EG's kernel session manager whose store is the JupyterKernel (see the module doc)."""

    @default("enable_persistence")
    def _session_persistence_default(self) -> bool:
        return _persistence_from_env()

    def __init__(self, kernel_manager: Any, **kwargs: Any) -> None:
        """Built by ``EnterpriseGatewayApp.init_configurables`` (``parent`` = the app) before
        the HTTP server; adopts the gateway's kernels right here (module doc)."""
        super().__init__(kernel_manager, **kwargs)
        self._store_lock = threading.Lock()
        self.adopted: list[str] = []
        self.sync: KernelSync | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        app: Any = kwargs.get("parent")
        #: The plugin's state of this application (settings, API client, watch...).
        self.runtime = GatewayRuntime.of(app if app is not None else kernel_manager)
        if not self.enable_persistence:
            return
        self.settings = self.runtime.settings
        self.watch: KernelWatch = self.runtime.start_services()
        if is_gateway_app(app):
            # EG's start() ends in `finally: self.shutdown()`: make that a detach (module doc).
            app.shutdown = self.detach
            self._app = app
            self._warm_response_manager()
            self.adopt_all()
            self.sync = KernelSync(self)
            self.sync.start()

    def _warm_response_manager(self) -> None:
        """Create EG's ResponseManager (its RSA key takes seconds on a busy node) at boot, not
        inside the first kernel request a replica serves."""
        try:
            from enterprise_gateway.services.processproxies.processproxy import ResponseManager

            ResponseManager.instance()
        except Exception as err:  # the first kernel start will try again
            self.log.warning("Cannot start the kernel response listener yet: %r", err)

    @property
    def api(self) -> KubeApi:
        """The application's Kubernetes client (its runtime's)."""
        return self.runtime.api

    # --- whose kernels --------------------------------------------------------------------

    def owns(self, status: KernelStatus) -> bool:
        """Whether this gateway (its JupyterGateway, by uid) launched the JupyterKernel."""
        uid = self.runtime.gateway_uid()
        return not uid or not status.gateway_uid or status.gateway_uid == uid

    def _candidates(self, kernel_id: str | None = None) -> list[KernelStatus]:
        """Live JupyterKernels of this gateway that carry a session (newest first)."""
        statuses = self.watch.all() if kernel_id is None else self.watch.by_kernel_id(kernel_id)
        found = [s for s in statuses if s.session and s.alive and self.owns(s)]
        found.sort(key=lambda s: s.created or 0.0, reverse=True)
        return found

    # --- storage hooks (EG's abstract methods) --------------------------------------------

    def save_session(self, kernel_id: str) -> None:
        """Called (under EG's lock) after a start and after a restart: write the Secret, then
        the annotation. A failure is logged: the kernel runs, only its adoption is at risk."""
        if not self.enable_persistence or kernel_id is None:
            return
        session = self._sessions.get(kernel_id)
        namespace, name, uid = kernel_resource_of((session or {}).get("process_info") or {})
        if session is None or not namespace or not name or not uid:
            self.log.warning("Kernel %s: no JupyterKernel to store its session on", kernel_id)
            return
        try:
            self._store(kernel_id, namespace, name, uid)
        except ApiError as err:
            if err.status in RETRIED and _loop_running():
                # A transient failure (5xx, 429, a conflict, the API server restarting): retry
                # off EG's loop until it lands, with the session as it is then.
                self.log.warning(
                    "Kernel %s: storing its session failed (%s): retrying", kernel_id, err
                )
                self.api_background(
                    lambda: retrying(
                        lambda: self._store(kernel_id, namespace, name, uid),
                        budget=120.0,
                        retry_on=RETRIED,
                    )
                )
                return
            self.log.error(
                "Kernel %s: cannot store its session on JupyterKernel %s/%s (%s): a restarted "
                "gateway will not adopt it",
                kernel_id,
                namespace,
                name,
                err,
            )

    def _store(self, kernel_id: str, namespace: str, name: str, uid: str) -> None:
        """Write the kernel's session (Secret, then annotation); blocking, raises ApiError."""
        session = self._sessions.get(kernel_id)
        if session is None:
            return  # forgotten meanwhile (shut down): nothing to store
        put_kernel_secret(self.api, namespace, name, uid, session_secret_data(session), exists=True)
        annotations = {
            crds.ANNOTATION_KERNEL_SESSION: session_annotation(session),
            crds.ANNOTATION_GATEWAY_OWNER: self.runtime.replica,  # the launching replica owns it
        }
        patch = {"metadata": {"annotations": annotations}}
        self.api.request(
            "PATCH",
            kernels_path(namespace, name),
            body=patch,
            content_type="application/merge-patch+json",
            timeout=5.0,
        )

    def load_sessions(self) -> None:
        """Every live session of this gateway, from the watch cache (+ one Secret GET each)."""
        for status in self._candidates():
            if status.kernel_id not in self._sessions:
                self._load_status(status)

    def load_session(self, kernel_id: str) -> None:
        """Hydrate on miss: the session of ``kernel_id`` if a JupyterKernel of ours has one."""
        if not self.enable_persistence or not kernel_id:
            return
        if not self.watch.synced:
            self.watch.wait_synced(5.0)  # only right after boot
        for status in self._candidates(kernel_id):
            if self._load_status(status):
                return

    def delete_sessions(self, kernel_ids: list[str]) -> None:
        """Nothing to delete: the session goes with its JupyterKernel (shutdown deletes it)."""

    def _load_status(self, status: KernelStatus) -> bool:
        try:
            secret = read_kernel_secret(self.api, status.namespace, status.name)
        except ApiError as err:
            self.log.warning(
                "Kernel %s: cannot read the Secret %s/%s: %s",
                status.kernel_id,
                status.namespace,
                status.name,
                err,
            )
            return False
        return self._remember(status, secret or {})

    def adopt_status(self, status: KernelStatus, secret: dict[str, str]) -> bool:
        """Revive one kernel from its JupyterKernel and Secret (the kernel sync's adoption)."""
        if not self._remember(status, secret):
            return False
        if self._start_session(self._sessions[status.kernel_id]):
            return True
        self._sessions.pop(status.kernel_id, None)
        return False

    def _remember(self, status: KernelStatus, secret: dict[str, str]) -> bool:
        session = session_from_parts(status.session, secret)
        if session is None or session["kernel_id"] != status.kernel_id:
            self.log.warning(
                "Kernel %s: JupyterKernel %s/%s has no usable session",
                status.kernel_id,
                status.namespace,
                status.name,
            )
            return False
        with self._store_lock:
            self._sessions[status.kernel_id] = session
            users = self._sessionsByUser.setdefault(session["username"], [])
            if status.kernel_id not in users:
                users.append(status.kernel_id)
        return True

    # --- adoption and detach --------------------------------------------------------------

    def _start_session(self, kernel_session: Obj) -> bool:
        """Revive one session; a kernel this process already runs counts as revived."""
        if kernel_session["kernel_id"] in self.kernel_manager:
            return True
        started: bool = super()._start_session(kernel_session)
        kernel_id = kernel_session["kernel_id"]
        ports = getattr(self.kernel_manager, "_kernel_ports", None)
        if started and isinstance(ports, dict):
            # jupyter_server's restart compares ports it recorded at start; EG's revival does
            # not record them, so a restart of a revived kernel would fail with a KeyError.
            ports[kernel_id] = self.kernel_manager.get_kernel(kernel_id).ports
        return started

    def adopt_all(self) -> list[str]:
        """Revive every live session of this gateway (at boot, before the HTTP server)."""
        if not self.watch.wait_synced(BOOT_SYNC_SECONDS):
            self.log.warning(
                "Kernel adoption: the JupyterKernel list is not loaded after %.0fs; kernels "
                "not adopted now are adopted on their first request",
                BOOT_SYNC_SECONDS,
            )
        self.load_sessions()
        adopted = []
        for kernel_id, session in list(self._sessions.items()):
            try:
                ok = self._start_session(session)
            except Exception as err:  # one broken session must not stop the gateway
                self.log.warning("Kernel %s: adoption failed: %r", kernel_id, err)
                ok = False
            if ok:
                adopted.append(kernel_id)
            else:
                self._sessions.pop(kernel_id, None)
        self.adopted = adopted
        self.log.info("Adopted %d running kernel(s) of this gateway", len(adopted))
        me = self.runtime.replica
        for status in self._candidates():  # this replica now culls and restarts them
            if status.kernel_id in adopted and status.owner != me:
                with contextlib.suppress(ApiError):
                    set_owner(self.api, status.namespace, status.name, me)
        return adopted

    def owns_kernel(self, kernel_id: str) -> bool:
        """Whether this replica culls (and restarts) ``kernel_id`` (see :mod:`.adoption`)."""
        kernel = self.kernel_manager._kernels.get(kernel_id)
        proxy = getattr(kernel, "process_proxy", None)
        namespace = getattr(proxy, "kernel_namespace", None)
        name = getattr(proxy, "kernel_resource_name", None)
        status = self.watch.get(namespace, name) if namespace and name else None
        return status is None or responsible(status.owner, self.runtime.replica)

    def api_background(self, func: Any, *args: Any, then: Any = None) -> None:
        """Run a blocking API call on the client's thread pool; ``then(result)`` on the loop."""
        task = asyncio.ensure_future(self.api.run(func, *args))
        self._tasks.add(task)

        def done(future: asyncio.Future[Any]) -> None:
            self._tasks.discard(future)
            if future.cancelled():
                return
            error = future.exception()
            if error is not None:
                self.log.warning("kernel sync: API call failed: %r", error)
            elif then is not None:
                then(future.result())

        task.add_done_callback(done)

    def detach(self) -> None:
        """Replaces EG's ``shutdown()``: leave every kernel running for the next gateway.

        Called by EG's ``start()`` in its ``finally`` (SIGTERM, Ctrl-C, any exit of the loop).
        """
        ids = list(getattr(self.kernel_manager, "list_kernel_ids", list)())
        self.log.info(
            "Gateway stopping: detaching from %d kernel(s); they keep running and the next "
            "gateway adopts them",
            len(ids),
        )
        if self.sync is not None:
            self.sync.stop()
        me = self.runtime.replica
        for status in self._candidates():  # hand them over: another replica claims them
            if status.owner == me:
                with contextlib.suppress(Exception):
                    set_owner(self.api, status.namespace, status.name, "")
        self.runtime.stop()
