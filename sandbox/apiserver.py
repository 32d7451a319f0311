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
``POST /sandbox/tokens`` (a token for a named user).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from . import discovery, errors, protobuf, rbac_defaults, tables
from .access import ANONYMOUS_USER, REVIEW_PLURALS, Access, forbidden, unauthorized
from .errors import ApiError
from .faults import RUNNER, Faults, restart_handler
from .patching import SUPPORTED as PATCH_TYPES
from .patching import apply_patch
from .rbac import Attributes, UserInfo
from .resources import ResourceType
from .selectors import Selector, make_filter
from .state import NAMESPACES, ApiState
from .stats import FaultConfig, RequestRecord, RequestStats, user_agent_product
from .store import Event, Watcher
from .tls import ServingCert

log = logging.getLogger(__name__)

JsonObj = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# resources whose DELETE answers with the removed object; the others answer Status Success
_RETURN_DELETED_OBJECT = {("", "pods")}

# which methods each subresource answers (others: 405 MethodNotAllowed)
_SUBRESOURCE_METHODS = {
    "status": ("GET", "PUT", "PATCH"),
    "scale": ("GET", "PUT", "PATCH"),
    "binding": ("POST",),
    "log": ("GET",),
    "finalize": ("PUT",),
    "token": ("POST",),
}

_STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Gone",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class PathInfo:
    """What a request URL addresses (resolved without the registry)."""

    group: str = ""
    version: str = ""
    namespace: str | None = None
    plural: str = ""
    name: str | None = None
    subresource: str | None = None
    legacy_watch: bool = False

    @property
    def is_resource(self) -> bool:
        """Whether the URL names a resource (not discovery)."""
        return bool(self.plural)


def parse_path(path: str) -> PathInfo | None:
    """Split ``/api/v1/namespaces/ns/pods/name/status`` style URLs (``None``: not an API path)."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return None
    info = PathInfo()
    if parts[0] == "api":
        if len(parts) < 2:
            return info
        info.version, rest = parts[1], parts[2:]
    else:
        if len(parts) < 3:
            info.group = parts[1] if len(parts) == 2 else ""
            return info
        info.group, info.version, rest = parts[1], parts[2], parts[3:]
    if rest and rest[0] == "watch":
        info.legacy_watch, rest = True, rest[1:]
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        info.namespace, rest = rest[1], rest[2:]
    if not rest:
        return info
    if len(rest) > 3:
        return PathInfo(plural="\x00")  # unknown deep path → 404
    info.plural = rest[0]
    info.name = rest[1] if len(rest) > 1 else None
    info.subresource = rest[2] if len(rest) > 2 else None
    return info


PATH_INFO: web.RequestKey[PathInfo | None] = web.RequestKey("sandbox_path_info", object)  # type: ignore[arg-type]
USER: web.RequestKey[UserInfo] = web.RequestKey("sandbox_user", UserInfo)


def request_attributes(path: str, info: PathInfo | None, verb: str, query: Any) -> Attributes:
    """What RBAC is asked about one request (kube-apiserver's RequestInfo)."""
    if info is None or not info.is_resource:
        return Attributes(verb, path=path)
    name = info.name or ""
    namespace = info.namespace or ""
    if info.plural == "namespaces" and name and not namespace:
        namespace = name  # a namespace is authorized within itself
    if not name and verb in ("list", "watch"):
        # a list or watch of one object by name is authorized as that object
        selector = str(query.get("fieldSelector") or "")
        key, sep, value = selector.partition("=")
        if sep and key == "metadata.name" and "," not in value and not value.startswith("="):
            name = value
    return Attributes(verb, namespace, info.group, info.plural, info.subresource or "", name)


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1", "yes")


def k8s_verb(method: str, info: PathInfo | None, query: Any) -> str:
    """The Kubernetes verb of a request (what RBAC and the stats call it)."""
    if info is None or not info.is_resource:
        return method.lower()
    if method == "GET":
        if info.name and not info.legacy_watch:
            return "get"
        if info.legacy_watch or _truthy(query.get("watch")):
            return "watch"
        return "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if info.name else "deletecollection"
    return method.lower()


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def json_response(obj: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    """A JSON response, with one ``Warning`` header per warning (RFC 7234 code 299)."""
    resp = web.Response(body=_dumps(obj), status=status, content_type="application/json")
    for warning in warnings or ():
        resp.headers.add("Warning", f'299 - "{_escape(warning)}"')
    return resp


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def error_response(err: ApiError) -> web.Response:
    """The ``Status`` body of an error."""
    resp = json_response(err.status(), status=err.code)
    for key, value in err.headers.items():
        resp.headers[key] = value
    return resp


def view(obj: JsonObj, rt: ResourceType) -> JsonObj:
    """An object as seen through one served version (shared storage, no conversion)."""
    if obj.get("apiVersion") == rt.api_version:
        return obj
    return dict(obj, apiVersion=rt.api_version)


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


class ApiServer:
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

    # --- discovery & openapi -------------------------------------------------------------------
    async def version(self, request: web.Request) -> web.Response:
        """``GET /version``."""
        return json_response(discovery.SERVER_VERSION)

    async def health(self, request: web.Request) -> web.Response:
        """``/healthz``, ``/readyz``, ``/livez``."""
        return web.Response(text="ok")

    async def openapi_v2(self, request: web.Request) -> web.Response:
        """An empty protobuf document: kubectl then skips client-side validation."""
        return web.Response(
            body=b"", content_type="application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        )

    async def openapi_v3(self, request: web.Request) -> web.Response:
        """The OpenAPI v3 index (CRD group-versions only)."""
        return json_response(discovery.openapi_v3_index(self.state.registry))

    async def openapi_v3_gv(self, request: web.Request) -> web.Response:
        """``/openapi/v3/apis/<group>/<version>`` for CRD group-versions."""
        parts = request.match_info["tail"].strip("/").split("/")
        doc = None
        if len(parts) == 3 and parts[0] == "apis":
            doc = discovery.openapi_v3_document(self.state.registry, parts[1], parts[2])
        if doc is None:
            raise errors.plain_not_found()
        return json_response(doc)

    # --- sandbox extras -----------------------------------------------------------------------
    async def get_stats(self, request: web.Request) -> web.Response:
        """``GET /sandbox/stats``."""
        return json_response(
            self.stats.to_json(len(self.watchers)) | {"resourceVersion": self.state.store.rv}
        )

    async def reset_stats(self, request: web.Request) -> web.Response:
        """``POST /sandbox/stats/reset``."""
        self.stats.reset()
        return json_response({"reset": True})

    async def get_requests(self, request: web.Request) -> web.Response:
        """``GET /sandbox/requests?limit=N``."""
        limit = _int_param(request.query.get("limit"), "limit", 100)
        return json_response({"items": self.stats.recent(limit)})

    async def get_faults(self, request: web.Request) -> web.Response:
        """``GET /sandbox/faults``."""
        return json_response(self.faults.to_json())

    async def mint_token(self, request: web.Request) -> web.Response:
        """``POST /sandbox/tokens``: a bearer token for a named user and groups."""
        return json_response(self.access.mint_user(await request.json()), status=201)

    async def set_faults(self, request: web.Request) -> web.Response:
        """``POST /sandbox/faults`` with the new configuration (``{}`` turns faults off)."""
        try:
            self.faults = Faults.from_json(await request.json())
        except (ValueError, TypeError) as exc:
            raise errors.bad_request(str(exc)) from exc
        return json_response(self.faults.to_json())

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

    async def _get(
        self, request: web.Request, rt: ResourceType, info: PathInfo
    ) -> web.StreamResponse:
        q = request.query
        st = self.state
        if info.name and not info.legacy_watch:
            if info.subresource == "log":
                return await self._pod_log(request, info)
            if info.subresource == "scale":
                return json_response(st.get_scale(rt, info.namespace, info.name))
            obj = view(st.get(rt, info.namespace, info.name), rt)
            if tables.wants_table(request.headers.get("Accept", "")):
                return json_response(
                    tables.table(rt, [obj], st.store.rv, q.get("includeObject"), single=True)
                )
            return json_response(obj)
        field_selector = q.get("fieldSelector")
        if info.legacy_watch and info.name:
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={info.name}"]))
        predicate = make_filter(q.get("labelSelector"), field_selector)
        if info.legacy_watch or _truthy(q.get("watch")):
            return await self._watch(request, rt, info, predicate)
        limit = _int_param(q.get("limit"), "limit", 0)
        items, rv, cont, remaining = st.list_objects(
            rt, info.namespace, predicate, limit, q.get("continue")
        )
        items = [view(o, rt) for o in items]
        if tables.wants_table(request.headers.get("Accept", "")):
            body = tables.table(rt, items, rv, q.get("includeObject"))
            if cont:
                body["metadata"]["continue"] = cont
            return json_response(body)
        meta: JsonObj = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = remaining
        return json_response(
            {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta, "items": items}
        )

    async def _post(self, request: web.Request, rt: ResourceType, info: PathInfo) -> web.Response:
        body, mode = await self._body(request)
        if info.subresource == "token" and info.name:
            token = self.access.token_request(info.namespace or "", info.name, body)
            return json_response(token, status=201)
        if info.subresource == "binding" and info.name:
            return json_response(self.state.bind(info.namespace or "", info.name, body), status=201)
        if info.name:
            raise errors.method_not_allowed("POST")
        if rt.namespaced and info.namespace is None:
            raise errors.plain_not_found()
        result = self.state.create(
            rt,
            info.namespace,
            body,
            dry_run=_dry_run(request),
            field_validation=mode,
            admit=self._admit(request, rt),
        )
        return json_response(view(result.obj, rt), status=201, warnings=result.warnings)

    async def _write(self, request: web.Request, rt: ResourceType, info: PathInfo) -> web.Response:
        if not info.name:
            raise errors.method_not_allowed(request.method)
        st = self.state
        sub = info.subresource
        if request.method == "PATCH":
            ctype = request.content_type
            if ctype not in PATCH_TYPES:
                raise errors.unsupported_media_type(ctype)
            body, mode = await self._body(request, patch=True)
            if sub == "scale":
                current = st.get_scale(rt, info.namespace, info.name)
                patched = apply_patch(ctype, current, body)
                return json_response(
                    st.update_scale(
                        rt, info.namespace, info.name, (patched.get("spec") or {}).get("replicas")
                    )
                )
            result = st.patch(
                rt,
                info.namespace,
                info.name,
                ctype,
                body,
                subresource=_write_sub(sub),
                dry_run=_dry_run(request),
                field_validation=mode,
                admit=self._admit(request, rt),
            )
        else:
            body, mode = await self._body(request)
            if sub == "scale":
                replicas = (
                    ((body or {}).get("spec") or {}).get("replicas")
                    if isinstance(body, dict)
                    else None
                )
                return json_response(st.update_scale(rt, info.namespace, info.name, replicas))
            result = st.update(
                rt,
                info.namespace,
                info.name,
                body,
                subresource=_write_sub(sub),
                dry_run=_dry_run(request),
                field_validation=mode,
                admit=self._admit(request, rt),
            )
        return json_response(view(result.obj, rt), warnings=result.warnings)

    def _admit(self, request: web.Request, rt: ResourceType) -> Callable[[JsonObj], None] | None:
        """The escalation check for RBAC writes (``None`` for every other resource)."""
        if rt.group != "rbac.authorization.k8s.io":
            return None
        user = request[USER]
        return lambda obj: self.access.admit_rbac(user, rt.plural, obj)

    @staticmethod
    def _typed(rt: ResourceType, obj: JsonObj) -> JsonObj:
        return dict(obj, kind=rt.kind, apiVersion=rt.api_version)

    async def _delete(self, request: web.Request, rt: ResourceType, info: PathInfo) -> web.Response:
        q = request.query
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            if raw.strip():
                body = _decode_json(raw)[0]
        opts = body if isinstance(body, dict) else {}
        propagation = q.get("propagationPolicy") or opts.get("propagationPolicy")
        if propagation is None and opts.get("orphanDependents") is True:
            propagation = "Orphan"
        if info.name is None:
            if rt.namespaced and info.namespace is None:
                raise errors.plain_not_found()
            predicate = make_filter(q.get("labelSelector"), q.get("fieldSelector"))
            removed = self.state.delete_collection(rt, info.namespace, predicate, propagation)
            return json_response(
                {
                    "kind": rt.list_kind,
                    "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(self.state.store.rv)},
                    "items": [view(o, rt) for o in removed],
                }
            )
        obj, removed_now = self.state.delete(
            rt,
            info.namespace,
            info.name,
            propagation=propagation,
            preconditions=opts.get("preconditions"),
            dry_run=_dry_run(request),
        )
        # kube-apiserver: 202 only when cascading was asked via orphanDependents=false
        status = 202 if not removed_now and opts.get("orphanDependents") is False else 200
        if removed_now and rt.key not in _RETURN_DELETED_OBJECT:
            meta = obj["metadata"]
            details: JsonObj = {"name": meta["name"], "kind": rt.plural, "uid": meta["uid"]}
            if rt.group:
                details["group"] = rt.group
            done = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
            return json_response(done | {"details": details}, status=status)
        return json_response(view(obj, rt), status=status)

    async def _body(self, request: web.Request, patch: bool = False) -> tuple[Any, str]:
        """Decode a JSON body; returns it with the effective ``fieldValidation`` mode."""
        mode = request.query.get("fieldValidation") or "Warn"
        if mode not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(
                f'fieldValidation: Unsupported value: "{mode}": supported values: "Ignore", '
                '"Strict", "Warn"'
            )
        ctype = request.content_type
        raw = await request.read()
        if not patch and ctype == protobuf.CONTENT_TYPE:
            try:
                return protobuf.decode(raw), mode
            except (protobuf.ProtobufError, UnicodeDecodeError, KeyError) as exc:
                raise ApiError(415, "UnsupportedMediaType", str(exc), {}) from exc
        if not patch and ctype not in ("application/json", "application/octet-stream", "", "*/*"):
            if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
                import yaml

                try:
                    return yaml.safe_load(raw), mode
                except yaml.YAMLError as exc:
                    raise errors.bad_request(f"invalid YAML body: {exc}") from exc
            raise errors.unsupported_media_type(ctype)
        if not raw.strip():
            raise errors.bad_request("the request body is empty")
        body, duplicates = _decode_json(raw)
        if duplicates and mode == "Strict":
            listed = ", ".join(f'duplicate field "{d}"' for d in duplicates)
            raise errors.bad_request(f"strict decoding error: {listed}")
        return body, mode

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

    # --- pods/log -------------------------------------------------------------------------------
    async def _pod_log(self, request: web.Request, info: PathInfo) -> web.StreamResponse:
        """Proxy to the kubelet of the pod's node: ``GET /containerLogs/{ns}/{pod}/{container}``."""
        st = self.state
        pod = st.get(st.rt(("", "pods")), info.namespace, info.name or "")
        name = pod["metadata"]["name"]
        ns = pod["metadata"]["namespace"]
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or ()]
        init = [c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or ()]
        container = request.query.get("container")
        if not container:
            if len(containers) != 1:
                raise errors.bad_request(
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(str(c) for c in containers)}]"
                )
            container = str(containers[0])
        elif container not in containers + init:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise errors.bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: pod is not '
                "scheduled to a node yet"
            )
        node = st.store.get(("", "nodes"), "", node_name)
        if node is None:
            raise errors.not_found("", "nodes", node_name)
        address, port = _kubelet_address(node)
        params = {
            k: v
            for k, v in request.query.items()
            if k in ("follow", "tailLines", "timestamps", "previous", "sinceSeconds", "limitBytes")
        }
        url = f"http://{address}:{port}/containerLogs/{quote(ns)}/{quote(name)}/{quote(container)}"
        if self.http is None:
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=5))
        try:
            upstream = await self.http.get(url, params=params)
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.bad_request(
                f'Get "{url}": the kubelet of node "{node_name}" is unreachable: {exc}'
            ) from exc
        async with upstream:
            if upstream.status != 200:
                text = (await upstream.text()).strip()
                code = upstream.status if upstream.status in (400, 404) else 500
                raise ApiError(
                    code,
                    _STATUS_REASONS.get(code, "InternalError"),
                    text or f"kubelet answered {upstream.status}",
                    {},
                )
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientError):
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            return resp

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


def _kubelet_address(node: JsonObj) -> tuple[str, int]:
    status = node.get("status") or {}
    addresses = status.get("addresses") or []
    address = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), None)
    address = address or next((a.get("address") for a in addresses), None) or "127.0.0.1"
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 10250
    return str(address), int(port)


def _write_sub(sub: str | None) -> str | None:
    # namespaces/finalize writes spec.finalizers; treated as a main-resource write
    return None if sub == "finalize" else sub


def _dry_run(request: web.Request) -> bool:
    return "All" in request.query.getall("dryRun", [])


def _int_param(value: str | None, name: str, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise errors.bad_request(f"{name}: invalid value {value!r}") from exc


def _float_param(value: str | None, name: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise errors.bad_request(f"{name}: invalid value {value!r}") from exc


def _decode_json(raw: bytes) -> tuple[Any, list[str]]:
    """Parse JSON, reporting duplicate keys (kubectl's ``fieldValidation=Strict`` rejects them)."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> JsonObj:
        out: JsonObj = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    try:
        return json.loads(raw, object_pairs_hook=pairs), duplicates
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.bad_request(f"the request body is not valid JSON: {exc}") from exc


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
