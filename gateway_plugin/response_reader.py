"""The gateway's response address, read so that no neighbour can stall kernel starts.

Enterprise Gateway 3.3's ``ResponseManager`` reads the response address one connection at a
time: it accepts a connection and waits for its EOF before it accepts the next, with no time or
size limit. Anyone who can reach the address (every kernel pod sees it in its env) can open one
connection and send nothing: from then on no kernel's connection info is read and every start
fails after the launch timeout (found by ``bench/faults_hostile.py``). A large payload is also
buffered whole, in 1 KiB steps, each a copy of the string so far.

:func:`install` replaces ``ResponseManager._process_connections`` (the coroutine EG's periodic
callback runs) with one that only accepts, and reads each connection in its own task: at most
``MAX_PAYLOAD_BYTES`` (a version-1 payload is about 1.5 KiB), within ``READ_TIMEOUT`` seconds
(launchers send at once), at most ``MAX_READERS`` at a time (a new one beyond that replaces the
oldest, so held connections cannot lock kernels out). A complete payload goes through EG's own
``_decode_payload`` and ``_post_connection`` (the latter wrapped by :mod:`.kernel_secret`), so
what is accepted is unchanged. The bounded reading is :mod:`.response_listener`'s, which the
kernel provisioner's own response address (direct mode) uses too.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from .response_listener import (
    MAX_PAYLOAD_BYTES,
    MAX_READERS,
    READ_TIMEOUT,
    Readers,
    peer_name,
    serve_connection,
)

_lock = threading.Lock()


def _post(manager: Any, data: bytes) -> None:
    """Hand a complete payload to EG's own decoder and (wrapped) ``_post_connection``."""
    manager._post_connection(manager._decode_payload(data.decode("utf-8")))


async def _process_connections(self: Any) -> None:
    """Accept one connection and start reading it in its own task (see the module docstring)."""
    loop = asyncio.get_running_loop()
    try:
        conn, addr = await loop.sock_accept(self._response_socket)
    except OSError:  # includes socket.timeout: nobody connected this round
        return
    conn.setblocking(False)
    peer = peer_name(addr)
    readers = self.__dict__.get("_ej_readers")
    if not isinstance(readers, Readers):
        readers = self.__dict__["_ej_readers"] = Readers(MAX_READERS)
    readers.start(serve_connection(conn, peer, lambda data: _post(self, data)), peer)


def install() -> None:
    """Replace ``ResponseManager._process_connections`` once per process.

    Called by :func:`.kernel_secret.install` (every runtime's ``start_services``, every launch);
    later calls change nothing.
    """
    from enterprise_gateway.services.processproxies.processproxy import ResponseManager

    manager: Any = ResponseManager
    with _lock:
        if manager._process_connections is _process_connections:
            return
        manager._process_connections = _process_connections
    if manager.initialized():  # already running with EG's reader: restart its callback
        instance = manager.instance()
        processor = getattr(instance, "_connection_processor", None)
        if processor is not None:
            with contextlib.suppress(Exception):
                processor.stop()
            instance._connection_processor = None
            instance._start_response_manager()


__all__ = ["MAX_PAYLOAD_BYTES", "MAX_READERS", "READ_TIMEOUT", "install"]
