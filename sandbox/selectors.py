"""Label and field selectors, parsed once per request and matched against stored objects.

Called by the API server for list, watch and deletecollection requests
(``labelSelector=`` / ``fieldSelector=`` query parameters). Grammar as in kube-apiserver:
comma-joined requirements ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``,
``k``, ``!k``, ``k>1``/``k<1`` for labels; ``path=v``, ``path==v``, ``path!=v`` for fields,
where the path is any dotted path into the object (``metadata.name``, ``status.phase``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, bad_request

JsonObj = dict[str, Any]

_SET_RE = re.compile(
    r"^\s*(!?)\s*([^\s!=<>(),]+)\s*(?:(notin|in)\s*\(([^)]*)\)|(==|=|!=|<|>)\s*(\S*))?\s*$"
)


@dataclass(frozen=True)
class Requirement:
    """One label requirement; ``op`` is one of ``=``, ``!=``, ``in``, ``notin``, ``exists``,
    ``!exists``, ``<``, ``>``."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether an object's labels satisfy this requirement."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        # `<` / `>` compare integers; non-integers never match (as in kube-apiserver)
        try:
            have, want = int(value or ""), int(self.values[0])
        except ValueError:
            return False
        return have < want if self.op == "<" else have > want


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( … )``."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in (s.strip() for s in parts) if p]


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse a ``labelSelector`` query value; raise a 400 ``BadRequest`` when malformed."""
    if not text:
        return []
    reqs: list[Requirement] = []
    for part in _split_top_level(text):
        m = _SET_RE.match(part)
        if not m:
            raise bad_request(
                f"unable to parse requirement: found '{part}', expected: key, op or value"
            )
        negate, key, set_op, set_values, op, value = m.groups()
        if negate:
            if set_op or op:
                raise bad_request(
                    f"unable to parse requirement: unexpected operator after '!{key}'"
                )
            reqs.append(Requirement(key, "!exists"))
        elif set_op:
            values = tuple(v.strip() for v in set_values.split(",") if v.strip())
            reqs.append(Requirement(key, set_op, values))
        elif op:
            canonical = "=" if op == "==" else op
            reqs.append(Requirement(key, canonical, (value,)))
        else:
            reqs.append(Requirement(key, "exists"))
    return reqs


def labels_match(reqs: list[Requirement], obj: JsonObj) -> bool:
    """Whether ``obj`` satisfies every requirement (an empty selector matches everything)."""
    if not reqs:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in reqs)


@dataclass(frozen=True)
class FieldRequirement:
    """``path op value`` with ``op`` ``=`` or ``!=``; the path is split on dots."""

    path: tuple[str, ...]
    op: str
    value: str

    def matches(self, obj: JsonObj) -> bool:
        """Compare the field's string form (missing fields read as ``""``)."""
        have = field_string(obj, self.path)
        return (have == self.value) == (self.op == "=")


def field_string(obj: JsonObj, path: tuple[str, ...]) -> str:
    """The value at a dotted path rendered as kube-apiserver compares it."""
    cur: Any = obj
    for part in path:
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text: str | None) -> list[FieldRequirement]:
    """Parse a ``fieldSelector`` query value; raise a 400 ``BadRequest`` when malformed."""
    if not text:
        return []
    reqs: list[FieldRequirement] = []
    for part in _split_top_level(text):
        for op, canonical in (("!=", "!="), ("==", "="), ("=", "=")):
            if op in part:
                key, _, value = part.partition(op)
                key = key.strip()
                if not key:
                    break
                reqs.append(FieldRequirement(tuple(key.split(".")), canonical, value.strip()))
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
    return reqs


def fields_match(reqs: list[FieldRequirement], obj: JsonObj) -> bool:
    """Whether ``obj`` satisfies every field requirement."""
    return all(r.matches(obj) for r in reqs)


class Selector:
    """Label and field requirements together; callable as a predicate on objects.

    :meth:`index_hints` lets the store narrow a list to the objects carrying one label value
    (or one name) instead of scanning a whole resource.
    """

    def __init__(self, labels: list[Requirement], fields: list[FieldRequirement]) -> None:
        self.labels = labels
        self.fields = fields

    def __call__(self, obj: JsonObj) -> bool:
        return labels_match(self.labels, obj) and fields_match(self.fields, obj)

    @property
    def empty(self) -> bool:
        """Whether the selector matches everything."""
        return not self.labels and not self.fields

    def name(self) -> str | None:
        """The object name required by ``metadata.name=``, if any."""
        for req in self.fields:
            if req.op == "=" and req.path == ("metadata", "name"):
                return req.value
        return None

    def label_equalities(self) -> list[tuple[str, str]]:
        """``(key, value)`` pairs every match must carry (from ``=``, ``==``, one-value ``in``)."""
        return [
            (r.key, r.values[0]) for r in self.labels if r.op in ("=", "in") and len(r.values) == 1
        ]


def make_filter(label_selector: str | None, field_selector: str | None) -> Selector:
    """Compile both selectors into one predicate (raises ``ApiError`` when malformed)."""
    return Selector(parse_label_selector(label_selector), parse_field_selector(field_selector))


__all__ = [
    "ApiError",
    "FieldRequirement",
    "Requirement",
    "Selector",
    "field_string",
    "fields_match",
    "labels_match",
    "make_filter",
    "parse_field_selector",
    "parse_label_selector",
]
