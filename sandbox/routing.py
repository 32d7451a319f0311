"""What an API request addresses: its URL, its Kubernetes verb, what RBAC is asked, and its
query parameters (resolved without the registry; :mod:`.apiserver` routes on them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from . import errors
from .rbac import Attributes, UserInfo

N = TypeVar("N", int, float)


@dataclass
class PathInfo:
    """What a request URL addresses (resolved without the registry)."""

    group: str = ""
    version: str = ""
    namespace: str | None = None
    plural: str = ""
    name: str | None = None
    subresource: str | None = None
    legacy_watch: bool = False

    @property
    def is_resource(self) -> bool:
        """Whether the URL names a resource (not discovery)."""
        return bool(self.plural)


def parse_path(path: str) -> PathInfo | None:
    """Split ``/api/v1/namespaces/ns/pods/name/status`` style URLs (``None``: not an API path)."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return None
    info = PathInfo()
    if parts[0] == "api":
        if len(parts) < 2:
            return info
        info.version, rest = parts[1], parts[2:]
    else:
        if len(parts) < 3:
            info.group = parts[1] if len(parts) == 2 else ""
            return info
        info.group, info.version, rest = parts[1], parts[2], parts[3:]
    if rest and rest[0] == "watch":
        info.legacy_watch, rest = True, rest[1:]
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        info.namespace, rest = rest[1], rest[2:]
    if not rest:
        return info
    if len(rest) > 3:
        return PathInfo(plural="\x00")  # unknown deep path → 404
    info.plural = rest[0]
    info.name = rest[1] if len(rest) > 1 else None
    info.subresource = rest[2] if len(rest) > 2 else None
    return info


PATH_INFO: web.RequestKey[PathInfo | None] = web.RequestKey("sandbox_path_info", object)  # type: ignore[arg-type]
USER: web.RequestKey[UserInfo] = web.RequestKey("sandbox_user", UserInfo)


def request_attributes(path: str, info: PathInfo | None, verb: str, query: Any) -> Attributes:
    """What RBAC is asked about one request (kube-apiserver's RequestInfo)."""
    if info is None or not info.is_resource:
        return Attributes(verb, path=path)
    name = info.name or ""
    namespace = info.namespace or ""
    if info.plural == "namespaces" and name and not namespace:
        namespace = name  # a namespace is authorized within itself
    if not name and verb in ("list", "watch"):
        # a list or watch of one object by name is authorized as that object
        selector = str(query.get("fieldSelector") or "")
        key, sep, value = selector.partition("=")
        if sep and key == "metadata.name" and "," not in value and not value.startswith("="):
            name = value
    return Attributes(verb, namespace, info.group, info.plural, info.subresource or "", name)


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1", "yes")


def k8s_verb(method: str, info: PathInfo | None, query: Any) -> str:
    """The Kubernetes verb of a request (what RBAC and the stats call it)."""
    if info is None or not info.is_resource:
        return method.lower()
    if method == "GET":
        if info.name and not info.legacy_watch:
            return "get"
        if info.legacy_watch or _truthy(query.get("watch")):
            return "watch"
        return "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if info.name else "deletecollection"
    return method.lower()


def _int_param(value: str | None, name: str, default: int) -> int:
    parsed = _number_param(value, name, int)
    return default if parsed is None else parsed


def _float_param(value: str | None, name: str) -> float | None:
    return _number_param(value, name, float)


def _number_param(value: str | None, name: str, kind: Callable[[str], N]) -> N | None:
    """A numeric query parameter (``None`` when absent or empty), or 400 naming it."""
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except ValueError as exc:
        raise errors.bad_request(f"{name}: invalid value {value!r}") from exc
