"""The API server's semantics, independent of HTTP: writes, deletion, GC, namespaces, CRDs.

:class:`ApiState` is created by :func:`.apiserver.create_app` and called by its request
handlers. Every method either returns the stored object(s) or raises :class:`.errors.ApiError`.
It runs on the server's single asyncio loop, so no locking is needed; it never awaits.

Write pipeline (create / update / patch, main resource or ``status``):
metadata checks → kind-specific defaults (Pods, Services, Namespaces, CRDs, Deployments) →
CRD schema pruning, defaulting and validation → server-owned fields (uid, timestamps,
generation, resourceVersion) → no-op detection → store + watch event.

The class is assembled from mixins, one concern each: :mod:`.kinds` (per-kind defaults and
validation), :mod:`.crd_serving` (CRDs), :mod:`.subresources` (binding, scale) and
:mod:`.deletion` (finalizers, garbage collection, namespaces); this module keeps reads, the
write pipeline, metadata and schema checks, Service IP allocation and the after-write hooks.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from . import builtin, errors, schema, validation
from .clock import now
from .crd_serving import CrdServing
from .deletion import PROTECTED_NAMESPACES, Deletion
from .errors import Cause
from .kinds import CRDS, NAMESPACES, PODS, SERVICES, KindRules
from .patching import JSON_PATCH, PatchTestFailedError, apply_patch
from .resources import Registry, ResKey, ResourceType, builtin_resources
from .selectors import Selector
from .store import ADDED, MODIFIED, Store, clone
from .subresources import Subresources

JsonObj = dict[str, Any]
Admit = Callable[[JsonObj], None]  # an admission check on the final object; raises ApiError

SERVICE_CIDR = ipaddress.IPv4Network("127.96.0.0/16")
"""Service clusterIPs: loopback addresses the sandbox's Service proxy can bind."""

INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

# ObjectMeta fields a client may send; others are unknown fields (pruned, strict error)
_META_FIELDS = validation.OBJECT_META_FIELDS
# ObjectMeta fields only the server sets; updates keep the stored values
_SERVER_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
)
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

__all__ = [
    "CRDS",
    "INITIAL_NAMESPACES",
    "NAMESPACES",
    "PODS",
    "PROTECTED_NAMESPACES",
    "SERVICES",
    "SERVICE_CIDR",
    "ApiState",
    "WriteResult",
    "now",
]


class WriteResult:
    """A stored object plus the ``Warning`` headers the request should carry."""

    def __init__(self, obj: JsonObj, warnings: list[str] | None = None) -> None:
        self.obj = obj
        self.warnings = warnings or []


class ApiState(Subresources, Deletion, CrdServing, KindRules):
    """All objects and all semantics of the sandbox cluster."""

    def __init__(self, history_size: int = 5000) -> None:
        self.store = Store(history_size)
        self.registry = Registry(builtin_resources())
        self._service_ips: set[str] = set()
        self._next_ip = random.randrange(SERVICE_CIDR.num_addresses)
        self._defer: Callable[[Callable[[], None]], None] = lambda fn: fn()
        for name in INITIAL_NAMESPACES:
            self.create(self.rt(NAMESPACES), None, {"metadata": {"name": name}})

    def set_deferrer(self, defer: Callable[[Callable[[], None]], None]) -> None:
        """How to run work "soon" (the app passes ``loop.call_soon``); default: at once."""
        self._defer = defer

    def rt(self, key: ResKey) -> ResourceType:
        """Some served version of a stored resource (built-ins always exist)."""
        found = self.registry.any_version(key)
        if found is None:
            raise errors.plain_not_found()
        return found

    # --- reads ---------------------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str | None, name: str) -> JsonObj:
        """The stored object or 404."""
        obj = self.store.get(rt.key, namespace or "", name)
        if obj is None:
            raise errors.not_found(rt.group, rt.plural, name)
        return obj

    def list_objects(
        self,
        rt: ResourceType,
        namespace: str | None,
        predicate: Selector,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> tuple[list[JsonObj], int, str | None, int | None]:
        """Matching objects sorted by namespace/name, one page at a time.

        Returns ``(items, resourceVersion, continue, remainingItemCount)``.
        """
        items = [o for o in self.store.candidates(rt.key, namespace, predicate) if predicate(o)]
        items.sort(key=_sort_key)
        rv = self.store.rv
        if continue_token:
            start, rv = _decode_continue(continue_token)
            items = [o for o in items if _sort_key(o) > start]
        if limit and len(items) > limit:
            page = items[:limit]
            token = _encode_continue(_sort_key(page[-1]), rv)
            return page, rv, token, len(items) - limit
        return items, rv, None, None

    # --- create --------------------------------------------------------------------------
    def create(
        self,
        rt: ResourceType,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        field_validation: str = "Warn",
        admit: Admit | None = None,
    ) -> WriteResult:
        """POST a new object (201 on success); ``admit`` may refuse the final object."""
        obj = self._check_body(rt, body)
        meta = obj["metadata"]
        warnings: list[str] = []
        if rt.namespaced:
            ns = namespace or meta.get("namespace") or ""
            if meta.get("namespace") not in (None, "", ns):
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = ns
            ns_obj = self.store.get(NAMESPACES, "", ns)
            if ns_obj is None:
                raise errors.not_found("", "namespaces", ns)
            if ns_obj["metadata"].get("deletionTimestamp"):
                raise errors.forbidden(
                    rt.group,
                    rt.plural,
                    meta.get("name") or meta.get("generateName", ""),
                    f"unable to create new content in namespace {ns} because it is being "
                    "terminated",
                )
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(rt, meta)
        warnings += self._prune_meta(rt, obj, field_validation)
        if not rt.is_custom:
            warnings += self._unknown_fields(rt, builtin.prune(rt.key, obj), field_validation)
        self._prepare(rt, obj, None)
        if rt.is_custom and rt.schema is not None:
            if "status" in rt.subresources:
                obj.pop("status", None)  # status is ignored on create when it is a subresource
            warnings += self._apply_schema(rt, obj, field_validation)
        self._validate(rt, obj)
        if rt.key == PODS:
            self._admit_service_account(obj)
        if admit is not None:
            admit(obj)
        name = meta["name"]
        if self.store.get(rt.key, meta.get("namespace", ""), name) is not None:
            raise errors.already_exists(rt.group, rt.plural, name)
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta["generation"] = 1
        if dry_run:
            meta["resourceVersion"] = str(self.store.rv)
            return WriteResult(obj, warnings)
        self._allocate(rt, obj)
        meta["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rt.key, obj, ADDED, None)
        self._after_create(rt, obj)
        return WriteResult(obj, warnings)

    def _generate_name(self, rt: ResourceType, meta: JsonObj) -> str:
        prefix = str(meta["generateName"])
        for _ in range(100):
            name = prefix + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
            if self.store.get(rt.key, meta.get("namespace", ""), name) is None:
                return name
        raise errors.already_exists(rt.group, rt.plural, prefix)

    # --- update & patch ----------------------------------------------------------------------
    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        admit: Admit | None = None,
    ) -> WriteResult:
        """PUT: replace an object (or its status); stale resourceVersion → 409."""
        old = self.get(rt, namespace, name)
        new = self._check_body(rt, body)
        rv = new["metadata"].get("resourceVersion")
        if not rv and rt.is_custom and subresource is None:
            raise errors.invalid(
                rt.kind,
                rt.group,
                name,
                [
                    Cause(
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                        "metadata.resourceVersion",
                    )
                ],
            )
        return self._write(rt, old, new, subresource, dry_run, field_validation, admit=admit)

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        admit: Admit | None = None,
    ) -> WriteResult:
        """PATCH by Content-Type; a failed JSON-patch ``test`` → 409 Conflict."""
        old = self.get(rt, namespace, name)
        try:
            new = apply_patch(content_type, old, body)
        except PatchTestFailedError as exc:
            raise errors.conflict(
                rt.group, rt.plural, name, f"test operation failed: {exc}"
            ) from exc
        # the patched document may share sub-objects with the stored one: never mutate those
        new = clone(new)
        # A merge patch of the status alone leaves every other field as stored (pruned when it
        # was written), so only the status can hold unknown fields: pruning just that gives the
        # same object and warnings at a fraction of the cost (kubelets write status constantly).
        status_only = (
            subresource == "status"
            and content_type != JSON_PATCH
            and isinstance(body, dict)
            and set(body) <= {"status"}
        )
        return self._write(
            rt,
            old,
            self._check_body(rt, new),
            subresource,
            dry_run,
            field_validation,
            prune_paths=("status",) if status_only else (),
            admit=admit,
        )

    def _write(
        self,
        rt: ResourceType,
        old: JsonObj,
        new: JsonObj,
        subresource: str | None,
        dry_run: bool,
        field_validation: str,
        *,
        prune_paths: tuple[str, ...] = (),
        admit: Admit | None = None,
    ) -> WriteResult:
        old_meta = old["metadata"]
        name = old_meta["name"]
        meta = new["metadata"]
        rv = meta.get("resourceVersion")
        if rv not in (None, "") and str(rv) != old_meta["resourceVersion"]:
            raise errors.conflict(rt.group, rt.plural, name)
        if meta.get("name") not in (None, name):
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                f"({name})"
            )
        old_ns = old_meta.get("namespace")
        if rt.namespaced and meta.get("namespace") not in (None, "", old_ns):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        warnings: list[str] = []
        if not rt.is_custom:
            warnings += self._unknown_fields(
                rt, builtin.prune(rt.key, new, prune_paths), field_validation
            )
        if subresource == "status":
            result = dict(old)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            result = clone(result)
            new = result
            meta = new["metadata"]
        else:
            warnings += self._prune_meta(rt, new, field_validation)
            meta = new["metadata"]
            meta["name"] = name
            if old_ns is not None:
                meta["namespace"] = old_ns
            for key in _SERVER_META:
                if key in old_meta:
                    meta[key] = clone(old_meta[key])
                else:
                    meta.pop(key, None)
            if "status" in rt.subresources:
                if "status" in old:
                    new["status"] = clone(old["status"])
                else:
                    new.pop("status", None)
            if old_meta.get("deletionTimestamp"):
                added = [
                    f
                    for f in meta.get("finalizers") or ()
                    if f not in (old_meta.get("finalizers") or ())
                ]
                if added:
                    raise errors.invalid(
                        rt.kind,
                        rt.group,
                        name,
                        [
                            Cause(
                                "FieldValueForbidden",
                                "Forbidden: no new finalizers can be added if the object is being "
                                "deleted, "
                                f"found new finalizers {json.dumps(added)}",
                                "metadata.finalizers",
                            )
                        ],
                    )
            self._prepare(rt, new, old)
        if rt.is_custom and rt.schema is not None:
            warnings += self._apply_schema(rt, new, field_validation)
        self._validate(rt, new)
        if subresource is None:
            self._validate_update(rt, old, new)
        if admit is not None:
            admit(new)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        if new == old:
            return WriteResult(old, warnings)  # no-op: no new resourceVersion, no event
        if _spec_changed(old, new):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        if dry_run:
            return WriteResult(new, warnings)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            final = self._remove(rt.key, old_meta.get("namespace", ""), name)
            return WriteResult(final or new, warnings)
        meta["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rt.key, new, MODIFIED, old)
        self._after_update(rt, old, new)
        return WriteResult(new, warnings)

    # --- body, metadata and schema checks --------------------------------------------------
    def _check_body(self, rt: ResourceType, body: Any) -> JsonObj:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        kind = body.get("kind")
        if kind not in (None, "", rt.kind):
            raise errors.bad_request(
                f'{kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f"the kind of the object does not match the resource ({rt.kind})"
            )
        api_version = body.get("apiVersion")
        if api_version not in (None, "") and str(api_version).rpartition("/")[0] != rt.group:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})"
            )
        body["kind"] = rt.kind
        body["apiVersion"] = rt.api_version
        return body

    def _prune_meta(self, rt: ResourceType, obj: JsonObj, field_validation: str) -> list[str]:
        meta = obj["metadata"]
        unknown = [f"metadata.{k}" for k in meta if k not in _META_FIELDS]
        for path in unknown:
            meta.pop(path.split(".", 1)[1], None)
        return self._unknown_fields(rt, unknown, field_validation)

    def _unknown_fields(self, rt: ResourceType, unknown: list[str], mode: str) -> list[str]:
        if not unknown or mode == "Ignore":
            return []
        listed = ", ".join(f'unknown field "{p}"' for p in unknown)
        if mode == "Strict":
            raise errors.bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f"strict decoding error: {listed}"
            )
        return [f'unknown field "{p}"' for p in unknown]

    def _apply_schema(self, rt: ResourceType, obj: JsonObj, field_validation: str) -> list[str]:
        assert rt.schema is not None
        unknown = schema.prune(obj, rt.schema)
        warnings = self._unknown_fields(rt, unknown, field_validation)
        schema.apply_defaults(obj, rt.schema)
        causes = schema.validate(obj, rt.schema)
        if causes:
            raise errors.invalid(rt.kind, rt.group, obj["metadata"].get("name", ""), causes)
        return warnings

    # --- kind-specific defaults and side effects ---------------------------------------------
    def _allocate(self, rt: ResourceType, obj: JsonObj) -> None:
        """Resources handed out only for objects actually stored (Service clusterIPs)."""
        if rt.key != SERVICES:
            return
        spec = obj["spec"]
        if spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None":
            return
        ip = spec.get("clusterIP") or self._allocate_ip()
        self._service_ips.add(ip)
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]

    def _allocate_ip(self) -> str:
        size = SERVICE_CIDR.num_addresses
        for _ in range(size):
            index = self._next_ip
            self._next_ip = (self._next_ip + 1) % size
            address = SERVICE_CIDR.network_address + index
            if address.packed[-1] in (0, 255):
                continue
            text = str(address)
            if text not in self._service_ips:
                return text
        raise errors.internal(f"service IP range {SERVICE_CIDR} is exhausted")

    def _admit_service_account(self, pod: JsonObj) -> None:
        """The ServiceAccount admission plugin: a pod's account must exist."""
        meta = pod["metadata"]
        ns = meta.get("namespace", "")
        sa = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
        if self.store.get(("", "serviceaccounts"), ns, sa) is None:
            raise errors.forbidden(
                "",
                "pods",
                meta.get("name") or meta.get("generateName", ""),
                f'error looking up service account {ns}/{sa}: serviceaccount "{sa}" not found',
            )

    def _after_create(self, rt: ResourceType, obj: JsonObj) -> None:
        if rt.key == CRDS:
            self._register_crd(obj)
        elif rt.key == NAMESPACES:
            name = obj["metadata"]["name"]
            # the service-account controller gives every namespace a "default" account
            sa_rt = self.rt(("", "serviceaccounts"))
            if self.store.get(sa_rt.key, name, "default") is None:
                self.create(sa_rt, name, {"metadata": {"name": "default"}})

    def _after_update(self, rt: ResourceType, old: JsonObj, new: JsonObj) -> None:
        if rt.key == CRDS:
            self._register_crd(new)


# --- helpers ------------------------------------------------------------------------------
def _sort_key(obj: JsonObj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def _encode_continue(start: str, rv: int) -> str:
    raw = json.dumps({"start": start, "rv": rv}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str) -> tuple[str, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["start"]), int(data["rv"])
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.bad_request(f"continue key is not valid: {exc}") from exc


def _spec_changed(old: JsonObj, new: JsonObj) -> bool:
    """``generation`` moves when anything but metadata and status changes."""
    skip = ("metadata", "status")
    return {k: v for k, v in old.items() if k not in skip} != {
        k: v for k, v in new.items() if k not in skip
    }
