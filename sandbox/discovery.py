"""Discovery documents (``/version``, ``/api``, ``/apis``, ``/apis/<g>/<v>``) and OpenAPI.

Called by the API server's discovery routes. kopf resolves resources only through these
documents (and reads ``<plural>/status`` entries to decide where to write status); kubectl
uses them for ``api-resources``, short names and categories. Core discovery must report
``groupVersion: "v1"``.

OpenAPI: ``/openapi/v2`` is an empty protobuf document and the ``/openapi/v3`` index lists
only CRD group-versions, whose documents carry the CRD schemas (with descriptions) under
``components.schemas`` tagged with ``x-kubernetes-group-version-kind``. kubectl then explains
custom resources, and skips client-side validation of built-in kinds (no document for them).
"""

from __future__ import annotations

import copy
from typing import Any

from .resources import Registry, ResourceType

JsonObj = dict[str, Any]

SERVER_VERSION: JsonObj = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> JsonObj:
    """``GET /api``."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_entry(group: str, versions: list[str]) -> JsonObj:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(registry: Registry) -> JsonObj:
    """``GET /apis``: every named group with its preferred version."""
    groups = [_group_entry(g, v) for g, v in registry.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> JsonObj | None:
    """``GET /apis/<group>`` (``None`` → 404)."""
    versions = registry.groups().get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


def _resource_entry(rt: ResourceType) -> JsonObj:
    entry: JsonObj = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    return entry


def _sub_entries(rt: ResourceType) -> list[JsonObj]:
    out: list[JsonObj] = []
    for sub in rt.subresources:
        entry: JsonObj = {
            "name": f"{rt.plural}/{sub}",
            "singularName": "",
            "namespaced": rt.namespaced,
        }
        if sub == "status":
            entry.update(kind=rt.kind, verbs=["get", "patch", "update"])
        elif sub == "scale":
            entry.update(
                kind="Scale", group="autoscaling", version="v1", verbs=["get", "patch", "update"]
            )
        elif sub == "binding":
            entry.update(kind="Binding", verbs=["create"])
        elif sub == "log":
            entry.update(kind="Pod", verbs=["get"])
        elif sub == "token":
            entry.update(
                kind="TokenRequest", group="authentication.k8s.io", version="v1", verbs=["create"]
            )
        out.append(entry)
    return out


def api_resource_list(registry: Registry, group: str, version: str) -> JsonObj | None:
    """``GET /api/v1`` or ``/apis/<group>/<version>`` (``None`` → 404)."""
    resources = registry.in_group_version(group, version)
    if not resources and not (group == "" and version == "v1"):
        return None
    entries: list[JsonObj] = []
    for rt in sorted(resources, key=lambda r: r.plural):
        entries.append(_resource_entry(rt))
        entries.extend(_sub_entries(rt))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }


# --- OpenAPI v3 ---------------------------------------------------------------------------
def openapi_v3_index(registry: Registry) -> JsonObj:
    """``GET /openapi/v3``: one path per CRD group-version."""
    paths: JsonObj = {}
    for rt in registry.all():
        if rt.is_custom:
            key = f"apis/{rt.group}/{rt.version}"
            paths[key] = {
                "serverRelativeURL": f"/openapi/v3/{key}?hash=sandbox{id(rt) & 0xFFFFFF:x}"
            }
    return {"paths": paths}


def _schema_name(rt: ResourceType) -> str:
    reversed_group = ".".join(reversed(rt.group.split(".")))
    return f"{reversed_group}.{rt.version}.{rt.kind}"


_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_LIST_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"


def openapi_v3_document(registry: Registry, group: str, version: str) -> JsonObj | None:
    """``GET /openapi/v3/apis/<group>/<version>`` for a CRD group-version."""
    kinds = [rt for rt in registry.in_group_version(group, version) if rt.is_custom]
    if not kinds:
        return None
    schemas: JsonObj = {
        _OBJECT_META: {
            "description": "ObjectMeta is metadata that all persisted resources must have, which "
            "includes all objects users must create.",
            "type": "object",
            "properties": {
                "name": {
                    "type": "string",
                    "description": "Name must be unique within a namespace.",
                },
                "namespace": {
                    "type": "string",
                    "description": "The space within which each name must be unique.",
                },
                "labels": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "String keys and values that organize and categorize objects.",
                },
                "annotations": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "An unstructured key value map stored with a resource.",
                },
                "uid": {"type": "string"},
                "resourceVersion": {"type": "string"},
                "generation": {"type": "integer", "format": "int64"},
                "creationTimestamp": {"type": "string", "format": "date-time"},
                "deletionTimestamp": {"type": "string", "format": "date-time"},
                "finalizers": {"type": "array", "items": {"type": "string"}},
                "ownerReferences": {
                    "type": "array",
                    "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
                "generateName": {"type": "string"},
            },
        },
        _LIST_META: {
            "type": "object",
            "properties": {
                "continue": {"type": "string"},
                "resourceVersion": {"type": "string"},
                "remainingItemCount": {"type": "integer", "format": "int64"},
            },
        },
    }
    paths: JsonObj = {}
    for rt in kinds:
        doc = copy.deepcopy(rt.schema or {"type": "object"})
        props = doc.setdefault("properties", {})
        props["apiVersion"] = {
            "type": "string",
            "description": "The versioned schema of this representation of an object.",
        }
        props["kind"] = {
            "type": "string",
            "description": "The REST resource this object represents.",
        }
        props["metadata"] = {
            "allOf": [{"$ref": f"#/components/schemas/{_OBJECT_META}"}],
            "description": "Standard object's metadata.",
        }
        gvk = [{"group": rt.group, "version": rt.version, "kind": rt.kind}]
        doc["x-kubernetes-group-version-kind"] = gvk
        name = _schema_name(rt)
        schemas[name] = doc
        schemas[f"{name}List"] = {
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
                "metadata": {"allOf": [{"$ref": f"#/components/schemas/{_LIST_META}"}]},
            },
            "x-kubernetes-group-version-kind": [
                {"group": rt.group, "version": rt.version, "kind": rt.list_kind}
            ],
        }
        base = f"/apis/{group}/{version}"
        ref = {"$ref": f"#/components/schemas/{name}"}
        item_path = (
            f"{base}/namespaces/{{namespace}}/{rt.plural}/{{name}}"
            if rt.namespaced
            else f"{base}/{rt.plural}/{{name}}"
        )
        paths[item_path] = {
            "get": {
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": ref}}}
                },
                "x-kubernetes-action": "get",
                "x-kubernetes-group-version-kind": gvk[0],
            },
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
