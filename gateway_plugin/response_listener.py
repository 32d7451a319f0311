"""The response address: where kernels report their connection info (EG payload version 1).

Shared by both front ends, so what is read and admitted is the same code:

* the gateway (:mod:`.response_reader`) reads EG's ``ResponseManager`` socket with
  :func:`serve_connection` and :class:`Readers`, then hands the bytes to EG's own decoder;
* the kernel provisioner (direct mode, ``elastic_jupyter.provisioner``) runs a whole
  :class:`ResponseListener`: its own RSA key, an asyncio server, :func:`decode_payload`, and
  the launch tokens of :class:`.kernel_secret.LaunchTokens`.

Bounds (what a neighbour who can reach the address cannot break): each connection is read in its
own task, at most ``MAX_PAYLOAD_BYTES`` (a version-1 payload is about 1.5 KiB) within
``READ_TIMEOUT`` seconds (launchers send at once), at most ``MAX_READERS`` at a time (a new one
beyond that replaces the oldest, so held-open connections cannot lock kernels out). An answer
is admitted once per launch and only with that launch's token (the token is in the kernel's
Secret, mounted into its pod only).

No Enterprise Gateway, no tornado: pycryptodomex is imported when a key is made or a payload
decoded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from .kernel_secret import LaunchTokens

log = logging.getLogger(__name__)

#: A version-1 payload is about 1.5 KiB; anything this large is not from a launcher.
MAX_PAYLOAD_BYTES = 64 * 1024
#: Seconds a sender may take to send its payload and EOF (launchers send it at once).
READ_TIMEOUT = 10.0
#: Connections read at once; a new one beyond this replaces the oldest.
MAX_READERS = 128
#: RSA key size of a :class:`ResponseListener` (EG uses 1024; the launcher takes any size).
KEY_BITS = 2048


class PayloadTooLargeError(Exception):
    """A sender sent more than ``MAX_PAYLOAD_BYTES``."""


class PayloadError(ValueError):
    """Bytes on the response address that are not a version-1 payload for this key."""


async def read_payload(conn: socket.socket, limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """Read a non-blocking socket to EOF; raise :class:`PayloadTooLargeError` beyond ``limit``."""
    loop = asyncio.get_running_loop()
    data = bytearray()
    while True:
        chunk = await loop.sock_recv(conn, 65536)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > limit:
            raise PayloadTooLargeError


async def serve_connection(
    conn: socket.socket,
    peer: str,
    handle: Callable[[bytes], None],
    timeout: float = READ_TIMEOUT,
) -> None:
    """Read one connection to EOF (bounded), close it, then ``handle`` the bytes; never raises.

    ``handle`` raising is logged (garbage from a neighbour): the address keeps serving.
    """
    try:
        data = await asyncio.wait_for(read_payload(conn), timeout)
    except asyncio.TimeoutError:
        log.warning("response address: dropped %s: no EOF within %gs", peer, timeout)
        return
    except PayloadTooLargeError:
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
        handle(data)
    except Exception as err:
        log.warning(
            "response address: ignored %d bytes from %s: %s: %s",
            len(data),
            peer,
            type(err).__name__,
            str(err)[:200],
        )


class Readers:
    """The connections being read: at most ``limit``; a new one beyond replaces the oldest."""

    def __init__(self, limit: int = MAX_READERS) -> None:
        self.limit = limit
        self._tasks: dict[asyncio.Task[None], str] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, coro: Coroutine[Any, Any, None], peer: str) -> asyncio.Task[None]:
        """Run ``coro`` (reading ``peer``) in its own task, evicting the oldest when full."""
        if len(self._tasks) >= self.limit:
            oldest = next(iter(self._tasks))
            log.warning(
                "response address: %d connections open, dropped the oldest (%s)",
                len(self._tasks),
                self._tasks[oldest],
            )
            oldest.cancel()
            self._tasks.pop(oldest, None)
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks[task] = peer
        task.add_done_callback(lambda done: self._tasks.pop(done, None))
        return task

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()


def peer_name(addr: Any) -> str:
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)


# --- payload version 1 ------------------------------------------------------------------------


def new_private_key(bits: int = KEY_BITS) -> Any:
    """A fresh RSA key (blocking: run it off the event loop)."""
    from Cryptodome.PublicKey import RSA

    return RSA.generate(bits)


def public_key_text(private_key: Any) -> str:
    """What kernels get as ``PUBLIC_KEY``: base64 of the DER SubjectPublicKeyInfo, as EG's."""
    der: bytes = private_key.publickey().export_key(format="DER")
    return base64.b64encode(der).decode("ascii")


def decode_payload(data: bytes, private_key: Any) -> dict[str, Any]:
    """The connection info inside a version-1 payload; raise :class:`PayloadError`.

    The legacy "version 0" form EG still accepts (AES keyed with the kernel id, no RSA) is
    refused: it is forgeable by anyone who knows a kernel id.
    """
    from Cryptodome.Cipher import AES, PKCS1_v1_5

    try:
        envelope = json.loads(base64.b64decode(data, validate=True))
    except ValueError:
        raise PayloadError("not base64 of a JSON object") from None
    if not isinstance(envelope, dict) or envelope.get("version") != 1:
        raise PayloadError("not a version-1 payload (an integer 'version': 1)")
    try:
        wrapped = base64.b64decode(str(envelope["key"]), validate=True)
        body = base64.b64decode(str(envelope["conn_info"]), validate=True)
    except (KeyError, ValueError):
        raise PayloadError("'key' or 'conn_info' missing or not base64") from None
    sentinel = b"\0" * 17  # any wrong length: PKCS#1 v1.5 failures must look alike
    aes_key = PKCS1_v1_5.new(private_key).decrypt(wrapped, sentinel)
    if len(aes_key) != 16 or not body or len(body) % 16:
        raise PayloadError("not encrypted for this listener's key")
    plain = AES.new(aes_key, AES.MODE_ECB).decrypt(body)
    pad = plain[-1]
    if not 1 <= pad <= 16 or plain[-pad:] != bytes([pad]) * pad:
        raise PayloadError("bad padding")
    try:
        info = json.loads(plain[:-pad].decode("utf-8"))
    except ValueError:
        raise PayloadError("the connection info is not JSON") from None
    if not isinstance(info, dict) or not info.get("kernel_id"):
        raise PayloadError("the connection info names no kernel_id")
    return info


class ResponseListener:
    """A response address of its own: RSA key, asyncio server, admission, waiting launches.

    One per process that launches kernels without Enterprise Gateway (the provisioner's
    runtime holds it). :meth:`expect` registers a launch (kernel id + launch token) and returns
    the future its connection info resolves; an answer for a kernel nobody waits for, a second
    answer, or one without the right token is dropped and logged.
    """

    def __init__(self, bind_ip: str, port: int, advertise_ip: str) -> None:
        self.bind_ip = bind_ip
        self.port = port
        self.advertise_ip = advertise_ip
        self.tokens = LaunchTokens()
        self.readers = Readers()
        self.private_key: Any = None
        self.public_key = ""
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    @property
    def response_address(self) -> str:
        host = f"[{self.advertise_ip}]" if ":" in self.advertise_ip else self.advertise_ip
        return f"{host}:{self.port}"

    @property
    def started(self) -> bool:
        return self._sock is not None

    async def start(self) -> None:
        """Make the key (off the loop) and bind; the port actually bound wins (0 = any)."""
        if self._sock is not None:
            return
        loop = asyncio.get_running_loop()
        if self.private_key is None:
            self.private_key = await loop.run_in_executor(None, new_private_key)
            self.public_key = public_key_text(self.private_key)
        sock = socket.socket(
            socket.AF_INET6 if ":" in self.bind_ip else socket.AF_INET, socket.SOCK_STREAM
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.bind_ip, self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = int(sock.getsockname()[1])
        self._sock = sock
        self._accepting = loop.create_task(self._accept_loop(sock))
        log.info(
            "response address %s (bound %s:%d)", self.response_address, self.bind_ip, self.port
        )

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(sock)
            except asyncio.CancelledError:
                raise
            except OSError as err:
                log.warning("response address: accept failed: %s", err)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            peer = peer_name(addr)
            self.readers.start(serve_connection(conn, peer, self.handle), peer)

    async def stop(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            self._accepting = None
        self.readers.cancel_all()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def expect(self, kernel_id: str, launch_token: str) -> asyncio.Future[dict[str, Any]]:
        """The next answer for ``kernel_id`` must carry ``launch_token``; returns the future it
        resolves (on the running loop). A new launch of the same id replaces the old wait."""
        old = self._waiting.pop(kernel_id, None)
        if old is not None and not old.done():
            old.cancel()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[kernel_id] = future
        self.tokens.expect(kernel_id, launch_token)
        return future

    def forget(self, kernel_id: str) -> None:
        """The launch of ``kernel_id`` ended (started, failed or given up)."""
        future = self._waiting.pop(kernel_id, None)
        if future is not None and not future.done():
            future.cancel()
        self.tokens.forget(kernel_id)

    def handle(self, data: bytes) -> None:
        """Decode and admit one payload (called by :func:`serve_connection`)."""
        info = decode_payload(data, self.private_key)
        kernel_id = str(info["kernel_id"])
        future = self._waiting.get(kernel_id)
        if future is None or future.done():
            raise PayloadError(f"no launch waits for kernel {kernel_id}")
        ok, why = self.tokens.admit(info)
        if not ok:
            raise PayloadError(f"refused connection info for kernel {kernel_id}: {why}")
        future.set_result(info)


__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MAX_READERS",
    "READ_TIMEOUT",
    "PayloadError",
    "PayloadTooLargeError",
    "Readers",
    "ResponseListener",
    "decode_payload",
    "public_key_text",
    "read_payload",
    "serve_connection",
]
