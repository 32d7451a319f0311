"""What one notebook server process holds for its direct-mode kernels: one of each.

Settings (:mod:`.settings`), the Kubernetes client (``KUBECONFIG`` when set, else in-cluster;
loaded on first use, never at import), one watch on this server's JupyterKernels (the gateway
plugin's :class:`~elastic_jupyter.gateway_plugin.kernel_watch.KernelWatch` with the notebook's
label selector) and one response address (:class:`~elastic_jupyter.gateway_plugin.
response_listener.ResponseListener`, started on the server's event loop by the first launch).

jupyter_client builds provisioners from entry points with no handle on the application, so the
runtime is per process (:meth:`DirectRuntime.current`); a test may :meth:`install` its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Mapping
from urllib.parse import urlparse

from elastic_jupyter.gateway_plugin.kernel_watch import KernelWatch
from elastic_jupyter.gateway_plugin.kube import KubeApi
from elastic_jupyter.gateway_plugin.response_listener import ResponseListener

from .settings import DirectSettings

log = logging.getLogger(__name__)

USER_AGENT = "elastic-jupyter-provisioner/0.1"
#: How long a launch or an adoption waits for the first list of the kernel namespace.
SYNC_WAIT_SECONDS = 10.0


def kubeconfig_namespace(env: Mapping[str, str]) -> str:
    """The namespace of the kubeconfig's current context ('' in-cluster or when unset)."""
    path = env.get("KUBECONFIG")
    if not path:
        return ""
    try:
        from kubernetes import config

        _, active = config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    except Exception as err:  # a broken kubeconfig fails again, clearly, when the API loads
        log.debug("cannot read the kubeconfig's contexts: %s", err)
        return ""
    return str(((active or {}).get("context") or {}).get("namespace") or "")


def address_towards(url: str) -> str:
    """This host's address on the route to ``url``'s host (no packet is sent)."""
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port or 443
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, port))
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


class DirectRuntime:
    """Settings, API client, kernel watch and response address of one notebook server."""

    _current: DirectRuntime | None = None
    _current_lock = threading.Lock()

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.settings = DirectSettings.from_env(self.env, kubeconfig_namespace(self.env))
        self._api: KubeApi | None = None
        self._watch: KernelWatch | None = None
        self._listener: ResponseListener | None = None
        self._lock = threading.Lock()
        self._listener_lock: asyncio.Lock | None = None

    @classmethod
    def current(cls) -> DirectRuntime:
        """The process's runtime, made on first use from ``os.environ``."""
        with cls._current_lock:
            if cls._current is None:
                cls._current = cls()
            return cls._current

    @classmethod
    def install(cls, runtime: DirectRuntime | None) -> None:
        """Make ``runtime`` the process's (``None``: the next use makes a fresh one)."""
        with cls._current_lock:
            cls._current = runtime

    @property
    def api(self) -> KubeApi:
        """The Kubernetes client (credentials load on first use: blocking)."""
        with self._lock:
            if self._api is None:
                self._api = KubeApi.from_environment(USER_AGENT, self.env)
            return self._api

    @property
    def api_loaded(self) -> bool:
        return self._api is not None

    @property
    def watch(self) -> KernelWatch:
        """The watch on this server's JupyterKernels, started on first use."""
        with self._lock:
            if self._watch is None:
                namespaces = self.settings.policy.boot_watch_namespaces
                api = self._api
                assert api is not None, "load the API client before the watch"
                self._watch = KernelWatch(api, namespaces, self.settings.kernel_selector, log)
                self._watch.start()
            return self._watch

    async def ready(self) -> None:
        """Load credentials and start the watch off the loop (first call only)."""
        if self._watch is None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, lambda: self.api)
            await loop.run_in_executor(None, lambda: self.watch)

    async def listener(self) -> ResponseListener:
        """The response address, started on the running loop by the first caller."""
        if self._listener is not None and self._listener.started:
            return self._listener
        if self._listener_lock is None:
            self._listener_lock = asyncio.Lock()
        async with self._listener_lock:
            if self._listener is None:
                await self.ready()
                settings = self.settings
                advertise = settings.response_ip or address_towards(self.api.host)
                bind = settings.bind_ip or advertise
                self._listener = ResponseListener(bind, settings.response_port, advertise)
            await self._listener.start()
        return self._listener
