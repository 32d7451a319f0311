"""The plugin's state for one Enterprise Gateway application: :class:`GatewayRuntime`.

Everything the plugin keeps while a gateway runs lives in one object per EG application: its
settings, its Kubernetes API client, its JupyterKernel watch, its orphan sweep, its kernelspec
sync, the process proxies alive, their background tasks, its JupyterGateway uid, the clients of
its notebooks and the owners of its kernels, and this replica's name. Nothing of it is
process-wide, so a test (or a process hosting several gateways) can hold several applications,
each with its own runtime, and they share no watch, client, task or kernelspec.

How every object finds its application's runtime
------------------------------------------------
Enterprise Gateway builds the plugin's objects itself, from class names in its configuration and
in kernel.json, so none can be handed the runtime in its constructor. But EG builds every one of
them inside a traitlets ``parent`` chain that ends at its application:

* the kernelspec manager, the kernel manager and the kernel session manager: ``parent`` = app;
* each kernel's ``RemoteKernelManager``: ``parent`` = the kernel manager (EG's
  ``mapping_kernel_manager``), for new kernels and for revived sessions alike;
* each process proxy gets that ``RemoteKernelManager`` (its first constructor argument);
* request handlers carry the kernel manager in their tornado ``settings``.

:meth:`GatewayRuntime.of` walks that chain to its root and keeps the runtime *on the root
object* (the attribute :data:`ATTRIBUTE`): the application owns its runtime, and there is no
registry. The first object of ours that EG builds (the kernelspec manager) creates it; a test
or a caller wanting other settings :meth:`attaches <GatewayRuntime.attach>` one first.

Two things are process-wide by nature and stay so: Enterprise Gateway's ``ResponseManager`` (one
RSA key and response port per process; :mod:`.kernel_secret` keeps the expected launch tokens on
that EG object), and the class-level patches of EG's handlers (:mod:`.client_auth`), which find
the runtime of the handler's own application on every request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from . import client_auth, kernel_secret, restart_reason
from .gateway_boot import OrphanSweeper, is_gateway_app
from .kernel_resource import GatewayRef
from .kernel_watch import KernelWatch
from .kube import ApiError, KubeApi
from .launcher import gateway_ref
from .settings import GatewaySettings

if TYPE_CHECKING:
    from .kernelspec_sync import KernelSpecSync

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The attribute of the root object (EG's application) that holds its runtime.
ATTRIBUTE = "_elastic_jupyter_runtime"

# Guards only the creation of a runtime on an object (two first users racing); holds no state.
_attach_lock = threading.Lock()


def root_of(obj: Any) -> Any:
    """The end of ``obj``'s traitlets ``parent`` chain (EG's application for EG's objects)."""
    seen = {id(obj)}
    while True:
        parent = getattr(obj, "parent", None)
        if parent is None or id(parent) in seen:
            return obj
        seen.add(id(parent))
        obj = parent


def replica_name(env: Mapping[str, str]) -> str:
    """A gateway replica's identity: its pod name (``POD_NAME``), else the host name."""
    return env.get("POD_NAME") or socket.gethostname()


class GatewayRuntime:
    """What the plugin holds for one Enterprise Gateway application (see the module doc).

    Built by :meth:`of` the first time one of EG's objects asks for it (normally the
    kernelspec manager's constructor, while ``init_configurables`` runs), or by a caller that
    wants its own settings, client or kernelspec sync and :meth:`attach` es it before EG builds
    its objects. Members that cost something (credentials, threads) start on first use.
    """

    def __init__(
        self,
        app: Any = None,
        *,
        env: Mapping[str, str] | None = None,
        settings: GatewaySettings | None = None,
        api: KubeApi | None = None,
        kernelspec_sync: KernelSpecSync | None = None,
        replica: str | None = None,
    ) -> None:
        #: EG's application (``None`` for a runtime outside EG, e.g. ``jupyter kernelspec``).
        self.app = app if is_gateway_app(app) else None
        #: The environment the settings, credentials and kernelspec sync are read from.
        self.env: Mapping[str, str] = os.environ if env is None else env
        #: This replica's name, written as the kernels' ``gateway-owner`` (see :mod:`.adoption`).
        self.replica = replica or replica_name(self.env)
        #: Process proxies of this application (added in their constructor, removed on cleanup).
        self.live: weakref.WeakSet[Any] = weakref.WeakSet()
        #: Background API calls started from EG's synchronous callbacks (kept until done).
        self.tasks: set[asyncio.Task[Any]] = set()
        self.sweeper: OrphanSweeper | None = None
        self._settings = settings
        self._api = api
        self._watch: KernelWatch | None = None
        self._gateway: GatewayRef | None = None
        self._clients: client_auth.ClientAuth | None = None
        self._kernelspec_sync = kernelspec_sync
        # Built members are read without a lock (EG's loop reads them in poll()); the locks only
        # serialise building them. The slow ones (a GET, a first listing) have their own lock.
        self._lock = threading.RLock()
        self._gateway_lock = threading.Lock()
        self._sync_lock = threading.Lock()

    # --- where it lives -------------------------------------------------------------------

    @classmethod
    def of(cls, obj: Any) -> GatewayRuntime:
        """The runtime of the application ``obj`` belongs to; created on the first call.

        Called by every object of the plugin that EG builds: the kernelspec managers and the
        session manager (``parent`` = the app), the process proxy (with its kernel manager),
        client auth (with the handler's kernel manager).
        """
        root = root_of(obj)
        runtime = getattr(root, ATTRIBUTE, None)
        if isinstance(runtime, GatewayRuntime):
            return runtime
        with _attach_lock:
            runtime = getattr(root, ATTRIBUTE, None)
            if not isinstance(runtime, GatewayRuntime):
                runtime = cls(root)
                setattr(root, ATTRIBUTE, runtime)
        return runtime

    def attach(self, app: Any) -> GatewayRuntime:
        """Make this the runtime of ``app`` (before EG builds its objects); return it.

        Called by tests and embedders that run an application with their own settings, API
        client or environment; EG's own start-up never needs it (:meth:`of` creates one).
        """
        with _attach_lock:
            if isinstance(getattr(app, ATTRIBUTE, None), GatewayRuntime):
                raise RuntimeError(f"{app!r} has its elastic-jupyter runtime already")
            if self.app is None and is_gateway_app(app):
                self.app = app
            setattr(app, ATTRIBUTE, self)
        return self

    # --- members --------------------------------------------------------------------------

    @property
    def settings(self) -> GatewaySettings:
        """The gateway's settings, read once from :attr:`env` (raises ``SettingsError``)."""
        settings = self._settings
        if settings is None:
            with self._lock:
                if self._settings is None:
                    self._settings = GatewaySettings.from_env(self.env)
                settings = self._settings
        return settings

    @property
    def api(self) -> KubeApi:
        """The gateway's Kubernetes client, loading credentials on first use (blocking)."""
        api = self._api
        if api is None:
            with self._lock:
                if self._api is None:
                    self._api = KubeApi.from_environment(env=self.env)
                api = self._api
        return api

    @property
    def api_loaded(self) -> bool:
        """Whether :attr:`api` has its credentials already (the first load blocks)."""
        return self._api is not None

    @property
    def watch(self) -> KernelWatch:
        """The JupyterKernel watch of this gateway, started on first use.

        First used by :meth:`start_services` (gateway boot) or, on a gateway without the
        plugin's kernelspec manager, by the first kernel launch or session revival.
        """
        watch = self._watch
        if watch is None:
            with self._lock:
                if self._watch is None:
                    self._watch = KernelWatch.for_gateway(self.settings, self.api)
                    self._watch.start()
                watch = self._watch
        return watch

    @property
    def clients(self) -> client_auth.ClientAuth:
        """This gateway's notebook clients (token registry) and the owners of its kernels."""
        clients = self._clients
        if clients is None:
            with self._lock:
                if self._clients is None:
                    self._clients = client_auth.ClientAuth(
                        lambda: client_auth.ClientRegistry(
                            self.api, self.settings.gateway_namespace, self.settings.gateway_name
                        ),
                        self._owner_from_watch,
                    )
                clients = self._clients
        return clients

    def _owner_from_watch(self, kernel_id: str) -> str | None:
        watch = self._watch
        if watch is None:
            return None
        return next((s.client for s in watch.all() if s.kernel_id == kernel_id and s.client), None)

    def gateway_ref(self) -> GatewayRef:
        """This gateway's JupyterGateway (name, namespace, uid), looked up once (blocking).

        Called by the process proxy's launches (owner reference, ``gateway-uid`` label), the
        orphan sweep and the session store (whose kernels are ours). A failed lookup other than
        403/404 raises ``ApiError`` and is tried again next time.
        """
        gateway = self._gateway
        if gateway is None:
            with self._gateway_lock:
                if self._gateway is None:
                    self._gateway = gateway_ref(self.api, self.settings)
                gateway = self._gateway
        return gateway

    def gateway_uid(self) -> str | None:
        """The JupyterGateway's uid, ``None`` when it has none or cannot be read now."""
        try:
            return self.gateway_ref().uid
        except ApiError as err:
            log.warning("Cannot read this gateway's JupyterGateway: %s", err)
            return None

    def kernelspec_sync(self) -> KernelSpecSync:
        """The kernelspec sync of this gateway, started on first use (waits for its first
        listing, up to ``INITIAL_SYNC_TIMEOUT``). Called by ``SyncedKernelSpecManager``."""
        with self._sync_lock:
            if self._kernelspec_sync is None:
                from .kernelspec_sync import start_kernelspec_sync

                self._kernelspec_sync = start_kernelspec_sync(self.env)
            return self._kernelspec_sync

    # --- life -----------------------------------------------------------------------------

    def start_services(self) -> KernelWatch:
        """Start the watch and the orphan sweep, install client auth and the launch-token
        check; return the watch. Idempotent, blocking (it may load the credentials).

        Called by the kernelspec managers' constructors while EG initializes (the boot hook,
        :func:`.kernelspec_sync.boot_gateway_services`), by the session store's constructor,
        and by the process proxy before it launches or revives a kernel (a gateway configured
        without the plugin's kernelspec manager).
        """
        watch = self.watch
        if self.sweeper is not None:  # started already (the proxy asks on every poll())
            return watch
        client_auth.install(clients_of_handler)
        kernel_secret.install()
        restart_reason.install()
        with self._lock:
            if self.sweeper is None:
                self.sweeper = OrphanSweeper(
                    self.settings,
                    watch,
                    self.api,
                    lambda: self.app,
                    live=self.live,
                    gateway_uid=self.gateway_uid,
                )
                self.sweeper.start()
        return watch

    def stop(self) -> None:
        """Stop the threads this runtime started (watch, sweep, kernelspec sync).

        Called by the session store's detach when the gateway process stops, and by tests
        that end an application inside a longer-lived process.
        """
        with self._lock:
            if self.sweeper is not None:
                self.sweeper.stop()
            if self._watch is not None:
                self._watch.stop()
        if self._kernelspec_sync is not None:
            self._kernelspec_sync.stop()

    def background(self, func: Callable[[], T]) -> None:
        """Run blocking ``func`` on the API client's thread pool without waiting.

        Called from EG's synchronous callbacks (the process proxy's kill/terminate/cleanup);
        outside an event loop it runs inline. The task is kept in :attr:`tasks` until done.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            func()
            return
        task = loop.create_task(self.api.run(func))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def clients_of_handler(handler: Any) -> client_auth.ClientAuth:
    """The client auth of the application a request handler serves (through the kernel
    manager EG puts in every handler's ``settings``). Called by :mod:`.client_auth`'s patched
    handlers on each request."""
    manager = (getattr(handler, "settings", None) or {}).get("kernel_manager")
    if manager is None:
        raise RuntimeError("request handler without Enterprise Gateway's kernel manager")
    return GatewayRuntime.of(manager).clients
