"""Gateway boot: the kernel watch and the orphan sweep run from the moment the gateway starts.

A JupyterKernel of this gateway that no kernel session owns - left by a gateway that died
mid-launch, or by one whose sessions were lost (persistence off, SIGKILL, OOM) - would keep its
pod, maybe a GPU, forever (EG issues #672, #1086). The sweep (:class:`OrphanSweeper`) deletes
such objects after ``EJ_ORPHAN_GRACE_SECONDS``, and it must run even if no kernel is ever
started again.

Where it starts
---------------
Enterprise Gateway 3.3 has no plugin start-up hook. The earliest object of ours it builds is
its ``kernel_spec_manager_class``: ``EnterpriseGatewayApp.init_configurables`` creates it first
(``parent`` = the app), then the kernel manager, the kernel session manager and - in
``standalone`` availability mode - revives persisted sessions (``start_sessions``), then the web
app and the HTTP server. So :class:`~.kernelspec_sync.KubeflowKernelSpecManager` (and
:class:`~.kernelspec_sync.SyncedKernelSpecManager`, which the operator's gateway Deployment
passes as ``--EnterpriseGatewayApp.kernel_spec_manager_class``) call
:meth:`~.gateway_runtime.GatewayRuntime.start_services` of their application's runtime from
their constructor. A gateway configured without them starts the same services at its first
kernel launch or session revival (the process proxy calls ``start_services`` too); that
fallback is the only case where clean-up waits for a kernel start. One sweep runs per
application (its :class:`~.gateway_runtime.GatewayRuntime` owns it).

The sweeper thread judges nothing until the app has its HTTP server, i.e. until
``init_configurables`` - and with it ``start_sessions`` - has returned.

Client authentication
---------------------
``start_services`` also installs :mod:`.client_auth` (per-notebook tokens, kernel ownership)
into EG's handlers before they serve a request, :mod:`.kernel_secret`'s check of launch
tokens into EG's ResponseManager, and :mod:`.restart_reason` (why a kernel restarts by
itself, on its websocket) into the websocket handler.

Which kernels are live
----------------------
A kernel id is *known* (never deleted) when any of these holds:

* a :class:`~.process_proxy.KubeflowProcessProxy` of this application has it (the runtime's
  ``live`` set: every launch from before its JupyterKernel is created, every revived session);
* EG's kernel manager (``app.kernel_manager``) has it: running kernels;
* with session persistence, EG's session manager holds a session for it
  (``app.kernel_session_manager._sessions``).

With the operator's configuration the session manager is
:class:`~.session_store.KubeflowKernelSessionManager`: persistence is on, so the mode is
``replication`` below and "the shared store" is the JupyterKernels themselves - a live
JupyterKernel with a session is adopted by some replica, never swept. Whatever the mode, a
JupyterKernel labelled with another JupyterGateway's uid is never judged (a same-name gateway
of another namespace sharing the kernel namespace).

Per availability mode (``EG_AVAILABILITY_MODE``; persistence alone implies ``replication``):

* **off** (no persistence): kernels of a previous gateway process are unreachable anyway; any
  JupyterKernel unknown for the grace period is deleted.
* **standalone**: ``start_sessions`` revived every persisted session before the sweep starts;
  those that failed were deleted from the store by EG. Same rule as above.
* **replication**: revival is lazy and other replicas launch kernels this one never sees. A
  JupyterKernel is deleted only if, besides being unknown here for the grace period, the
  *shared store* holds no session for it (a ``FileKernelSessionManager`` file, else
  ``load_session``) and it is older than ``EG_KERNEL_LAUNCH_TIMEOUT`` + the grace (a launch in
  progress on another replica has no session yet). Any error reading the store counts as
  "known". A client that raises its own ``KERNEL_LAUNCH_TIMEOUT`` beyond that sum in this mode
  may lose its kernel mid-launch: raise the grace accordingly.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from .kernel_watch import KernelStatus, KernelWatch
from .kube import ApiError, KubeApi
from .launcher import delete_kernel, gateway_ref
from .settings import GatewaySettings

log = logging.getLogger(__name__)

REPLICATION = "replication"


def is_gateway_app(app: Any) -> bool:
    """Whether ``app`` looks like Enterprise Gateway's application (not another Jupyter app)."""
    return app is not None and hasattr(app, "availability_mode") and hasattr(app, "max_kernels")


def _session_store_has(sessions: Any, kernel_id: str) -> bool:
    """Whether the kernel session store shared by replicas holds ``kernel_id``.

    ``FileKernelSessionManager``: its ``<root>/kernel_sessions/<id>.json`` exists (no side
    effect). Other managers (webhook): ``load_session`` as EG's own lazy revival does, then a
    look at the in-memory sessions. Errors count as present.
    """
    try:
        locate = getattr(sessions, "_get_sessions_loc", None)
        if callable(locate):
            return os.path.exists(os.path.join(str(locate()), f"{kernel_id}.json"))
        sessions.load_session(kernel_id)
        return kernel_id in (getattr(sessions, "_sessions", None) or {})
    except Exception as err:
        log.warning("orphan sweep: cannot read the session of kernel %s: %s", kernel_id, err)
        return True


class OrphanSweeper:
    """Deletes this gateway's JupyterKernels that no kernel or session owns (a daemon thread).

    Built and started by :meth:`.gateway_runtime.GatewayRuntime.start_services` (one per
    application); its thread calls :meth:`sweep_once` every ``interval`` seconds.
    ``app_getter`` returns EG's application (``None`` until known); nothing is judged before
    the application has its HTTP server. ``gateway_uid`` returns the JupyterGateway's uid (the
    runtime's cached lookup; by default one GET per round). See the module docstring for the
    rules.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        watch: KernelWatch,
        api: KubeApi,
        app_getter: Callable[[], Any],
        live: weakref.WeakSet[Any] | None = None,
        gateway_uid: Callable[[], str | None] | None = None,
    ) -> None:
        self.settings = settings
        self.watch = watch
        self.api = api
        self.app_getter = app_getter
        self.live: weakref.WeakSet[Any] = weakref.WeakSet() if live is None else live
        self._gateway_uid = gateway_uid
        self.interval = max(0.5, min(settings.orphan_grace / 4, 30.0))
        self.deleted: list[KernelStatus] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ej-orphan-sweep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    # --- judging --------------------------------------------------------------------------

    def ready(self, app: Any) -> bool:
        """EG has finished initializing (sessions revived, HTTP server created)."""
        return app is not None and getattr(app, "http_server", None) is not None

    def is_known(self, app: Any, kernel_id: str) -> bool:
        """Whether this gateway runs, launches or holds a session for ``kernel_id``."""
        try:
            if any(getattr(p, "kernel_id", None) == kernel_id for p in list(self.live)):
                return True
        except RuntimeError:  # the set changed while copying it: judge again next time
            return True
        try:
            manager = getattr(app, "kernel_manager", None)
            if manager is not None and kernel_id in manager:
                return True
            sessions = getattr(app, "kernel_session_manager", None)
            if sessions is not None and getattr(sessions, "enable_persistence", False):
                return kernel_id in (getattr(sessions, "_sessions", None) or {})
        except Exception:  # EG changed under us: never delete on doubt
            return True
        return False

    def gateway_uid(self) -> str | None:
        """This gateway's JupyterGateway uid (``None`` when it has none or it is unreadable)."""
        if self._gateway_uid is not None:  # the runtime's, looked up once
            return self._gateway_uid()
        try:
            return gateway_ref(self.api, self.settings).uid
        except ApiError:
            return None

    def replication(self, app: Any) -> bool:
        return str(getattr(app, "availability_mode", "") or "").lower() == REPLICATION

    def sweep_once(self, now: float | None = None) -> list[KernelStatus]:
        """One round: return (and delete) the JupyterKernels judged orphaned."""
        app = self.app_getter()
        if not self.ready(app):
            return []
        grace = self.settings.orphan_grace
        candidates = self.watch.orphans(lambda kid: self.is_known(app, kid), grace)
        if candidates:  # never another JupyterGateway's kernels (same name, other namespace)
            uid = self.gateway_uid()
            candidates = [
                s for s in candidates if not (uid and s.gateway_uid and s.gateway_uid != uid)
            ]
        if candidates and self.replication(app):
            wall = time.time() if now is None else now
            min_age = self.settings.kernel_launch_timeout + grace
            sessions = getattr(app, "kernel_session_manager", None)
            candidates = [
                s
                for s in candidates
                if s.created is not None
                and wall - s.created >= min_age
                and not _session_store_has(sessions, s.kernel_id)
            ]
        deleted = []
        for status in candidates:
            if self.is_known(app, status.kernel_id):  # a launch began meanwhile
                continue
            log.warning(
                "orphan sweep: deleting JupyterKernel %s/%s: kernel %s has no session on this "
                "gateway (unknown for %.0fs)",
                status.namespace,
                status.name,
                status.kernel_id,
                grace,
            )
            try:
                delete_kernel(self.api, status.namespace, status.name)
            except ApiError as err:
                log.warning(
                    "orphan sweep: cannot delete JupyterKernel %s/%s: %s",
                    status.namespace,
                    status.name,
                    err,
                )
                continue
            deleted.append(status)
        self.deleted.extend(deleted)
        return deleted

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.sweep_once()
            except Exception as err:  # the sweep must outlive any surprise
                log.warning("orphan sweep failed: %r", err)
