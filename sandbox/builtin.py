"""Unknown-field pruning for built-in kinds, from the field list in ``builtin_fields.yaml``.

kube-apiserver decodes built-in objects into typed structs, so unknown fields are dropped (with
a ``Warning``) or, with ``fieldValidation=Strict`` (kubectl's default), rejected as
``strict decoding error: unknown field "spec.containers[0].comand"``. :mod:`.state` calls
:func:`prune` on every write of a built-in kind to behave the same way; the field list is
generated from the official client's models by :mod:`.fieldsgen`. Root ``metadata`` is left
to :mod:`.state`, which checks ObjectMeta itself.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from .resources import ResKey

JsonObj = dict[str, Any]


@lru_cache(maxsize=1)
def _document() -> JsonObj:
    text = resources.files(__package__).joinpath("builtin_fields.yaml").read_text("utf-8")
    document: JsonObj = json.loads(text)  # JSON is YAML: the file ships as package data
    return document


def has_fields(key: ResKey) -> bool:
    """Whether the sandbox knows the fields of this built-in resource."""
    return f"{key[0]}/{key[1]}" in _document()["kinds"]


def prune(key: ResKey, obj: JsonObj, paths: tuple[str, ...] = ()) -> list[str]:
    """Drop fields the kind does not declare, in place; return their paths.

    ``paths`` limits pruning to some top-level fields (``("status",)`` for status writes).
    """
    document = _document()
    model = document["kinds"].get(f"{key[0]}/{key[1]}")
    if model is None:
        return []
    types: dict[str, dict[str, str]] = document["types"]
    fields = types[model]
    unknown: list[str] = []
    for name in list(obj):
        if name == "metadata" or (paths and name not in paths):
            continue
        if name not in fields:
            unknown.append(name)
            del obj[name]
        else:
            _prune(obj[name], fields[name], name, types, unknown)
    return unknown


def _prune(
    value: Any, ref: str, path: str, types: dict[str, dict[str, str]], unknown: list[str]
) -> None:
    if not ref:
        return
    if ref.startswith("["):
        if isinstance(value, list):
            for i, item in enumerate(value):
                _prune(item, ref[1:-1], f"{path}[{i}]", types, unknown)
        return
    if ref.startswith("{"):
        if isinstance(value, dict):
            for key, item in value.items():
                _prune(item, ref[1:-1], f"{path}[{key}]", types, unknown)
        return
    fields = types.get(ref)
    if fields is None or not isinstance(value, dict):
        return
    for name in list(value):
        if name not in fields:
            unknown.append(f"{path}.{name}")
            del value[name]
        else:
            _prune(value[name], fields[name], f"{path}.{name}", types, unknown)
