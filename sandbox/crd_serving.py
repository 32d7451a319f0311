"""CustomResourceDefinitions: their defaults and validation, and serving what they declare.

A mixin of :class:`.state.ApiState`: a stored CRD serves each of its served versions through
the :class:`.resources.Registry`; a removed one stops being served and its objects go with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .clock import now
from .errors import Cause
from .resources import Registry, ResKey, ResourceType
from .store import Store, clone

JsonObj = dict[str, Any]


class CrdServing:
    """What a CRD changes in the set of served resources."""

    # what this mixin uses of ApiState
    store: Store
    registry: Registry
    _remove: Callable[[ResKey, str, str], JsonObj | None]

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
