"""Who is calling the gateway, and which kernels they may see and touch.

Enterprise Gateway 3.3 knows one secret, ``EG_AUTH_TOKEN``, checked by
``TokenAuthorizationMixin.prepare`` in front of every handler (kernels, websocket channels,
sessions, kernelspecs). With it alone, every notebook sharing a gateway could list, open,
interrupt, restart and shut down every other notebook's kernels. So at gateway boot
(:func:`install`, called by :meth:`.gateway_runtime.GatewayRuntime.start_services`) this module
replaces that ``prepare``:

* the admin token (``EG_AUTH_TOKEN``, the ``<gateway>-auth`` Secret) still works and sees
  everything (administrators, tests, tooling);
* every other token must be one the operator issued to a granted JupyterNotebook: the operator
  keeps the SHA-256 digest of each notebook's own token in the Secret ``<gateway>-clients``
  (key ``<namespace>.<notebook>``), which this module reads (by name, cached for
  ``REFRESH_SECONDS``, so a revoked notebook loses access within seconds). The caller is then
  the client ``<namespace>.<notebook>``;
* a kernel belongs to the client that started it (:attr:`ClientAuth.owners`, the JupyterKernel's
  ``kubeflow.tkestack.io/client`` annotation, the persisted session). A client reaching for a
  kernel of another client - ``/api/kernels/<id>``, its ``interrupt``/``restart`` actions, its
  ``channels`` websocket - gets 404, and ``GET /api/kernels`` lists only its own kernels;
* EG's ``/api/sessions`` is for the admin token only (notebook servers keep their sessions
  themselves and never call it).

The patches are class-level (EG's handler classes are shared by every application of the
process), so they hold no state: on each request they ask for the :class:`ClientAuth` of the
handler's own application (its runtime's, :mod:`.gateway_runtime`).
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tornado import web

from elastic_jupyter import crds

from .kube import ApiError, KubeApi

log = logging.getLogger(__name__)

#: The client name of the admin token.
ADMIN = "<admin>"
__all__ = ["ADMIN", "ClientAuth", "ClientRegistry", "install"]
#: Seconds a read of the clients Secret is trusted (revocation delay).
REFRESH_SECONDS = 3.0
#: A token not found triggers a fresh read at most this often (new notebooks appear fast).
MISS_REFRESH_SECONDS = 0.5

#: The client of the request being handled (read by the process proxy while it launches; a
#: context variable: each request's task sees its own).
CURRENT_CLIENT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ej_client", default=None
)
#: Set on the patched ``prepare``: the patches are in place (they are per process).
_PATCHED = "_elastic_jupyter_client_auth"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ClientRegistry:
    """The gateway's clients Secret, read by name and cached: token digest → client name."""

    def __init__(self, api: KubeApi, namespace: str, gateway_name: str) -> None:
        self.api = api
        self.namespace = namespace
        self.secret_name = crds.gateway_clients_secret_name(gateway_name)
        self._clients: dict[str, str] = {}
        self._read_at = 0.0
        self._lock = threading.Lock()

    def _read(self) -> dict[str, str]:
        path = f"/api/v1/namespaces/{self.namespace}/secrets/{self.secret_name}"
        try:
            secret = self.api.request("GET", path, timeout=5.0)
        except ApiError as err:
            if not err.not_found:
                log.warning("cannot read the clients Secret %s: %s", path, err)
                return self._clients  # keep what we knew rather than lock everyone out
            return {}
        clients = {}
        for key, value in (secret.get("data") or {}).items():
            try:
                clients[base64.b64decode(value).decode("ascii").strip()] = str(key)
            except (ValueError, UnicodeDecodeError):
                continue
        return clients

    def client_of(self, token: str) -> str | None:
        """The client owning ``token``, or None (blocking: run it off the event loop)."""
        wanted = digest(token)
        now = time.monotonic()
        with self._lock:
            age = now - self._read_at
            if age > REFRESH_SECONDS or (
                wanted not in self._clients and age > MISS_REFRESH_SECONDS
            ):
                self._clients = self._read()
                self._read_at = time.monotonic()
            for known, client in self._clients.items():
                if hmac.compare_digest(known, wanted):
                    return client
        return None


def _client_token(handler: Any) -> str | None:
    """The token of a request: ``?token=`` or ``Authorization: token …`` (EG's own rules)."""
    token = handler.get_argument("token", None)
    if token is None:
        header = handler.request.headers.get("Authorization") or ""
        token = header[len("token ") :] if header.startswith("token ") else None
    return str(token) if token is not None else None


class ClientAuth:
    """One gateway application's notebook clients and the owners of its kernels.

    Held by the application's runtime (:attr:`.gateway_runtime.GatewayRuntime.clients`). The
    patched handlers call :meth:`client_of` and :meth:`may_use` on each request; the process
    proxy calls :meth:`record_owner` when it launches or revives a kernel and reads
    :attr:`owners` into the kernel's session.
    """

    def __init__(
        self,
        registry_factory: Callable[[], ClientRegistry],
        owner_lookup: Callable[[str], str | None] | None = None,
    ) -> None:
        #: kernel id → the client that started it.
        self.owners: dict[str, str] = {}
        self._registry_factory = registry_factory
        #: Finds the owner of a kernel this process did not start (another replica's, after a
        #: restart without persisted owner): the ``…/client`` annotation in the watch cache.
        self._owner_lookup = owner_lookup
        self._registry: ClientRegistry | None = None
        self._lock = threading.Lock()

    @property
    def registry(self) -> ClientRegistry:
        """The clients Secret reader, built at the first request with a notebook token."""
        with self._lock:
            if self._registry is None:
                self._registry = self._registry_factory()
            return self._registry

    async def client_of(self, token: str) -> str | None:
        """The client owning ``token`` (read off the event loop), or None."""
        registry = self.registry
        return await registry.api.run(registry.client_of, token)

    def may_use(self, client: str | None, kernel_id: str) -> bool:
        """Whether ``client`` may see and control ``kernel_id`` (admin: every kernel)."""
        if client in (None, ADMIN):
            return True
        owner = self.owners.get(kernel_id)
        if owner is None and self._owner_lookup is not None:
            owner = self._owner_lookup(kernel_id)
            if owner:
                self.owners[kernel_id] = owner
        return owner == client

    def record_owner(self, kernel_id: str, client: str | None) -> str | None:
        """Note who started ``kernel_id`` (a restart by the restarter keeps the first owner)."""
        if client is not None:
            self.owners[kernel_id] = client
        return self.owners.get(kernel_id)


def install(clients_of: Callable[[Any], ClientAuth]) -> None:
    """Replace EG's token check and kernel listing (once per process: class-level patches).

    ``clients_of(handler)`` returns the :class:`ClientAuth` of the application the handler
    serves. Called by every runtime's ``start_services``; later calls change nothing.
    """
    from enterprise_gateway import mixins
    from enterprise_gateway.services.kernels import handlers as kernel_handlers

    token_mixin: Any = mixins.TokenAuthorizationMixin
    if getattr(token_mixin.prepare, _PATCHED, False):
        return

    async def prepare(self: Any) -> None:
        server_token = self.settings.get("eg_auth_token")
        client: str | None = None
        if server_token and self.request.method != "OPTIONS":
            token = _client_token(self)
            if token is not None and hmac.compare_digest(token, str(server_token)):
                client = ADMIN
            elif token:
                client = await clients_of(self).client_of(token)
            if client is None:
                self.send_error(401)
                return
            self._ej_client = client
            CURRENT_CLIENT.set(client)
            _authorize(self, clients_of(self), client)
        result = super(token_mixin, self).prepare()
        if result is not None:
            await result

    setattr(prepare, _PATCHED, True)
    token_mixin.prepare = prepare
    main_handler: Any = kernel_handlers.MainKernelHandler

    async def list_kernels(self: Any) -> None:
        if not self.settings.get("eg_list_kernels"):
            raise web.HTTPError(403, "Forbidden")
        kernels = self.kernel_manager.list_kernels()
        if hasattr(kernels, "__await__"):
            kernels = await kernels
        client = getattr(self, "_ej_client", None)
        clients = clients_of(self)
        visible = [k for k in kernels if clients.may_use(client, str(k.get("id")))]
        from jupyter_client.jsonutil import date_default

        self.finish(json.dumps(visible, default=date_default))

    main_handler.get = web.authenticated(list_kernels)
    log.info("client auth: per-notebook tokens and kernel ownership are enforced")


def _authorize(handler: Any, clients: ClientAuth, client: str) -> None:
    """Refuse a client's request for a kernel (or session) that is not its own."""
    if client == ADMIN:
        return
    path = handler.request.path
    if "/api/sessions" in path:
        raise web.HTTPError(
            403,
            reason="The gateway's /api/sessions API needs the admin token; notebook servers "
            "manage their sessions themselves and use /api/kernels",
        )
    kernel_id = (getattr(handler, "path_kwargs", None) or {}).get("kernel_id")
    if kernel_id and not clients.may_use(client, str(kernel_id)):
        log.warning("client auth: %s refused access to kernel %s", client, kernel_id)
        raise web.HTTPError(
            404,
            reason=f"Kernel does not exist: {kernel_id} (or it belongs to another client of "
            "this gateway)",
        )
