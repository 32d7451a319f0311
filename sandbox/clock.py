"""The one timestamp format of the sandbox: RFC 3339 UTC, second precision."""

from __future__ import annotations

import datetime as dt


def now() -> str:
    """RFC 3339 UTC timestamp with second precision, as Kubernetes writes them."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
