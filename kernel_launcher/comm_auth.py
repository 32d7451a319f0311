"""Authentication of comm-port requests: an HMAC with the kernel's own connection key.

The comm port (``listener.py``) would otherwise obey anyone who can reach the pod. Only two
parties know the kernel's connection key: the launcher, which generated it, and the gateway,
which received it inside the RSA-encrypted connection info. So the key authenticates requests
without any new secret to distribute.

Wire format (UTF-8 JSON, one request per connection, ended by EOF as before)::

    {"signum": 2, "ts": 1733300000.123, "nonce": "<32 hex>", "mac": "<64 hex>"}

``mac`` is HMAC-SHA256 over the canonical JSON (sorted keys, no spaces) of every other field,
keyed with the connection key's UTF-8 bytes. ``ts`` (the sender's Unix time) must lie within
``MAX_SKEW`` seconds of the receiver's clock and each ``nonce`` is accepted once, so a captured
request cannot be replayed.

The gateway plugin signs with :func:`sign`; the listener checks with :class:`Verifier`. This
module is stdlib-only (the kernel image may have nothing but Python 3.9) and is the one place
the format is written down: the gateway imports it, as it imports ``env``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Mapping
from typing import Any

#: The field holding the signature.
MAC_FIELD = "mac"
#: Seconds a request's timestamp may differ from the receiver's clock (either direction).
MAX_SKEW = 60.0
#: Nonces remembered at most (each for ``2 * MAX_SKEW`` seconds); EG sends a few per minute.
MAX_NONCES = 100_000


def _canonical(fields: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(fields), sort_keys=True, separators=(",", ":")).encode("utf-8")


def _key_bytes(key: Any) -> bytes:
    return key if isinstance(key, bytes) else str(key).encode("utf-8")


def mac_of(fields: Mapping[str, Any], key: Any) -> str:
    """The hex HMAC-SHA256 of ``fields`` (without ``mac``) under the connection key."""
    return hmac.new(_key_bytes(key), _canonical(fields), hashlib.sha256).hexdigest()


def sign(request: Mapping[str, Any], key: Any, now: float | None = None) -> dict[str, Any]:
    """``request`` with a timestamp, a fresh nonce and its MAC added (what the gateway sends)."""
    fields: dict[str, Any] = {
        k: v for k, v in request.items() if k not in (MAC_FIELD, "ts", "nonce")
    }
    fields["ts"] = time.time() if now is None else now
    fields["nonce"] = os.urandom(16).hex()
    fields[MAC_FIELD] = mac_of(fields, key)
    return fields


class AuthError(ValueError):
    """A request that is not from the gateway (the message says why, for the log)."""


class Verifier:
    """Checks signed requests for one kernel; remembers nonces to refuse replays."""

    def __init__(self, key: Any) -> None:
        self._key = _key_bytes(key)
        self._seen: dict[str, float] = {}

    def verify(self, message: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
        """Return the request's own fields (without ts/nonce/mac) or raise :class:`AuthError`."""
        now = time.time() if now is None else now
        mac = message.get(MAC_FIELD)
        if not isinstance(mac, str):
            raise AuthError(
                "unauthenticated request (no 'mac'): only the gateway may use this port"
            )
        fields = {k: v for k, v in message.items() if k != MAC_FIELD}
        expected = hmac.new(self._key, _canonical(fields), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, expected):
            raise AuthError("request with a wrong MAC: not signed with this kernel's key")
        ts, nonce = fields.get("ts"), fields.get("nonce")
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or abs(now - ts) > MAX_SKEW:
            raise AuthError(f"request timestamp {ts!r} is more than {MAX_SKEW:g}s from now")
        if not isinstance(nonce, str) or not nonce:
            raise AuthError("request without a nonce")
        self._forget(now)
        if nonce in self._seen:
            raise AuthError("replayed request (its nonce was used before)")
        self._seen[nonce] = now
        return {k: v for k, v in fields.items() if k not in ("ts", "nonce")}

    def _forget(self, now: float) -> None:
        if len(self._seen) < 1000 and not any(now - t > 2 * MAX_SKEW for t in self._seen.values()):
            return
        self._seen = {n: t for n, t in self._seen.items() if now - t <= 2 * MAX_SKEW}
        if len(self._seen) >= MAX_NONCES:  # a flood of valid requests: keep the newest
            newest = sorted(self._seen.items(), key=lambda item: item[1])[-MAX_NONCES // 2 :]
            self._seen = dict(newest)
