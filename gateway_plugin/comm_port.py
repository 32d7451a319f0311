"""Requests to a kernel launcher's comm port, signed with the kernel's connection key.

The wire format is ``kernel_launcher/comm_auth.py`` (HMAC-SHA256 over the request, timestamp and
nonce); the transport is EG's: one TCP connection per request, UTF-8 JSON, no reply, EOF ends
it. The process proxy signs with :func:`signed` and sends through EG's own
``_send_listener_request``; the kernel provisioner (direct mode, no EG) sends with
:func:`send`. EG-free, blocking: callers run it on a thread pool.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Mapping
from typing import Any

from elastic_jupyter.kernel_launcher import comm_auth

#: Connect timeout (seconds): the launcher's listener accepts at once even while the kernel is
#: busy (it runs in its own process).
CONNECT_TIMEOUT = 5.0


def signed(request: Mapping[str, Any], key: Any) -> dict[str, Any]:
    """``request`` signed with the connection ``key`` (bytes or str)."""
    return comm_auth.sign(request, key)


def send(
    host: str,
    port: int,
    request: Mapping[str, Any],
    key: Any,
    timeout: float = CONNECT_TIMEOUT,
) -> None:
    """Send one signed request (``{"signum": N}`` or ``{"shutdown": 1}``) and end with EOF.

    Raises ``OSError`` (refused: the launcher is gone).
    """
    body = json.dumps(signed(request, key)).encode("utf-8")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(body)
        # the listener may close first: it read what it needed
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
