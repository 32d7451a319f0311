"""Walk and check CRD ``openAPIV3Schema`` trees: structural rules, descriptions, value checks.

Pure helpers for the CRD tests; written against the rules kube-apiserver applies to
``apiextensions.k8s.io/v1`` schemas ("structural schemas") so that a CRD that passes here is
not refused by a real cluster, and a field the API server would prune is noticed here first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from elastic_jupyter import crds

Schema = Mapping[str, Any]

_SCALARS = ("string", "integer", "number", "boolean")
_JUNCTORS = ("anyOf", "allOf", "oneOf", "not")
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def version_of(crd: Mapping[str, Any]) -> Mapping[str, Any]:
    """The one served version (``v1alpha1``) of a CRD."""
    versions = crd["spec"]["versions"]
    assert len(versions) == 1, "one version per CRD"
    version: Mapping[str, Any] = versions[0]
    return version


def schema_of(crd: Mapping[str, Any]) -> Schema:
    """The ``openAPIV3Schema`` of a CRD's one version."""
    schema: Schema = version_of(crd)["schema"]["openAPIV3Schema"]
    return schema


def crds_by_kind() -> dict[str, dict[str, Any]]:
    """The five shipped CRDs, keyed by kind."""
    return {crd["spec"]["names"]["kind"]: crd for crd in crds.load_crds()}


def iter_fields(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every named field below ``schema`` as (dotted path, node); array items add ``[]``."""
    for name, node in (schema.get("properties") or {}).items():
        child = f"{path}.{name}" if path else name
        yield child, node
        yield from iter_fields(node, child)
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield from iter_fields(items, f"{path}[]")
    additional = schema.get("additionalProperties")
    if isinstance(additional, Mapping):
        yield from iter_fields(additional, f"{path}[*]")


def iter_nodes(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every schema node (root, fields, items, additionalProperties) as (path, node)."""
    yield path or "<root>", schema
    for name, node in (schema.get("properties") or {}).items():
        yield from iter_nodes(node, f"{path}.{name}" if path else name)
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield from iter_nodes(items, f"{path}[]")
    additional = schema.get("additionalProperties")
    if isinstance(additional, Mapping):
        yield from iter_nodes(additional, f"{path}[*]")


def node_at(schema: Schema, dotted: str) -> Schema | None:
    """The node of a dotted path such as ``spec.template.spec.containers[].image``."""
    node: Schema | None = schema
    for part in dotted.split("."):
        if node is None:
            return None
        is_item = part.endswith("[]")
        name = part[:-2] if is_item else part
        node = (node.get("properties") or {}).get(name)
        if node is not None and is_item:
            node = node.get("items")
    return node


def structural_problems(schema: Schema) -> list[str]:
    """Where ``schema`` breaks the structural-schema rules (empty list: it is structural)."""
    problems: list[str] = []
    if schema.get("type") != "object":
        problems.append("<root>: type must be object")
    metadata = (schema.get("properties") or {}).get("metadata")
    if metadata is not None and dict(metadata) != {"type": "object"}:
        problems.append("metadata: only `type: object` is allowed at the root")
    for path, node in iter_nodes(schema):
        problems.extend(f"{path}: {p}" for p in _node_problems(path, node))
    return problems


# One flat list of independent structural-schema rules: each `if` is a rule, read top to bottom.
def _node_problems(path: str, node: Schema) -> list[str]:  # noqa: C901
    problems: list[str] = []
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    kind = node.get("type")
    if int_or_string:
        if kind is not None:
            problems.append("x-kubernetes-int-or-string must not have a type")
        if "anyOf" in node and node["anyOf"] != _INT_OR_STRING_ANY_OF:
            problems.append("x-kubernetes-int-or-string allows only anyOf [integer, string]")
    elif kind is None and not preserve:
        problems.append("no type (and no x-kubernetes-int-or-string/preserve-unknown-fields)")
    elif kind is not None and kind not in (*_SCALARS, "object", "array"):
        problems.append(f"unknown type {kind!r}")
    for junctor in _JUNCTORS:
        if junctor in node and not (int_or_string and junctor == "anyOf"):
            problems.append(f"{junctor} is not used by these CRDs (keep them simple)")
    if "properties" in node and "additionalProperties" in node:
        problems.append("properties and additionalProperties are mutually exclusive")
    if kind == "array" and not isinstance(node.get("items"), Mapping):
        problems.append("an array needs items")
    if (
        kind == "object"
        and path != "metadata"
        and not preserve
        and "properties" not in node
        and "additionalProperties" not in node
    ):
        # The original's defect: a bare object prunes everything inside it (controller-tools
        # #448 lost every pod template's labels this way).
        problems.append("a bare `type: object` would prune everything inside it")
    if "x-kubernetes-list-map-keys" in node:
        items = node.get("items") or {}
        required = set(items.get("required") or ())
        for key in node["x-kubernetes-list-map-keys"]:
            field = (items.get("properties") or {}).get(key) or {}
            if key not in required and "default" not in field:
                problems.append(f"list map key {key!r} must be required or defaulted")
            if field.get("type") not in _SCALARS:
                problems.append(f"list map key {key!r} must be a scalar")
    for name in node.get("required") or ():
        if name not in (node.get("properties") or {}) and not preserve:
            problems.append(f"required {name!r} is not a declared property")
    return problems


# One flat list of independent OpenAPI keywords, checked in the order the API server checks them.
def value_problems(value: Any, schema: Schema, path: str = "value") -> list[str]:  # noqa: C901
    """Where ``value`` breaks ``schema`` (types, enums, bounds, patterns, required, items)."""
    problems: list[str] = []
    if schema.get("x-kubernetes-int-or-string") and (
        isinstance(value, bool) or not isinstance(value, (int, str))
    ):
        return [f"{path}: must be an integer or a string"]
    kind = schema.get("type")
    if kind is not None and not _type_ok(value, kind):
        return [f"{path}: must be of type {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        pattern = schema.get("pattern")
        if pattern is not None and not re.search(pattern, value):
            problems.append(f"{path}: {value!r} does not match {pattern}")
        if len(value) > schema.get("maxLength", len(value)):
            problems.append(f"{path}: longer than {schema['maxLength']}")
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{path}: shorter than {schema['minLength']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: below minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: above maximum {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{path}: fewer than {schema['minItems']} items")
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                problems.extend(value_problems(item, items, f"{path}[{index}]"))
    if isinstance(value, Mapping):
        properties = schema.get("properties") or {}
        for name in schema.get("required") or ():
            if name not in value:
                problems.append(f"{path}.{name}: required")
        for name, item in value.items():
            if name in properties:
                problems.extend(value_problems(item, properties[name], f"{path}.{name}"))
            elif isinstance(schema.get("additionalProperties"), Mapping):
                problems.extend(
                    value_problems(item, schema["additionalProperties"], f"{path}[{name}]")
                )
    return problems


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    expected = {"string": str, "boolean": bool, "array": list, "object": Mapping}[kind]
    return isinstance(value, expected)


def pruned_paths(value: Any, schema: Schema, path: str = "") -> list[str]:
    """Fields of ``value`` an API server would prune under ``schema`` (undeclared, not preserved).

    ``value`` is a whole object (root ``apiVersion``/``kind``/``metadata`` are never pruned).
    """
    found: list[str] = []
    if isinstance(value, Mapping):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for name, item in value.items():
            child = f"{path}.{name}" if path else name
            if not path and name in ("apiVersion", "kind", "metadata"):
                continue
            if name in properties:
                found.extend(pruned_paths(item, properties[name], child))
            elif isinstance(additional, Mapping):
                found.extend(pruned_paths(item, additional, child))
            elif not schema.get("x-kubernetes-preserve-unknown-fields") and additional is not True:
                found.append(child)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            found.extend(pruned_paths(item, schema["items"], f"{path}[{index}]"))
    return found


def is_subset(small: Any, big: Any) -> bool:
    """Whether every field of ``small`` is in ``big`` with the same value (lists element-wise)."""
    if isinstance(small, Mapping):
        return isinstance(big, Mapping) and all(
            key in big and is_subset(item, big[key]) for key, item in small.items()
        )
    if isinstance(small, list):
        return (
            isinstance(big, list)
            and len(small) == len(big)
            and all(is_subset(a, b) for a, b in zip(small, big))
        )
    return bool(small == big)
