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
what is accepted is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from typing import Any

log = logging.getLogger(__name__)

#: A version-1 payload is about 1.5 KiB; anything this large is not from a launcher.
MAX_PAYLOAD_BYTES = 64 * 1024
#: Seconds a sender may take to send its payload and EOF (launchers send it at once).
READ_TIMEOUT = 10.0
#: Connections read at once; a new one beyond this replaces the oldest.
MAX_READERS = 128

_lock = threading.Lock()


class _TooLargeError(Exception):
    pass


async def _read_all(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> bytes:
    data = bytearray()
    while True:
        chunk = await loop.sock_recv(conn, 65536)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > MAX_PAYLOAD_BYTES:
            raise _TooLargeError


async def _serve_one(manager: Any, conn: socket.socket, peer: str) -> None:
    """Read one connection to EOF, then hand the payload to EG; never raises."""
    loop = asyncio.get_running_loop()
    try:
        data = await asyncio.wait_for(_read_all(loop, conn), READ_TIMEOUT)
    except asyncio.TimeoutError:
        log.warning("response address: dropped %s: no EOF within %gs", peer, READ_TIMEOUT)
        return
    except _TooLargeError:
        log.warning("response address: dropped %s: more than %d bytes", peer, MAX_PAYLOAD_BYTES)
        return
    except OSError as err:
        log.info("response address: connection from %s failed: %s", peer, err)
        return
    finally:
        conn.close()
    if not data.strip():
        return  # a port probe
    try:
        payload = manager._decode_payload(data.decode("utf-8"))
        manager._post_connection(payload)
    except Exception as err:  # garbage from a neighbour: log it, keep serving
        log.warning(
            "response address: ignored %d bytes from %s: %s: %s",
            len(data),
            peer,
            type(err).__name__,
            str(err)[:200],
        )


async def _process_connections(self: Any) -> None:
    """Accept one connection and start reading it in its own task (see the module docstring)."""
    loop = asyncio.get_running_loop()
    try:
        conn, addr = await loop.sock_accept(self._response_socket)
    except OSError:  # includes socket.timeout: nobody connected this round
        return
    conn.setblocking(False)
    peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)
    readers: dict[asyncio.Task[None], str] = self.__dict__.setdefault("_ej_readers", {})
    if len(readers) >= MAX_READERS:
        oldest = next(iter(readers))
        log.warning(
            "response address: %d connections open, dropped the oldest (%s)",
            len(readers),
            readers[oldest],
        )
        oldest.cancel()
        readers.pop(oldest, None)
    task = loop.create_task(_serve_one(self, conn, peer))
    readers[task] = peer
    task.add_done_callback(lambda done: readers.pop(done, None))


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
