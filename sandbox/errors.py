"""Kubernetes ``Status`` error bodies for the sandbox API server.

Every failing request answers with a ``Status`` object (``kind: Status``, ``status: Failure``,
``reason``, ``message``, ``details``, ``code``) exactly as kube-apiserver does: kubectl and the
official client decide what to do from ``reason`` and ``code`` (for instance ``kubectl apply``
creates an object only after a ``NotFound``). The HTTP layer (:mod:`.apiserver`) turns an
:class:`ApiError` raised anywhere below it into such a body; nothing ever leaks a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JsonObj = dict[str, Any]


@dataclass
class Cause:
    """One entry of ``details.causes``: what is wrong with which field."""

    reason: str
    message: str
    field: str

    def to_json(self) -> JsonObj:
        """Render as Kubernetes' ``StatusCause``."""
        return {"reason": self.reason, "message": self.message, "field": self.field}


@dataclass
class ApiError(Exception):
    """An error that the HTTP layer answers with a ``Status`` body and ``code``."""

    code: int
    reason: str
    message: str
    details: JsonObj = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> JsonObj:
        """The ``Status`` object sent as the response body (or inside a watch ERROR event)."""
        body: JsonObj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def resource_name(group: str, plural: str) -> str:
    """How messages name a resource: ``pods`` or ``jupyterkernels.kubeflow.tkestack.io``."""
    return f"{plural}.{group}" if group else plural


def _details(group: str, plural: str, name: str) -> JsonObj:
    details: JsonObj = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return details


def not_found(group: str, plural: str, name: str) -> ApiError:
    """404 for a missing object (``pods "x" not found``)."""
    return ApiError(
        404,
        "NotFound",
        f'{resource_name(group, plural)} "{name}" not found',
        _details(group, plural, name),
    )


def plain_not_found(message: str = "the server could not find the requested resource") -> ApiError:
    """404 for an unknown URL or an undeclared resource type."""
    return ApiError(404, "NotFound", message, {})


def already_exists(group: str, plural: str, name: str) -> ApiError:
    """409 when creating an object whose name is taken."""
    return ApiError(
        409,
        "AlreadyExists",
        f'{resource_name(group, plural)} "{name}" already exists',
        _details(group, plural, name),
    )


_MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def conflict(group: str, plural: str, name: str, why: str | None = None) -> ApiError:
    """409 for a stale ``resourceVersion``, a failed precondition or JSON-patch ``test``."""
    why = why or _MODIFIED
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource_name(group, plural)} "{name}": {why}',
        _details(group, plural, name),
    )


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> ApiError:
    """422 ``Invalid`` listing every field error, worded like kube-apiserver's."""
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    qualified = f"{kind}.{group}" if group else kind
    details: JsonObj = {
        "name": name,
        "kind": kind,
        "causes": [c.to_json() for c in causes],
    }
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {joined}', details)


def bad_request(message: str) -> ApiError:
    """400 ``BadRequest`` (malformed bodies, selectors, parameters)."""
    return ApiError(400, "BadRequest", message, {})


def forbidden(group: str, plural: str, name: str, why: str) -> ApiError:
    """403 ``Forbidden`` (e.g. creating content in a terminating namespace)."""
    return ApiError(
        403,
        "Forbidden",
        f'{resource_name(group, plural)} "{name}" is forbidden: {why}',
        _details(group, plural, name),
    )


def gone(message: str) -> ApiError:
    """410 for a ``resourceVersion`` older than the watch history (reason ``Expired``).

    kube-apiserver says ``Expired`` for too-old resource versions; clients (kopf, the official
    client's ``Watch``) only look at ``code == 410`` and then re-list.
    """
    return ApiError(410, "Expired", message, {})


def unsupported_media_type(content_type: str) -> ApiError:
    """415 for a PATCH/POST body of a content type the server does not speak."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json-patch+json, application/merge-patch+json, "
        f'application/strategic-merge-patch+json (got "{content_type}")',
        {},
    )


def method_not_allowed(verb: str) -> ApiError:
    """405 for a verb a resource does not support."""
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({verb})",
        {},
    )


def internal(message: str) -> ApiError:
    """500 used for injected faults and for unexpected failures (message only, no traceback)."""
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", {})
