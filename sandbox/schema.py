"""CRD ``openAPIV3Schema`` semantics: pruning, defaulting and validation of custom objects.

Called by :mod:`.state` on every create/update/patch of a custom resource, in kube-apiserver's
order: prune unknown fields (collecting their paths for ``fieldValidation=Strict|Warn``), apply
``default`` values, then validate. Messages and field paths imitate kube-apiserver's, e.g.
``spec.cullIdleTimeout: Invalid value: "string": spec.cullIdleTimeout in body must be of type
integer: "string"``.
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from typing import Any

from .errors import Cause
from .validation import OBJECT_META_FIELDS

JsonObj = dict[str, Any]

# ObjectMeta fields kept inside x-kubernetes-embedded-resource objects
_EMBEDDED_META = OBJECT_META_FIELDS - {"selfLink"}
_ROOT_KEYS = ("apiVersion", "kind", "metadata")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- pruning ------------------------------------------------------------------------------
def prune(obj: JsonObj, schema: JsonObj) -> list[str]:
    """Remove fields the schema does not declare, in place; return their paths.

    ``apiVersion``, ``kind`` and ``metadata`` at the root are never pruned by the schema.
    """
    unknown: list[str] = []
    props = schema.get("properties") or {}
    for key in list(obj):
        if key in _ROOT_KEYS:
            continue
        if key in props:
            _prune(obj[key], props[key], key, unknown)
        elif not schema.get("x-kubernetes-preserve-unknown-fields"):
            unknown.append(key)
            del obj[key]
    return unknown


def _prune(value: Any, schema: JsonObj, path: str, unknown: list[str]) -> None:
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _prune(item, items, f"{path}[{i}]", unknown)
        return
    if not isinstance(value, dict):
        return
    props = schema.get("properties")
    addl = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    embedded = bool(schema.get("x-kubernetes-embedded-resource"))
    if embedded and isinstance(value.get("metadata"), dict):
        meta = value["metadata"]
        for mkey in list(meta):
            if mkey not in _EMBEDDED_META:
                unknown.append(_join(_join(path, "metadata"), mkey))
                del meta[mkey]
    if props is None and isinstance(addl, dict):
        for key, item in value.items():
            _prune(item, addl, f"{path}[{key}]", unknown)
        return
    if props is None and (preserve or addl is True):
        return
    props = props or {}
    for key in list(value):
        child = _join(path, key)
        if key in props:
            _prune(value[key], props[key], child, unknown)
        elif (embedded and key in ("apiVersion", "kind")) or (embedded and key == "metadata"):
            continue
        elif not preserve:
            unknown.append(child)
            del value[key]


# --- defaulting ---------------------------------------------------------------------------
def apply_defaults(obj: JsonObj, schema: JsonObj) -> None:
    """Fill in ``default`` values of absent properties, recursively, in place."""
    _default(obj, schema, root=True)


def _default(value: Any, schema: JsonObj, root: bool = False) -> None:
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                _default(item, items)
        return
    if not isinstance(value, dict):
        return
    props = schema.get("properties") or {}
    for key, sub in props.items():
        if root and key == "metadata":
            continue
        if (
            isinstance(sub, dict)
            and "default" in sub
            and (key not in value or (value[key] is None and not sub.get("nullable")))
        ):
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            _default(value[key], sub)
    addl = schema.get("additionalProperties")
    if isinstance(addl, dict) and not props:
        for item in value.values():
            _default(item, addl)


# --- validation ---------------------------------------------------------------------------
def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if _INT64_MIN <= value <= _INT64_MAX else "number"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def show(value: Any) -> str:
    """Render a value the way Go's ``%#v`` shows it in field errors (strings quoted)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# kube-apiserver decodes a JSON integer that does not fit int64 as a float64, which is then no
# "integer" for the schema (beyond 2^53 no float counts as one).
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _type_ok(value: Any, want: str) -> bool:
    if want == "integer":
        return _type_name(value) == "integer"
    if want == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if want == "string":
        return isinstance(value, str)
    if want == "boolean":
        return isinstance(value, bool)
    if want == "array":
        return isinstance(value, list)
    if want == "object":
        return isinstance(value, dict)
    return True


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def validate(obj: JsonObj, schema: JsonObj) -> list[Cause]:
    """Every violation of ``schema`` in ``obj``.

    Root ``metadata`` is ObjectMeta (validated elsewhere); a schema may only constrain its
    ``name`` and ``generateName``, as kube-apiserver allows.
    """
    causes: list[Cause] = []
    props = schema.get("properties") or {}
    for req in schema.get("required") or ():
        if req not in obj and req not in _ROOT_KEYS:
            causes.append(Cause("FieldValueRequired", "Required value", req))
    for key, sub in props.items():
        if key not in obj or not isinstance(sub, dict):
            continue
        if key == "metadata":
            meta_props = sub.get("properties") or {}
            for field in ("name", "generateName"):
                value = (obj.get("metadata") or {}).get(field)
                if field in meta_props and isinstance(value, str):
                    _validate(value, meta_props[field], f"metadata.{field}", causes)
            continue
        _validate(obj[key], sub, key, causes)
    return causes


def _invalid(causes: list[Cause], path: str, value: Any, detail: str) -> None:
    causes.append(
        Cause("FieldValueInvalid", f"Invalid value: {show(value)}: {path} in body {detail}", path)
    )


def _validate(value: Any, schema: JsonObj, path: str, causes: list[Cause]) -> None:
    if value is None:
        if schema.get("nullable"):
            return
        if schema.get("x-kubernetes-preserve-unknown-fields") and "type" not in schema:
            return
        want = schema.get("type")
        if want:
            causes.append(
                Cause(
                    "FieldValueTypeInvalid",
                    f'Invalid value: "null": {path} in body must be of type {want}: "null"',
                    path,
                )
            )
        return
    if schema.get("x-kubernetes-int-or-string") and not (
        isinstance(value, str) or _type_ok(value, "integer")
    ):
        kind = _type_name(value)
        causes.append(
            Cause(
                "FieldValueTypeInvalid",
                f'Invalid value: "{kind}": {path} in body must be of type integer,string: "{kind}"',
                path,
            )
        )
        return
    want = schema.get("type")
    if isinstance(want, str) and not _type_ok(value, want):
        kind = _type_name(value)
        causes.append(
            Cause(
                "FieldValueTypeInvalid",
                f'Invalid value: "{kind}": {path} in body must be of type {want}: "{kind}"',
                path,
            )
        )
        return
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        supported = ", ".join(show(e) for e in enum)
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f"Unsupported value: {show(value)}: supported values: {supported}",
                path,
            )
        )
    if isinstance(value, str):
        _validate_string(value, schema, path, causes)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _validate_number(value, schema, path, causes)
    elif isinstance(value, list):
        _validate_array(value, schema, path, causes)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, causes)
    _validate_combinators(value, schema, path, causes)


_FORMATS = {
    "date-time": re.compile(
        r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
    ),
    "date": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "uuid": re.compile(
        r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
    ),
    "byte": re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"),
}


def _validate_string(value: str, schema: JsonObj, path: str, causes: list[Cause]) -> None:
    fmt = schema.get("format")
    checker = _FORMATS.get(fmt) if isinstance(fmt, str) else None
    if checker is not None and not checker.match(value):
        _invalid(causes, path, value, f"must be of type {fmt}: {show(value)}")
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        rx = _regex(pattern)
        if rx is not None and not rx.search(value):
            _invalid(causes, path, value, f"should match '{pattern}'")
    min_len = schema.get("minLength")
    if isinstance(min_len, int) and len(value) < min_len:
        _invalid(causes, path, value, f"should be at least {min_len} chars long")
    max_len = schema.get("maxLength")
    if isinstance(max_len, int) and len(value) > max_len:
        causes.append(
            Cause("FieldValueTooLong", f"Too long: may not be more than {max_len} bytes", path)
        )


def _validate_number(value: float, schema: JsonObj, path: str, causes: list[Cause]) -> None:
    minimum = schema.get("minimum")
    if isinstance(minimum, (int, float)):
        if schema.get("exclusiveMinimum") and value <= minimum:
            _invalid(causes, path, value, f"should be greater than {show(minimum)}")
        elif value < minimum:
            _invalid(causes, path, value, f"should be greater than or equal to {show(minimum)}")
    maximum = schema.get("maximum")
    if isinstance(maximum, (int, float)):
        if schema.get("exclusiveMaximum") and value >= maximum:
            _invalid(causes, path, value, f"should be less than {show(maximum)}")
        elif value > maximum:
            _invalid(causes, path, value, f"should be less than or equal to {show(maximum)}")
    multiple = schema.get("multipleOf")
    if isinstance(multiple, (int, float)) and multiple and value % multiple:
        _invalid(causes, path, value, f"should be a multiple of {show(multiple)}")


def _validate_array(value: list[Any], schema: JsonObj, path: str, causes: list[Cause]) -> None:
    min_items = schema.get("minItems")
    if isinstance(min_items, int) and len(value) < min_items:
        _invalid(causes, path, len(value), f"should have at least {min_items} items")
    max_items = schema.get("maxItems")
    if isinstance(max_items, int) and len(value) > max_items:
        causes.append(
            Cause(
                "FieldValueTooMany",
                f"Too many: {len(value)}: must have at most {max_items} items",
                path,
            )
        )
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(item, items, f"{path}[{i}]", causes)
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                causes.append(
                    Cause("FieldValueDuplicate", f"Duplicate value: {show(item)}", f"{path}[{i}]")
                )
            seen.append(item)
    elif list_type == "map":
        keys = [k for k in schema.get("x-kubernetes-list-map-keys") or () if isinstance(k, str)]
        seen_keys: list[tuple[Any, ...]] = []
        for i, item in enumerate(value):
            if not isinstance(item, dict) or not keys:
                continue
            ident = tuple(item.get(k) for k in keys)
            if ident in seen_keys:
                shown = ", ".join(f'"{k}":{show(item.get(k))}' for k in keys)
                causes.append(
                    Cause(
                        "FieldValueDuplicate",
                        f"Duplicate value: map[string]interface {{}}{{{shown}}}",
                        f"{path}[{i}]",
                    )
                )
            seen_keys.append(ident)


def _validate_object(value: JsonObj, schema: JsonObj, path: str, causes: list[Cause]) -> None:
    for req in schema.get("required") or ():
        if req not in value:
            causes.append(Cause("FieldValueRequired", "Required value", _join(path, req)))
    props = schema.get("properties") or {}
    for key, sub in props.items():
        if key in value and isinstance(sub, dict):
            _validate(value[key], sub, _join(path, key), causes)
    addl = schema.get("additionalProperties")
    if isinstance(addl, dict) and not props:
        for key, item in value.items():
            _validate(item, addl, f"{path}[{key}]", causes)
    min_props = schema.get("minProperties")
    if isinstance(min_props, int) and len(value) < min_props:
        _invalid(causes, path, len(value), f"should have at least {min_props} properties")
    max_props = schema.get("maxProperties")
    if isinstance(max_props, int) and len(value) > max_props:
        _invalid(causes, path, len(value), f"should have at most {max_props} properties")
    if schema.get("x-kubernetes-embedded-resource") and value:
        for key in ("apiVersion", "kind"):
            if not value.get(key):
                causes.append(Cause("FieldValueRequired", "Required value", _join(path, key)))


def _validate_combinators(value: Any, schema: JsonObj, path: str, causes: list[Cause]) -> None:
    any_of = schema.get("anyOf")
    if (
        isinstance(any_of, list)
        and any_of
        and not any(not _errors_of(value, sub, path) for sub in any_of if isinstance(sub, dict))
    ):
        _invalid(causes, path, value, "must validate at least one schema (anyOf)")
    one_of = schema.get("oneOf")
    if isinstance(one_of, list) and one_of:
        ok = sum(1 for sub in one_of if isinstance(sub, dict) and not _errors_of(value, sub, path))
        if ok != 1:
            _invalid(causes, path, value, "must validate one and only one schema (oneOf)")
    all_of = schema.get("allOf")
    if isinstance(all_of, list):
        for sub in all_of:
            if isinstance(sub, dict):
                _validate(value, sub, path, causes)
    not_schema = schema.get("not")
    if isinstance(not_schema, dict) and not _errors_of(value, not_schema, path):
        _invalid(causes, path, value, "must not validate the schema (not)")


def _errors_of(value: Any, schema: JsonObj, path: str) -> list[Cause]:
    found: list[Cause] = []
    _validate(value, schema, path, found)
    return found
