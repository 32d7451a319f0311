"""The API server's semantics, independent of HTTP: writes, deletion, GC, namespaces, CRDs.

:class:`ApiState` is created by :func:`.apiserver.create_app` and called by its request
handlers. Every method either returns the stored object(s) or raises :class:`.errors.ApiError`.
It runs on the server's single asyncio loop, so no locking is needed; it never awaits.

Write pipeline (create / update / patch, main resource or ``status``):
metadata checks → kind-specific defaults (Pods, Services, Namespaces, CRDs, Deployments) →
CRD schema pruning, defaulting and validation → server-owned fields (uid, timestamps,
generation, resourceVersion) → no-op detection → store + watch event.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import random
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from . import builtin, errors, schema, validation
from .errors import Cause
from .patching import JSON_PATCH, PatchTestFailedError, apply_patch
from .resources import Registry, ResKey, ResourceType, builtin_resources
from .selectors import Selector
from .store import ADDED, MODIFIED, Store, clone

JsonObj = dict[str, Any]
Admit = Callable[[JsonObj], None]  # an admission check on the final object; raises ApiError

NAMESPACES: ResKey = ("", "namespaces")
PODS: ResKey = ("", "pods")
SERVICES: ResKey = ("", "services")
CRDS: ResKey = ("apiextensions.k8s.io", "customresourcedefinitions")
SERVICE_CIDR = ipaddress.IPv4Network("127.96.0.0/16")
"""Service clusterIPs: loopback addresses the sandbox's Service proxy can bind."""

INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")

# ObjectMeta fields a client may send; others are unknown fields (pruned, strict error)
_META_FIELDS = {
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
}
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
_POD_MUTABLE_NOTE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set "
    "to 1 if it was previously negative)"
)


def now() -> str:
    """RFC 3339 UTC timestamp with second precision, as Kubernetes writes them."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class WriteResult:
    """A stored object plus the ``Warning`` headers the request should carry."""

    def __init__(self, obj: JsonObj, warnings: list[str] | None = None) -> None:
        self.obj = obj
        self.warnings = warnings or []


class ApiState:
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

    def _validate(self, rt: ResourceType, obj: JsonObj) -> None:
        meta = obj["metadata"]
        rule = validation.NAME_RULES.get(rt.key, "subdomain")
        causes = validation.metadata_causes(meta, rule)
        if rt.key == PODS:
            causes += validation.pod_causes(obj)
        elif rt.key in (("apps", "deployments"), ("apps", "replicasets")):
            causes += _workload_causes(obj)
        elif rt.key == CRDS:
            causes += _crd_causes(obj)
        if causes:
            raise errors.invalid(rt.kind, rt.group, str(meta.get("name") or ""), causes)

    def _validate_update(self, rt: ResourceType, old: JsonObj, new: JsonObj) -> None:
        if rt.key in (("", "configmaps"), ("", "secrets")) and old.get("immutable"):
            for key in ("data", "binaryData", "stringData", "immutable"):
                if old.get(key) != new.get(key):
                    raise errors.invalid(
                        rt.kind,
                        rt.group,
                        new["metadata"]["name"],
                        [
                            Cause(
                                "FieldValueForbidden",
                                "Forbidden: field is immutable when `immutable` is set",
                                key,
                            )
                        ],
                    )
        if rt.key == PODS:
            if _pod_spec_frozen(old.get("spec")) != _pod_spec_frozen(new.get("spec")):
                raise errors.invalid(
                    rt.kind,
                    rt.group,
                    new["metadata"]["name"],
                    [Cause("FieldValueForbidden", f"Forbidden: {_POD_MUTABLE_NOTE}", "spec")],
                )
        elif rt.key == SERVICES:
            old_ip = (old.get("spec") or {}).get("clusterIP")
            new_ip = (new.get("spec") or {}).get("clusterIP")
            if old_ip and new_ip != old_ip:
                raise errors.invalid(
                    rt.kind,
                    rt.group,
                    new["metadata"]["name"],
                    [
                        Cause(
                            "FieldValueInvalid",
                            f'Invalid value: "{new_ip}": field is immutable',
                            "spec.clusterIPs[0]",
                        )
                    ],
                )

    # --- kind-specific defaults and side effects ---------------------------------------------
    def _prepare(self, rt: ResourceType, obj: JsonObj, old: JsonObj | None) -> None:
        """Defaults kube-apiserver applies per kind (on create and on update)."""
        key = rt.key
        if key == NAMESPACES:
            name = obj["metadata"].get("name")
            if name:
                obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            if old is None:
                obj["status"] = {"phase": "Active"}
        elif key == PODS:
            _default_pod(obj, old)
        elif key == SERVICES:
            _default_service(obj, old)
        elif key in (("apps", "deployments"), ("apps", "replicasets")):
            _default_workload(obj, key[1])
            if old is None:
                obj["status"] = {}  # the controller owns status from the start
        elif key == CRDS:
            _default_crd(obj, old)
        elif key == ("", "secrets"):
            if not obj.get("type"):
                obj["type"] = "Opaque"
            # stringData is write-only: kube-apiserver folds it into data (base64)
            string_data = obj.pop("stringData", None)
            if isinstance(string_data, dict) and string_data:
                data = obj.setdefault("data", {})
                for name, value in string_data.items():
                    data[name] = base64.b64encode(str(value).encode()).decode()

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

    # --- CRDs ------------------------------------------------------------------------------
    def _register_crd(self, crd: JsonObj) -> None:
        """Serve every served version of a CRD (replacing what it declared before)."""
        name = crd["metadata"]["name"]
        spec = crd["spec"]
        names = spec["names"]
        self.registry.remove_crd(name)
        subresource_names: tuple[str, ...]
        for version in spec.get("versions") or ():
            if not version.get("served", True):
                continue
            subs = version.get("subresources") or {}
            subresource_names = tuple(s for s in ("status", "scale") if s in subs)
            self.registry.add(
                ResourceType(
                    group=spec["group"],
                    version=version["name"],
                    plural=names["plural"],
                    singular=names.get("singular") or names["kind"].lower(),
                    kind=names["kind"],
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    short_names=tuple(names.get("shortNames") or ()),
                    categories=tuple(names.get("categories") or ()),
                    subresources=subresource_names,
                    list_kind=names.get("listKind") or f"{names['kind']}List",
                    schema=(version.get("schema") or {}).get("openAPIV3Schema")
                    or {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    crd_name=name,
                    printer_columns=list(version.get("additionalPrinterColumns") or ()),
                    scale_paths=subs.get("scale"),
                )
            )
        storage = next((v["name"] for v in spec.get("versions") or () if v.get("storage")), None)
        if storage:
            self.registry.set_preferred(spec["group"], storage)

    def _unregister_crd(self, crd: JsonObj) -> None:
        """A CRD is gone: stop serving it and delete its objects."""
        spec = crd.get("spec") or {}
        self.registry.remove_crd(crd["metadata"]["name"])
        plural = (spec.get("names") or {}).get("plural")
        if plural:
            res: ResKey = (spec.get("group", ""), plural)
            # finalizers of custom objects are not waited for, but their dependents are collected
            for obj in list(self.store.iter(res)):
                meta = obj["metadata"]
                self._remove(res, meta.get("namespace", ""), meta["name"])
            self.store.close_watchers(res)

    # --- subresources --------------------------------------------------------------------
    def bind(self, namespace: str, name: str, body: Any) -> JsonObj:
        """POST pods/{name}/binding: set ``spec.nodeName`` (what the scheduler calls)."""
        pods = self.rt(PODS)
        pod = self.get(pods, namespace, name)
        target = (body or {}).get("target") if isinstance(body, dict) else None
        node = (target or {}).get("name") if isinstance(target, dict) else None
        if not node:
            raise errors.invalid(
                "Binding", "", name, [Cause("FieldValueRequired", "Required value", "target.name")]
            )
        current = (pod.get("spec") or {}).get("nodeName")
        if current:
            raise errors.conflict(
                "", "pods/binding", name, f'pod {name} is already assigned to node "{current}"'
            )
        new = clone(pod)
        new["spec"]["nodeName"] = node
        conditions = [
            c
            for c in (new.setdefault("status", {}).get("conditions") or ())
            if c.get("type") != "PodScheduled"
        ]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now(),
            }
        )
        new["status"]["conditions"] = conditions
        new["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.put(PODS, new, MODIFIED, pod)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }

    def get_scale(self, rt: ResourceType, namespace: str | None, name: str) -> JsonObj:
        """GET <resource>/scale as an ``autoscaling/v1`` Scale."""
        obj = self.get(rt, namespace, name)
        spec_path, status_path, selector_path = self._scale_paths(rt)
        selector = _dig(obj, selector_path) if selector_path else None
        if isinstance(selector, dict):
            selector = ",".join(f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items())
        meta = obj["metadata"]
        scale: JsonObj = {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": int(_dig(obj, spec_path) or 0)},
            "status": {"replicas": int(_dig(obj, status_path) or 0)},
        }
        if selector:
            scale["status"]["selector"] = selector
        return scale

    def update_scale(
        self, rt: ResourceType, namespace: str | None, name: str, replicas: Any
    ) -> JsonObj:
        """PUT/PATCH <resource>/scale: write ``spec.replicas`` of the parent object."""
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid(
                "Scale",
                "autoscaling",
                name,
                [
                    Cause(
                        "FieldValueInvalid",
                        f"Invalid value: {replicas!r}: must be greater than or equal to 0",
                        "spec.replicas",
                    )
                ],
            )
        obj = self.get(rt, namespace, name)
        spec_path = self._scale_paths(rt)[0]
        new = clone(obj)
        _put(new, spec_path, replicas)
        self._write(rt, obj, new, None, False, "Ignore")
        return self.get_scale(rt, namespace, name)

    def _scale_paths(self, rt: ResourceType) -> tuple[str, str, str | None]:
        if rt.scale_paths:
            return (
                rt.scale_paths.get("specReplicasPath", ".spec.replicas"),
                rt.scale_paths.get("statusReplicasPath", ".status.replicas"),
                rt.scale_paths.get("labelSelectorPath"),
            )
        return ".spec.replicas", ".status.replicas", ".spec.selector"

    # --- delete, garbage collection, namespaces ---------------------------------------------
    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: JsonObj | None = None,
        dry_run: bool = False,
    ) -> tuple[JsonObj, bool]:
        """DELETE one object. Returns ``(object, removed_now)``.

        Finalizers (including ``foregroundDeletion``/``orphan`` added for those policies) keep
        the object with a ``deletionTimestamp`` until they are gone.
        """
        obj = self.get(rt, namespace, name)
        meta = obj["metadata"]
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != meta["uid"]:
            raise errors.conflict(
                rt.group,
                rt.plural,
                name,
                (
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                    f"{meta['uid']}"
                ),
            )
        if pre.get("resourceVersion") and str(pre["resourceVersion"]) != meta["resourceVersion"]:
            raise errors.conflict(
                rt.group,
                rt.plural,
                name,
                (
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{pre['resourceVersion']}, "
                    f"ResourceVersion in object meta: {meta['resourceVersion']}"
                ),
            )
        if propagation not in (None, "Background", "Foreground", "Orphan"):
            raise errors.bad_request(f"propagationPolicy: Unsupported value: {propagation!r}")
        if dry_run:
            return obj, False
        if rt.key == NAMESPACES:
            return self._delete_namespace(obj), False
        policy = propagation or "Background"
        finalizers = list(meta.get("finalizers") or ())
        has_dependents = bool(self.store.dependents(meta["uid"]))
        if policy == "Foreground" and has_dependents and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and has_dependents and "orphan" not in finalizers:
            finalizers.append("orphan")
        if not finalizers:
            final = self._remove(rt.key, meta.get("namespace", ""), name)
            return final or obj, True
        if not meta.get("deletionTimestamp") or finalizers != meta.get("finalizers"):
            new = clone(obj)
            new_meta = new["metadata"]
            new_meta.setdefault("deletionTimestamp", now())
            new_meta.setdefault("deletionGracePeriodSeconds", 0)
            new_meta["finalizers"] = finalizers
            new_meta["resourceVersion"] = str(self.store.next_rv())
            self.store.put(rt.key, new, MODIFIED, obj)
            obj = new
        if "orphan" in finalizers:
            self._orphan_dependents(obj)
            obj = self._drop_finalizer(rt.key, obj, "orphan")
        if "foregroundDeletion" in finalizers:
            for ref in self.store.dependents(meta["uid"]):
                self._delete_ref(ref, "Background")
            current = self.store.get(rt.key, meta.get("namespace", ""), name)
            if current is not None:
                obj = self._release_foreground(rt.key, current) or obj
        still = self.store.get(rt.key, meta.get("namespace", ""), name)
        return (still, False) if still is not None else (obj, True)

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        predicate: Callable[[JsonObj], bool],
        propagation: str | None = None,
    ) -> list[JsonObj]:
        """DELETE on a collection: delete every matching object; returns them."""
        out = []
        for obj in [o for o in self.store.iter(rt.key, namespace) if predicate(o)]:
            meta = obj["metadata"]
            if self.store.get(rt.key, meta.get("namespace", ""), meta["name"]) is None:
                continue  # already collected as a dependent of an earlier one
            out.append(
                self.delete(rt, meta.get("namespace"), meta["name"], propagation=propagation)[0]
            )
        return out

    def _remove(self, res: ResKey, namespace: str, name: str) -> JsonObj | None:
        """Remove for good, then cascade: CRD instances, dependents, owners, namespaces."""
        final = self.store.remove(res, namespace, name)
        if final is None:
            return None
        meta = final["metadata"]
        if res == CRDS:
            self._unregister_crd(final)
        if res == SERVICES:
            ip = (final.get("spec") or {}).get("clusterIP")
            self._service_ips.discard(ip or "")
        for ref in self.store.dependents(meta["uid"]):
            self._collect(ref, meta["uid"])
        for owner in meta.get("ownerReferences") or ():
            where = self.store.by_uid(owner.get("uid", "")) if isinstance(owner, dict) else None
            if where is not None:
                owner_obj = self.store.get(*where)
                if owner_obj is not None:
                    self._release_foreground(where[0], owner_obj)
        if namespace and res != NAMESPACES:
            self._maybe_finish_namespace(namespace)
        return final

    def _collect(self, ref: tuple[ResKey, str, str], owner_uid: str) -> None:
        """GC one dependent of a removed owner (kept if another owner still exists)."""
        res, ns, name = ref
        obj = self.store.get(res, ns, name)
        if obj is None:
            return
        owners = [o for o in obj["metadata"].get("ownerReferences") or () if isinstance(o, dict)]
        alive = [
            o for o in owners if o.get("uid") != owner_uid and self.store.by_uid(o.get("uid", ""))
        ]
        if alive:
            new = clone(obj)
            new["metadata"]["ownerReferences"] = [o for o in owners if o.get("uid") != owner_uid]
            new["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.put(res, new, MODIFIED, obj)
            return
        self._delete_ref(ref, "Background")

    def _delete_ref(self, ref: tuple[ResKey, str, str], policy: str) -> None:
        res, ns, name = ref
        rt = self.registry.any_version(res)
        if rt is None or self.store.get(res, ns, name) is None:
            return
        self.delete(rt, ns or None, name, propagation=policy)

    def _orphan_dependents(self, owner: JsonObj) -> None:
        uid = owner["metadata"]["uid"]
        for res, ns, name in self.store.dependents(uid):
            obj = self.store.get(res, ns, name)
            if obj is None:
                continue
            new = clone(obj)
            refs = [o for o in new["metadata"].get("ownerReferences") or () if o.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            new["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.put(res, new, MODIFIED, obj)

    def _drop_finalizer(self, res: ResKey, obj: JsonObj, finalizer: str) -> JsonObj:
        meta = obj["metadata"]
        remaining = [f for f in meta.get("finalizers") or () if f != finalizer]
        if not remaining:
            return self._remove(res, meta.get("namespace", ""), meta["name"]) or obj
        new = clone(obj)
        new["metadata"]["finalizers"] = remaining
        new["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.put(res, new, MODIFIED, obj)
        return new

    def _release_foreground(self, res: ResKey, owner: JsonObj) -> JsonObj | None:
        """Drop ``foregroundDeletion`` once no dependent blocks the owner any more.

        Only dependents whose owner reference sets ``blockOwnerDeletion: true`` (as
        ``kopf.adopt`` and controllers do) hold the owner back, as in kube-controller-manager.
        """
        meta = owner["metadata"]
        if not meta.get("deletionTimestamp") or "foregroundDeletion" not in (
            meta.get("finalizers") or ()
        ):
            return None
        uid = meta["uid"]
        for dep_res, dep_ns, dep_name in self.store.dependents(uid):
            dep = self.store.get(dep_res, dep_ns, dep_name)
            refs = (dep or {}).get("metadata", {}).get("ownerReferences") or ()
            if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in refs):
                return None
        return self._drop_finalizer(res, owner, "foregroundDeletion")

    def _delete_namespace(self, ns_obj: JsonObj) -> JsonObj:
        name = ns_obj["metadata"]["name"]
        if name in PROTECTED_NAMESPACES:
            raise errors.forbidden("", "namespaces", name, "this namespace may not be deleted")
        if ns_obj["metadata"].get("deletionTimestamp"):
            return ns_obj
        new = clone(ns_obj)
        new["metadata"]["deletionTimestamp"] = now()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new["status"] = {"phase": "Terminating"}
        new["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.put(NAMESPACES, new, MODIFIED, ns_obj)
        # the namespace controller empties it asynchronously; clients see Terminating first
        self._defer(lambda: self._sweep_namespace(name))
        return new

    def _sweep_namespace(self, name: str) -> None:
        for res in self.store.resources_in_namespace(name):
            for obj in list(self.store.iter(res, name)):
                self._delete_ref((res, name, obj["metadata"]["name"]), "Background")
        self._maybe_finish_namespace(name)

    def _maybe_finish_namespace(self, name: str) -> None:
        ns_obj = self.store.get(NAMESPACES, "", name)
        if ns_obj is None or not ns_obj["metadata"].get("deletionTimestamp"):
            return
        if ns_obj["metadata"].get("finalizers") or self.store.count_in_namespace(name):
            return
        self._remove(NAMESPACES, "", name)


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


def _dig(obj: JsonObj, path: str) -> Any:
    cur: Any = obj
    for part in path.strip(".").split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _put(obj: JsonObj, path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    cur = obj
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


def _pod_spec_frozen(spec: Any) -> Any:
    """A pod spec minus the fields an update may change."""
    if not isinstance(spec, dict):
        return spec
    frozen = clone(spec)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        frozen.pop(key, None)
    for kind in ("containers", "initContainers"):
        for c in frozen.get(kind) or ():
            if isinstance(c, dict):
                c.pop("image", None)
    if not spec.get("nodeName"):
        frozen.pop("nodeName", None)
    return frozen


def _default_pod(pod: JsonObj, old: JsonObj | None) -> None:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    if old is not None and not spec.get("nodeName") and (old.get("spec") or {}).get("nodeName"):
        spec["nodeName"] = old["spec"]["nodeName"]
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("securityContext", {})
    spec.setdefault("priority", 0)
    spec.setdefault("enableServiceLinks", True)
    for kind in ("initContainers", "containers"):
        for c in spec.get(kind) or ():
            if not isinstance(c, dict):
                continue
            image = str(c.get("image") or "")
            tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
            c.setdefault("imagePullPolicy", "IfNotPresent" if tagged or "@" in image else "Always")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            for port in c.get("ports") or ():
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
    if old is None:
        pod["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}


def _qos_class(spec: JsonObj) -> str:
    containers = [c for c in spec.get("containers") or () if isinstance(c, dict)]
    requests_any = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = True
        for name in ("cpu", "memory"):
            if name not in lim or req.get(name, lim[name]) != lim[name]:
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _default_service(svc: JsonObj, old: JsonObj | None) -> None:
    spec = svc.setdefault("spec", {})
    old_spec = (old or {}).get("spec") or {}
    if old_spec.get("clusterIP") and "clusterIP" not in spec:
        spec["clusterIP"] = old_spec["clusterIP"]
        spec["clusterIPs"] = old_spec.get("clusterIPs", [old_spec["clusterIP"]])
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or ():
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])
    svc.setdefault("status", {"loadBalancer": {}})


def _default_workload(obj: JsonObj, plural: str) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    if plural == "deployments":
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy",
            {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
        )
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        pod_like = {"spec": template["spec"]}
        _default_pod(pod_like, {"spec": {}})


def _workload_causes(obj: JsonObj) -> list[Cause]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [Cause("FieldValueRequired", "Required value", "spec")]
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        return [Cause("FieldValueRequired", "Required value", "spec.selector")]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    wanted = selector.get("matchLabels") or {}
    if any(labels.get(k) != v for k, v in wanted.items()):
        shown = (
            "map[string]string{"
            + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
            + "}"
        )
        return [
            Cause(
                "FieldValueInvalid",
                f"Invalid value: {shown}: `selector` does not match template `labels`",
                "spec.template.metadata.labels",
            )
        ]
    return []


def _default_crd(crd: JsonObj, old: JsonObj | None) -> None:
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict) and names.get("kind"):
        names.setdefault("singular", str(names["kind"]).lower())
        names.setdefault("listKind", f"{names['kind']}List")
    spec.setdefault("scope", "Namespaced")
    spec.setdefault("conversion", {"strategy": "None"})
    for version in spec.get("versions") or ():
        if isinstance(version, dict):
            version.setdefault("served", True)
            version.setdefault("storage", False)
    stamp = now()
    old_status = (old or {}).get("status") or {}
    stored = list(old_status.get("storedVersions") or ())
    for version in spec.get("versions") or ():
        if (
            isinstance(version, dict)
            and version.get("storage")
            and version.get("name") not in stored
        ):
            stored.append(version["name"])
    crd["status"] = {
        "acceptedNames": clone(names) if isinstance(names, dict) else {},
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": _since(old_status, "NamesAccepted", stamp),
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": _since(old_status, "Established", stamp),
            },
        ],
        "storedVersions": stored,
    }


def _since(status: JsonObj, ctype: str, default: str) -> str:
    for cond in status.get("conditions") or ():
        if cond.get("type") == ctype and cond.get("lastTransitionTime"):
            return str(cond["lastTransitionTime"])
    return default


def _crd_causes(crd: JsonObj) -> list[Cause]:
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [Cause("FieldValueRequired", "Required value", "spec")]
    causes: list[Cause] = []
    group = spec.get("group")
    raw_names = spec.get("names")
    names: JsonObj = raw_names if isinstance(raw_names, dict) else {}
    if not group:
        causes.append(Cause("FieldValueRequired", "Required value", "spec.group"))
    for key in ("plural", "kind"):
        if not names.get(key):
            causes.append(Cause("FieldValueRequired", "Required value", f"spec.names.{key}"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{spec.get("scope")}": supported values: "Cluster", '
                '"Namespaced"',
                "spec.scope",
            )
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        causes.append(Cause("FieldValueRequired", "Required value", "spec.versions"))
    else:
        storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
        if len(storage) != 1:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    "Invalid value: must have exactly one version marked as storage version",
                    "spec.versions",
                )
            )
        for i, version in enumerate(versions):
            if not isinstance(version, dict) or not version.get("name"):
                causes.append(
                    Cause("FieldValueRequired", "Required value", f"spec.versions[{i}].name")
                )
                continue
            root = (version.get("schema") or {}).get("openAPIV3Schema")
            if root is not None and (not isinstance(root, dict) or root.get("type") != "object"):
                causes.append(
                    Cause(
                        "FieldValueInvalid",
                        'Invalid value: "": must be object at the root',
                        f"spec.versions[{i}].schema.openAPIV3Schema.type",
                    )
                )
    name = crd["metadata"].get("name")
    if group and names.get("plural") and name != f"{names['plural']}.{group}":
        causes.append(
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                "metadata.name",
            )
        )
    return causes
