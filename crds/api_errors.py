"""The API server's error answers, as both the operator and the gateway plugin see them.

Each side has its own small HTTP client (aiohttp in the operator, a blocking one beside
Enterprise Gateway); both raise :class:`ApiError`, and callers ask it what happened
(:attr:`ApiError.not_found`, :attr:`ApiError.conflict`...) instead of comparing status codes.
"""

from __future__ import annotations


class ApiError(Exception):
    """A non-2xx answer of the API server: the HTTP ``status`` (0 when there was no answer at
    all) and the ``Status`` object's ``reason`` and ``message``."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        """404: the object (or its namespace) does not exist."""
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """409: it exists already, or the write raced another (stale resourceVersion)."""
        return self.status == 409

    @property
    def gone(self) -> bool:
        """410: a watch's resourceVersion is too old; list again."""
        return self.status == 410

    @property
    def denied(self) -> bool:
        """401 or 403: the credentials are wrong, or RBAC does not grant the request."""
        return self.status in (401, 403)

    @property
    def retryable(self) -> bool:
        """No answer, server-side or throttling trouble: a later attempt may not meet it."""
        return self.status == 0 or self.status >= 500 or self.status in (408, 429)
