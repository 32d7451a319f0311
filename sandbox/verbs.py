"""The verbs on resources: get and list (watch is routed to :mod:`.apiserver`), create,
update and patch (with ``status`` and ``scale``), delete and deletecollection; request bodies.

A mixin of :class:`.apiserver.ApiServer`: it turns a request into calls of
:class:`.state.ApiState` and encodes the answer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import errors, protobuf, tables
from .access import Access
from .errors import ApiError
from .patching import SUPPORTED as PATCH_TYPES
from .patching import apply_patch
from .resources import ResourceType
from .responses import json_response, view
from .routing import USER, PathInfo, _int_param, _truthy
from .selectors import Selector, make_filter
from .state import ApiState

JsonObj = dict[str, Any]

# resources whose DELETE answers with the removed object; the others answer Status Success
_RETURN_DELETED_OBJECT = {("", "pods")}


class VerbHandlers:
    """GET/POST/PUT/PATCH/DELETE on a resource, once :meth:`.apiserver.ApiServer.api` routed it."""

    # what this mixin uses of ApiServer
    state: ApiState
    access: Access
    _watch: Callable[[web.Request, ResourceType, PathInfo, Selector], Awaitable[web.StreamResponse]]
    _pod_log: Callable[[web.Request, PathInfo], Awaitable[web.StreamResponse]]

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


def _write_sub(sub: str | None) -> str | None:
    # namespaces/finalize writes spec.finalizers; treated as a main-resource write
    return None if sub == "finalize" else sub


def _dry_run(request: web.Request) -> bool:
    return "All" in request.query.getall("dryRun", [])


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
