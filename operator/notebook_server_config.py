"""The notebook server's ``jupyter_server_config.py`` behind a JupyterGateway (never imported).

The operator ships this file's text in the ConfigMap ``<notebook>-config`` (see
:mod:`.notebook_config`, which also explains the three upstream bugs it works around), and
jupyter_server 2 executes it at start-up, with ``get_config`` in its namespace. It lives here as a
real module so that ruff and mypy check it like the rest of the operator; importing it anywhere
else would fail (``get_config`` exists only inside jupyter_server's config loader).

It imports only jupyter_server and tornado, resolved at run time with :func:`_module`, so the
same file works on any notebook image with jupyter_server 2 (our package need not be installed
there) and does nothing on jupyter_server 1.x, which has no pluggable kernel websocket class.
"""

from __future__ import annotations

import functools
import importlib
import json
import uuid
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

# jupyter_server's config loader defines `c` (and `get_config`, which returns the same object)
c: Any = globals().get("c") or get_config()  # type: ignore[name-defined]  # noqa: F821


def _module(name: str) -> ModuleType | None:
    """The module, or None where this jupyter_server lacks it (1.x)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_connections = _module("jupyter_server.gateway.connections")
_client = _module("jupyter_server.gateway.gateway_client")
_managers = _module("jupyter_server.gateway.managers")
_kernel_handlers = _module("jupyter_server.services.kernels.handlers")
_kernelspec_handlers = _module("jupyter_server.services.kernelspecs.handlers")
_utils = _module("jupyter_server.utils")
_escape = _module("tornado.escape")
_httpclient = _module("tornado.httpclient")
_ioloop = _module("tornado.ioloop")
_web = _module("tornado.web")
_websocket = _module("tornado.websocket")


def _close_when_open(future: Any) -> None:
    """Close a gateway websocket whose browser websocket went away during its handshake."""
    if not future.cancelled() and future.exception() is None:
        future.result().close()


def _gateway_message(body: bytes | None) -> str | None:
    """The message of the gateway's error answer (EG: {"reason", "message"}), or None."""
    text = (body or b"").decode("utf-8", "replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return text or None
    if not isinstance(payload, dict):
        return text or None
    return str(payload.get("message") or payload.get("reason") or "").strip() or None


def _no_answer(url: str, what: str) -> str:
    """What the user reads when the gateway stopped answering in the middle of a request."""
    return (
        f"The gateway at {url} stopped answering during the request ({what}): it is probably "
        "restarting (a rollout, a node drain or a crash). Running kernels keep running and are "
        "served again when it is back; a kernel that was starting may not have started. Try "
        "again in a few seconds."
    )


def _install_connection_class(connections: Any) -> None:
    """Fix 1: one gateway session key per browser websocket; no orphan gateway websockets."""
    assert _utils is not None and _escape is not None and _httpclient is not None
    assert _ioloop is not None and _websocket is not None
    utils, escape, httpclient, ioloop, websocket = _utils, _escape, _httpclient, _ioloop, _websocket

    class ElasticJupyterGatewayConnection(connections.GatewayWebSocketConnection):  # type: ignore[misc]
        """The gateway websocket of one browser websocket: its own session key at the
        gateway, and closed even when the browser leaves before it is open."""

        _gateway_session_key: str | None = None

        async def connect(self) -> None:
            if self._gateway_session_key is None:  # kept across this connection's retries
                suffix = uuid.uuid4().hex[:8]
                self._gateway_session_key = f"{self.session_id or 'ws'}-{suffix}"
            client = connections.GatewayClient.instance()
            url = utils.url_path_join(
                client.ws_url or "",
                client.kernels_endpoint,
                escape.url_escape(self.kernel_id),
                "channels",
            )
            url += f"?session_id={escape.url_escape(self._gateway_session_key)}"
            self.log.info(f"Connecting to {url}")
            self.ws = None
            request = httpclient.HTTPRequest(url, **client.load_connection_args())
            self.ws_future = websocket.websocket_connect(request)
            self.ws_future.add_done_callback(self._connection_done)
            ioloop.IOLoop.current().add_future(self.ws_future, lambda _: self._read_messages())

        def disconnect(self) -> None:
            future = self.ws_future
            if self.ws is None and future is not None and not future.done():
                # Cancelling (what the base class does) drops the result but not the
                # connection: keep the future and close the websocket once it is open.
                self.disconnected = True
                future.add_done_callback(_close_when_open)
                return
            super().disconnect()

    c.ServerApp.kernel_websocket_connection_class = ElasticJupyterGatewayConnection


def _install_readable_errors(client_module: Any, managers: Any, web: Any, http: Any) -> None:
    """Fix 2: an error answer of the gateway reaches the user as the gateway's own message."""

    class ElasticJupyterGatewayError(web.HTTPError):  # type: ignore[misc]
        """An error answer of the gateway: its own message is the readable text, both as
        the JSON "message" of /api/kernels and as str() (what /api/sessions wraps)."""

        def __init__(self, status_code: int, message: str) -> None:
            self._gateway_message = message
            super().__init__(status_code)

        # The API handler replies with log_message, which tornado >= 6.5 escapes ("%%"):
        # return the text itself (tornado < 6.5 assigns the attribute in __init__).
        @property
        def log_message(self) -> str:
            return self._gateway_message

        @log_message.setter
        def log_message(self, value: object) -> None:
            pass

        def get_message(self) -> str:
            return self._gateway_message

        def __str__(self) -> str:
            return self._gateway_message

    upstream = client_module.gateway_request

    async def gateway_request(endpoint: str, **kwargs: Any) -> Any:
        try:
            return await upstream(endpoint, **kwargs)
        except web.HTTPError as error:
            cause = error.__cause__
            if not isinstance(cause, http.HTTPClientError):
                raise
            response = getattr(cause, "response", None)
            if response is None and cause.code == 599:
                # Connected, then no answer (the stream closed or timed out): the url is right,
                # the gateway went away mid-request; "ensure the url is valid" would mislead.
                url = client_module.GatewayClient.instance().url
                raise ElasticJupyterGatewayError(503, _no_answer(url, cause.message)) from cause
            # The gateway answered: its url is valid and it runs, so say what it said.
            message = _gateway_message(response.body) if response is not None else None
            if not message:
                raise
            raise ElasticJupyterGatewayError(error.status_code, message) from cause

    # managers imported it by name: replace both references
    client_module.gateway_request = gateway_request
    managers.gateway_request = gateway_request


Method = Callable[..., Awaitable[Any]]


def _install_gateway_default(managers: Any, kernels: Any, kernelspecs: Any) -> None:
    """Fix 3: the first listing or start already uses the gateway's default kernel name."""
    specs_class = managers.GatewayKernelSpecManager

    def with_the_gateways_default(method: Method) -> Method:
        """An API method that runs once the server has adopted the gateway's default kernel
        name (jupyter_server reads its own, python3, before its first listing would adopt it)."""

        @functools.wraps(method)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            specs = self.kernel_spec_manager
            if (
                self.current_user  # else the upstream check refuses: no gateway request
                and isinstance(specs, specs_class)
                and not getattr(specs, "_adopted_gateway_default", False)
            ):
                await specs.get_all_specs()  # sets kernel_manager.default_kernel_name
                specs._adopted_gateway_default = True  # later listings keep it current
            return await method(self, *args, **kwargs)

        return wrapper

    listing = kernelspecs.MainKernelSpecHandler
    listing.get = with_the_gateways_default(listing.get)
    starting = kernels.MainKernelHandler
    starting.post = with_the_gateways_default(starting.post)


if _connections is not None:
    _install_connection_class(_connections)
    if _client is not None and _managers is not None and _web is not None:
        _install_readable_errors(_client, _managers, _web, _httpclient)
    if _managers is not None and _kernel_handlers is not None and _kernelspec_handlers is not None:
        _install_gateway_default(_managers, _kernel_handlers, _kernelspec_handlers)
