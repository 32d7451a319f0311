"""The sandbox Kubernetes API server: HTTP routing, watch streams, logs proxy, observability.

Started in-process with :func:`start_apiserver` (tests, the sandbox CLI) or mounted from
:func:`create_app`. It serves plain HTTP on a loopback address; kopf, the official
``kubernetes`` client, Enterprise Gateway and kubectl talk to it through a kubeconfig.

Semantics live in :mod:`.state` (objects, GC, namespaces, CRDs) and :mod:`.store` (history,
watch fan-out); this module translates URLs and query parameters, encodes responses
(JSON, ``Table`` for kubectl), streams watches and proxies ``pods/log`` to the kubelet named by
the pod's Node (``status.addresses`` InternalIP + ``status.daemonEndpoints.kubeletEndpoint``).

Every request is authenticated and authorized first (:mod:`.access`, :mod:`.rbac`): bearer
tokens, impersonation headers, RBAC with kube-apiserver's 403 wording, escalation checks on
RBAC writes, and the access-review and TokenRequest APIs. ``create_app(rbac=False)`` turns that
off (debugging only: every request then acts as a superuser).

Extra endpoints for benchmarks and reliability tests (not part of Kubernetes; admin only):
``GET /sandbox/stats``, ``POST /sandbox/stats/reset``, ``GET /sandbox/requests?limit=N``,
``GET|POST /sandbox/faults`` and ``POST /sandbox/restart`` (see :mod:`.faults`),
``POST /sandbox/tokens`` (a token for a named user),
``POST /sandbox/nodes/{name}/crash|start`` (node loss, :mod:`.nodes`).

Where each part lives: this module holds the middleware (errors, faults, counting,
authentication and authorization), the ``/api``/``/apis`` dispatch, watch streams, the
lifecycle and the entry points; :mod:`.routing` parses URLs and query parameters,
:mod:`.responses` encodes bodies, :mod:`.verbs` handles the verbs on resources,
:mod:`.podlog` proxies ``pods/log``, :mod:`.nonresource` serves ``/version``, ``/openapi`` and
``/sandbox/*``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from . import discovery, errors, rbac_defaults, tables
from .access import ANONYMOUS_USER, REVIEW_PLURALS, Access, forbidden, unauthorized
from .errors import ApiError
from .faults import RUNNER, Faults, restart_handler
from .nonresource import NonResourceHandlers
from .podlog import PodLogProxy
from .rbac import Attributes, UserInfo
from .resources import ResourceType
from .responses import _STATUS_REASONS, _dumps, error_response, json_response, view
from .routing import (
    PATH_INFO,
    USER,
    PathInfo,
    _float_param,
    _truthy,
    k8s_verb,
    parse_path,
    request_attributes,
)
from .selectors import Selector
from .state import NAMESPACES, ApiState
from .stats import FaultConfig, RequestRecord, RequestStats, user_agent_product
from .store import Event, Watcher
from .tls import ServingCert
from .verbs import VerbHandlers

log = logging.getLogger(__name__)

JsonObj = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# which methods each subresource answers (others: 405 MethodNotAllowed)
_SUBRESOURCE_METHODS = {
    "status": ("GET", "PUT", "PATCH"),
    "scale": ("GET", "PUT", "PATCH"),
    "binding": ("POST",),
    "log": ("GET",),
    "finalize": ("PUT",),
    "token": ("POST",),
}


class WatchEncoder:
    """Encodes the lines of one watch stream: objects, or ``Table`` rows for ``kubectl get -w``."""

    def __init__(self, rt: ResourceType, as_table: bool, include: str | None) -> None:
        self.rt = rt
        self.as_table = as_table
        self.include = include
        self._columns_sent = False

    def encode(self, typ: str, obj: JsonObj, ev: Event | None) -> bytes:
        """One ``{"type": …, "object": …}`` line; plain events are encoded once per version."""
        rt = self.rt
        if self.as_table:
            body = tables.table(rt, [view(obj, rt)], 0, self.include, single=True)
            if self._columns_sent:
                body["columnDefinitions"] = []
            self._columns_sent = True
            return _dumps({"type": typ, "object": body}) + b"\n"
        if ev is not None:
            cached = ev.encoded.get(rt.api_version)
            if cached is None:
                cached = _dumps({"type": typ, "object": view(obj, rt)}) + b"\n"
                ev.encoded[rt.api_version] = cached
            return cached
        return _dumps({"type": typ, "object": view(obj, rt)}) + b"\n"

    def bookmark(self, rv: int, initial_events_end: bool = False) -> bytes:
        """A BOOKMARK carrying the current resourceVersion."""
        meta: JsonObj = {"resourceVersion": str(rv)}
        if initial_events_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": self.rt.kind, "apiVersion": self.rt.api_version, "metadata": meta}
        return _dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


class ApiServer(PodLogProxy, VerbHandlers, NonResourceHandlers):
    """Request handlers over one :class:`ApiState`; stored in the app as ``app[SERVER]``."""

    def __init__(
        self,
        state: ApiState,
        stats: RequestStats,
        faults: FaultConfig,
        bookmark_interval: float,
        rbac: bool = True,
    ) -> None:
        self.state = state
        self.access = Access(state.store, enabled=rbac)
        for role in rbac_defaults.cluster_roles():
            state.create(state.rt(("rbac.authorization.k8s.io", "clusterroles")), None, role)
        for binding in rbac_defaults.cluster_role_bindings():
            state.create(
                state.rt(("rbac.authorization.k8s.io", "clusterrolebindings")), None, binding
            )
        self.stats = stats
        self.faults = faults if isinstance(faults, Faults) else Faults.extending(faults)
        self.bookmark_interval = bookmark_interval
        self.watchers: set[Watcher] = set()
        self.http: aiohttp.ClientSession | None = None
        self.closing = False
        self.node_control: Any = None  # a nodes.NodeControl when the sandbox runs kubelets

    # --- middleware -------------------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Errors → Status bodies; faults; request counting."""
        started = time.perf_counter()
        info = parse_path(request.path)
        request[PATH_INFO] = info
        verb = k8s_verb(request.method, info, request.query)
        agent = user_agent_product(request.headers.get("User-Agent", ""))
        if not request.path.startswith("/sandbox/"):
            # non-resource requests (discovery, /version, /openapi) are counted by path
            resource = info.plural if info is not None and info.is_resource else request.path
            self.stats.count(
                verb,
                info.group if info is not None and info.is_resource else "",
                resource,
                (info.subresource or "") if info is not None else "",
                agent,
            )
        status = 500
        try:
            request[USER] = self._authorize(request, info, verb)
            if info is not None and info.is_resource:
                fault = await self.faults.before(request.method, info.plural, agent)
                if fault is not None:
                    raise fault
            resp = await handler(request)
            status = resp.status
            return resp
        except ApiError as err:
            status = err.code
            return error_response(err)
        except web.HTTPException as exc:
            status = exc.status
            reason = _STATUS_REASONS.get(exc.status, "Unknown")
            message = (
                "the server could not find the requested resource"
                if exc.status == 404
                else exc.reason
            )
            return error_response(ApiError(exc.status, reason, message, {}))
        except (ConnectionResetError, asyncio.CancelledError):
            status = 499
            raise
        except Exception as exc:  # an unexpected bug: answer 500 without a traceback
            log.exception("sandbox apiserver: %s %s failed", request.method, request.path_qs)
            return error_response(errors.internal(f"{type(exc).__name__}: {exc}"))
        finally:
            if not request.path.startswith("/sandbox/"):
                self._record(request, info, verb, status, started)

    def _authorize(self, request: web.Request, info: PathInfo | None, verb: str) -> UserInfo:
        """Authenticate, impersonate, authorize: the user, or 401/403."""
        access = self.access
        user = access.authenticate(request)
        if request.path.startswith("/sandbox/"):
            if user is None:
                raise unauthorized()
            if not user.is_superuser:
                raise forbidden(user, Attributes(verb, path=request.path))
            return user
        anonymous = user is None
        user = ANONYMOUS_USER if user is None else access.impersonate(user, request)
        attrs = request_attributes(request.path, info, verb, request.query)
        if not access.authorizer.authorize(user, attrs):
            raise unauthorized() if anonymous else forbidden(user, attrs)
        return user

    def _record(
        self, request: web.Request, info: PathInfo | None, verb: str, status: int, started: float
    ) -> None:
        self.stats.record(
            RequestRecord(
                time=time.time(),
                method=request.method,
                path=request.path,
                query=request.query_string,
                verb=verb,
                group=info.group if info and info.is_resource else "",
                resource=info.plural if info and info.is_resource else request.path,
                subresource=(info.subresource or "") if info else "",
                namespace=(info.namespace or "") if info else "",
                name=(info.name or "") if info else "",
                user_agent=user_agent_product(request.headers.get("User-Agent", "")),
                status=status,
                duration_ms=(time.perf_counter() - started) * 1000.0,
                user=user.name if (user := request.get(USER)) is not None else "",
            )
        )

    # --- the API ------------------------------------------------------------------------------
    async def api(self, request: web.Request) -> web.StreamResponse:
        """Every ``/api`` and ``/apis`` URL: discovery documents and resources."""
        info: PathInfo | None = request[PATH_INFO]
        if info is None:
            raise errors.plain_not_found()
        reg = self.state.registry
        if not info.is_resource:
            if request.method != "GET":
                raise errors.method_not_allowed(request.method)
            doc: JsonObj | None
            if request.path.rstrip("/") == "/api":
                doc = discovery.api_versions(request.host)
            elif request.path.rstrip("/") == "/apis":
                doc = discovery.api_group_list(reg)
            elif info.version:
                doc = discovery.api_resource_list(reg, info.group, info.version)
            else:
                doc = discovery.api_group(reg, info.group)
            if doc is None:
                raise errors.plain_not_found()
            return json_response(doc)
        rt = reg.get(info.group, info.version, info.plural)
        if rt is None or (info.namespace is not None and not rt.namespaced):
            raise errors.plain_not_found()
        if (
            info.subresource
            and info.subresource not in rt.subresources
            and not (rt.key == NAMESPACES and info.subresource == "finalize")
        ):
            raise errors.plain_not_found()
        method = request.method
        if rt.key in REVIEW_PLURALS:
            if method != "POST" or info.name:
                raise errors.method_not_allowed(method)
            body, _ = await self._body(request)
            review = self.access.review(request[USER], rt.plural, info.namespace, body)
            return json_response(view(self._typed(rt, review), rt), status=201)
        allowed = _SUBRESOURCE_METHODS.get(info.subresource or "")
        if allowed is not None and method not in allowed:
            raise errors.method_not_allowed(method)
        if method == "GET":
            return await self._get(request, rt, info)
        if method == "POST":
            return await self._post(request, rt, info)
        if method in ("PUT", "PATCH"):
            return await self._write(request, rt, info)
        if method == "DELETE":
            return await self._delete(request, rt, info)
        raise errors.method_not_allowed(method)

    # --- watch --------------------------------------------------------------------------------
    async def _watch(
        self,
        request: web.Request,
        rt: ResourceType,
        info: PathInfo,
        predicate: Selector,
    ) -> web.StreamResponse:
        q = request.query
        store = self.state.store
        timeout = _float_param(q.get("timeoutSeconds"), "timeoutSeconds")
        bookmarks = _truthy(q.get("allowWatchBookmarks"))
        rv_text = q.get("resourceVersion") or ""
        initial_events = _truthy(q.get("sendInitialEvents"))
        encoder = WatchEncoder(
            rt, tables.wants_table(request.headers.get("Accept", "")), q.get("includeObject")
        )
        watcher = Watcher(rt.key, info.namespace, predicate)
        initial: list[tuple[str, JsonObj, Event | None]] = []
        expired: ApiError | None = None
        if rv_text in ("", "0") or initial_events:
            objs = sorted(
                (o for o in store.candidates(rt.key, info.namespace, predicate) if predicate(o)),
                key=lambda o: int(o["metadata"]["resourceVersion"]),
            )
            initial = [("ADDED", o, None) for o in objs]
        else:
            try:
                since = int(rv_text)
            except ValueError as exc:
                raise errors.bad_request(f"invalid resourceVersion: {rv_text!r}") from exc
            floor = store.oldest_replayable()
            agent = user_agent_product(request.headers.get("User-Agent", ""))
            if self.faults.gone_for_resume(rt.plural, agent, rv_text):
                expired = errors.gone(f"too old resource version: {since} (injected fault)")
            elif since < floor:
                expired = errors.gone(f"too old resource version: {since} ({floor + 1})")
            else:
                for past in store.history_since(rt.key, since):
                    seen = watcher.translate(past)
                    if seen is not None:
                        initial.append((seen[0], seen[1], past if seen[0] == past.type else None))
        # subscribe before the first await so no event falls between snapshot and live stream
        if expired is None:
            store.subscribe(watcher)
            self.watchers.add(watcher)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            if expired is not None:
                await resp.write(_dumps({"type": "ERROR", "object": expired.status()}) + b"\n")
                return resp
            for typ, obj, ev in initial:
                await resp.write(encoder.encode(typ, obj, ev))
            if initial_events:
                # the watch-list protocol: a bookmark marks the end of the initial state
                await resp.write(encoder.bookmark(store.rv, initial_events_end=True))
            await self._pump(request, resp, watcher, encoder, timeout, bookmarks)
            return resp
        except ConnectionResetError:  # the client went away: a normal end of a watch
            return resp
        finally:
            store.unsubscribe(watcher)
            self.watchers.discard(watcher)

    async def _pump(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        watcher: Watcher,
        encoder: WatchEncoder,
        timeout: float | None,
        bookmarks: bool,
    ) -> None:
        rt = encoder.rt
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + timeout if timeout else None
        agent = user_agent_product(request.headers.get("User-Agent", ""))
        next_bookmark = start + self.bookmark_interval
        while not self.closing:
            now = loop.time()
            if deadline is not None and now >= deadline:
                return
            # asked each time: faults switched on later cut the watches already open too
            drop_at = self.faults.drop_deadline(rt.plural, agent, start)
            if drop_at is not None and now >= drop_at:
                self.faults.injected["watchDrop"] += 1
                return
            if bookmarks and now >= next_bookmark:
                await resp.write(encoder.bookmark(self.state.store.rv))
                next_bookmark = now + self.bookmark_interval
            wake = min(
                x
                for x in (deadline, drop_at, next_bookmark if bookmarks else None, now + 5.0)
                if x is not None
            )
            queue = watcher.queue
            if queue.empty():
                try:
                    item = await asyncio.wait_for(queue.get(), max(0.0, wake - now))
                except asyncio.TimeoutError:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        return
                    continue
            else:
                item = queue.get_nowait()
            # Everything already queued goes out in one write: under a burst of changes this
            # saves a timer, a task and a socket send per event, and keeps the order.
            lines: list[bytes] = []
            while True:
                if item[0] == "STOP":
                    if lines:
                        await resp.write(b"".join(lines))
                    return
                lines.append(encoder.encode(*item))
                if queue.empty():
                    break
                item = queue.get_nowait()
            await resp.write(b"".join(lines))

    # --- lifecycle ------------------------------------------------------------------------------
    async def on_startup(self, app: web.Application) -> None:
        """Let namespace deletion finish "soon" on this loop, like the namespace controller."""
        loop = asyncio.get_running_loop()

        def defer(fn: Callable[[], None]) -> None:
            loop.call_soon(fn)

        self.state.set_deferrer(defer)

    async def on_shutdown(self, app: web.Application) -> None:
        """End open watch streams so the server stops promptly."""
        self.closing = True
        for watcher in list(self.watchers):
            watcher.queue.put_nowait(("STOP", {}, None))

    def cut_watches(self) -> None:
        """End every open watch stream (an API server restart)."""
        for watcher in list(self.watchers):
            watcher.queue.put_nowait(("STOP", {}, None))

    async def on_cleanup(self, app: web.Application) -> None:
        """Close the kubelet client session."""
        if self.http is not None:
            await self.http.close()


SERVER: web.AppKey[ApiServer] = web.AppKey("sandbox_apiserver", ApiServer)


def create_app(
    *,
    faults: FaultConfig | None = None,
    history_size: int = 5000,
    bookmark_interval: float = 5.0,
    rbac: bool = True,
) -> web.Application:
    """Build the aiohttp application (one in-memory cluster per app)."""
    server = ApiServer(
        ApiState(history_size), RequestStats(), faults or FaultConfig(), bookmark_interval, rbac
    )
    app = web.Application(middlewares=[server.middleware], client_max_size=64 * 1024 * 1024)
    app[SERVER] = server
    app.on_startup.append(server.on_startup)
    app.on_shutdown.append(server.on_shutdown)
    app.on_cleanup.append(server.on_cleanup)
    r = app.router
    r.add_get("/version", server.version)
    r.add_get("/version/", server.version)
    for path in ("/healthz", "/readyz", "/livez"):
        r.add_get(path, server.health)
    r.add_get("/openapi/v2", server.openapi_v2)
    r.add_get("/openapi/v3", server.openapi_v3)
    r.add_get("/openapi/v3/{tail:.*}", server.openapi_v3_gv)
    r.add_get("/sandbox/stats", server.get_stats)
    r.add_post("/sandbox/stats/reset", server.reset_stats)
    r.add_get("/sandbox/requests", server.get_requests)
    r.add_get("/sandbox/faults", server.get_faults)
    r.add_post("/sandbox/faults", server.set_faults)
    r.add_post("/sandbox/tokens", server.mint_token)
    r.add_post("/sandbox/nodes/{name}/{action}", server.node_action)
    r.add_post("/sandbox/restart", restart_handler(server))
    r.add_route("*", "/api", server.api)
    r.add_route("*", "/api/{tail:.*}", server.api)
    r.add_route("*", "/apis", server.api)
    r.add_route("*", "/apis/{tail:.*}", server.api)
    return app


@dataclass
class ApiServerHandle:
    """A running API server: where it listens and how to stop it."""

    url: str
    port: int
    app: web.Application
    runner: web.AppRunner
    secure_url: str = ""  # the TLS listener (what kubeconfigs name: kubectl needs TLS)

    @property
    def state(self) -> ApiState:
        """Direct access to the cluster state (tests and in-process tools)."""
        return self.app[SERVER].state

    @property
    def access(self) -> Access:
        """Tokens and RBAC: ``access.admin_token``, ``access.controller_tokens``."""
        return self.app[SERVER].access

    async def stop(self) -> None:
        """Close watches and the listening socket."""
        await self.runner.cleanup()


async def start_apiserver(
    host: str = "127.0.0.1", port: int = 0, tls: ServingCert | None = None, **kwargs: Any
) -> ApiServerHandle:
    """Start the API server on a loopback address (``port=0``: a free port), plus a TLS
    listener on another free port when ``tls`` is given.

    ``kwargs`` go to :func:`create_app` (``faults``, ``history_size``, ``bookmark_interval``,
    ``rbac``).
    """
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the sandbox API server listens on loopback only, not {host}")
    app = create_app(**kwargs)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    app[RUNNER] = runner  # for POST /sandbox/restart
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    secure_url = ""
    if tls is not None:
        secure = web.TCPSite(runner, host, 0, ssl_context=tls.server_context())
        await secure.start()
        secure_url = f"https://{shown}:{runner.addresses[1][1]}"
    return ApiServerHandle(f"http://{shown}:{bound}", int(bound), app, runner, secure_url)
