"""Response bodies of the API server: JSON with ``Warning`` headers, ``Status`` errors, and an
object as seen through one served version.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .errors import ApiError
from .resources import ResourceType

JsonObj = dict[str, Any]

_STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Gone",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def json_response(obj: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    """A JSON response, with one ``Warning`` header per warning (RFC 7234 code 299)."""
    resp = web.Response(body=_dumps(obj), status=status, content_type="application/json")
    for warning in warnings or ():
        resp.headers.add("Warning", f'299 - "{_escape(warning)}"')
    return resp


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def error_response(err: ApiError) -> web.Response:
    """The ``Status`` body of an error."""
    resp = json_response(err.status(), status=err.code)
    for key, value in err.headers.items():
        resp.headers[key] = value
    return resp


def view(obj: JsonObj, rt: ResourceType) -> JsonObj:
    """An object as seen through one served version (shared storage, no conversion)."""
    if obj.get("apiVersion") == rt.api_version:
        return obj
    return dict(obj, apiVersion=rt.api_version)
