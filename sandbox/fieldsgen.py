"""Regenerate ``builtin_fields.yaml``: the field names of the built-in kinds the sandbox serves.

A developer tool, run by hand when the served kinds change (it needs the official
``kubernetes`` client, which the sandbox itself does not depend on)::

    .venv/bin/python -m elastic_jupyter.sandbox.fieldsgen

It walks the client's generated models (``V1Pod`` → ``V1PodSpec`` → ``V1Container`` …) and
writes, per type, each JSON field name with its type reference: ``"T"`` (an object of type
T), ``"[T]"`` (a list of T), ``"{T}"`` (a map of T), or ``""`` (a scalar or free-form value).
:mod:`.builtin` reads the file to prune unknown fields like kube-apiserver's decoder does.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

# (group, plural) -> client model class name
KINDS = {
    ("", "pods"): "V1Pod",
    ("", "nodes"): "V1Node",
    ("", "configmaps"): "V1ConfigMap",
    ("", "secrets"): "V1Secret",
    ("", "services"): "V1Service",
    ("", "endpoints"): "V1Endpoints",
    ("", "serviceaccounts"): "V1ServiceAccount",
    ("", "events"): "CoreV1Event",
    ("", "persistentvolumeclaims"): "V1PersistentVolumeClaim",
    ("", "namespaces"): "V1Namespace",
    ("apps", "deployments"): "V1Deployment",
    ("apps", "replicasets"): "V1ReplicaSet",
    ("coordination.k8s.io", "leases"): "V1Lease",
    ("networking.k8s.io", "networkpolicies"): "V1NetworkPolicy",
    ("rbac.authorization.k8s.io", "roles"): "V1Role",
    ("rbac.authorization.k8s.io", "rolebindings"): "V1RoleBinding",
    ("rbac.authorization.k8s.io", "clusterroles"): "V1ClusterRole",
    ("rbac.authorization.k8s.io", "clusterrolebindings"): "V1ClusterRoleBinding",
    ("apiextensions.k8s.io", "customresourcedefinitions"): "V1CustomResourceDefinition",
    ("events.k8s.io", "events"): "EventsV1Event",
}
OUTPUT = Path(__file__).with_name("builtin_fields.yaml")


def _ref(annotation: Any, types: dict[str, dict[str, str]]) -> str:
    """The type reference of one annotation, registering model types as it goes."""
    from pydantic import BaseModel

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _ref(inner[0], types) if len(inner) == 1 else ""
    if origin is typing.Annotated:
        return _ref(args[0], types)
    if origin in (list, typing.List):  # noqa: UP006 - the client's own annotations
        item = _ref(args[0], types) if args else ""
        return f"[{item}]" if item else ""
    if origin in (dict, typing.Dict):  # noqa: UP006
        value = _ref(args[1], types) if len(args) == 2 else ""
        return f"{{{value}}}" if value else ""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        _walk(annotation, types)
        return annotation.__name__
    return ""


def _walk(model: Any, types: dict[str, dict[str, str]]) -> None:
    name = model.__name__
    if name in types:
        return
    fields: dict[str, str] = {}
    types[name] = fields  # registered first: the CRD schema type refers to itself
    for attr, info in model.model_fields.items():
        json_name = info.serialization_alias or info.alias or attr
        fields[json_name] = _ref(info.annotation, types)


def generate() -> dict[str, Any]:
    """The document written to :data:`OUTPUT`."""
    from kubernetes import client

    types: dict[str, dict[str, str]] = {}
    kinds = {}
    for (group, plural), model_name in KINDS.items():
        model = getattr(client, model_name)
        _walk(model, types)
        kinds[f"{group}/{plural}"] = model.__name__
    return {"kinds": kinds, "types": types}


def main() -> None:
    """Write the file (JSON, which is also YAML, so it ships as package data)."""
    document = generate()
    OUTPUT.write_text(json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {OUTPUT} ({len(document['types'])} types)")


if __name__ == "__main__":
    main()
