"""The communication ("comm") port: Enterprise Gateway's side channel for signals and shutdown.

``launcher.py`` calls ``start_listener`` once the kernel process exists; it forks a child
process that runs ``serve`` on the already bound comm socket. A separate *process*, not a
thread, because the gateway connects with a 5 ms timeout and must get through even while the
launcher itself is busy (delivering the connection info with retries, stopping the kernel) —
and a thread sharing an interpreter with busy Python code is what starved EG's reference
listener (EG issue #682). Forking costs about a millisecond and needs no second interpreter.

Protocol (EG's ``RemoteProcessProxy._send_listener_request``, signed by the gateway plugin):
one TCP connection per request, UTF-8 JSON, no framing, no reply, ended by EOF (close or
``shutdown(SHUT_WR)``). Every request carries ``ts``, ``nonce`` and ``mac``
(``comm_auth.py``: HMAC-SHA256 with the kernel's connection key, which only the launcher and
the gateway know); an unsigned, wrongly signed, stale or replayed request is refused:

* ``{"signum": N}`` → ``killpg(kernel_pgid, N)`` for the signals Enterprise Gateway sends through
  this port (``ALLOWED_SIGNALS``: SIGINT to interrupt, the alternate interrupts SIGUSR1/SIGUSR2 a
  kernelspec may choose with ``EG_ALTERNATE_SIGINT``, SIGTERM, and 0, a liveness probe). SIGKILL
  never comes this way (EG deletes the kernel instead); SIGKILL, SIGSTOP and the rest are refused.
* ``{"shutdown": 1}`` (or ``true``) → the listener exits with ``EXIT_SHUTDOWN``; the launcher's
  main process sees that and stops the kernel (SIGTERM, then SIGKILL after the stop timeout).
  Any other value (``"no"``, 0) is refused.

Anything else — not UTF-8, not JSON, not an object, unknown keys, wrong types, more than
``MAX_MESSAGE_BYTES``, no EOF within ``READ_TIMEOUT`` — is logged and ignored. Connections are
multiplexed, so one stalled client cannot delay an interrupt behind it; when all
``MAX_CONNECTIONS`` slots are taken, the oldest connection is dropped for the new one, so
neighbours that hold connections open cannot lock the gateway out (the gateway sends its whole
request right after connecting).
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import socket
import time
from typing import Any

from .comm_auth import AuthError, Verifier

log = logging.getLogger(__name__)

#: The listener's exit status when it was asked to shut the kernel down.
EXIT_SHUTDOWN = 0
#: The listener's exit status when it stopped because of an unexpected error.
EXIT_CRASHED = 70
#: EG's messages are a few dozen bytes; anything this large is not from EG.
MAX_MESSAGE_BYTES = 64 * 1024
#: Seconds a client may take to send its message and EOF (EG sends it at once).
READ_TIMEOUT = 2.0
#: Concurrent connections served; a new one beyond this replaces the oldest (EG uses one).
MAX_CONNECTIONS = 64
#: The signals Enterprise Gateway 3.3 sends through the comm port (see the module docstring).
ALLOWED_SIGNALS = frozenset(
    {0, int(signal.SIGINT), int(signal.SIGTERM), int(signal.SIGUSR1), int(signal.SIGUSR2)}
)
#: The backlog lets the OS complete handshakes even while a request is being handled.
BACKLOG = 64
#: How often the loop wakes up with nothing to do, to notice that the launcher died.
IDLE_TICK = 1.0


class _Client:
    """One open comm-port connection: what it sent so far and when it must have finished."""

    __slots__ = ("data", "deadline", "peer")

    def __init__(self, deadline: float, peer: str = "") -> None:
        self.deadline = deadline
        self.peer = peer
        self.data = bytearray()


def _describe(data: bytes) -> str:
    """A short, safe rendering of a bad message for the log."""
    text = repr(bytes(data[:60]))
    return text + ("..." if len(data) > 60 else "") + f" ({len(data)} bytes)"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:  # e.g. real-time signals have no name
        return f"signal {signum}"


def handle_message(data: bytes, kernel_pgid: int, verifier: Verifier, peer: str = "") -> bool:
    """Act on one complete message; return True when it asks for shutdown.

    Called by ``serve`` for every connection that reached EOF within the limits. ``verifier``
    holds the kernel's connection key; ``peer`` names the sender in the log.
    """
    if not data.strip():
        return False  # an empty connection is a port probe, not a request
    try:
        message: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # deep nesting: RecursionError
        log.warning("comm port: ignored a message that is not UTF-8 JSON: %s", _describe(data))
        return False
    if not isinstance(message, dict):
        log.warning("comm port: ignored a message that is not a JSON object: %s", _describe(data))
        return False
    try:
        message = verifier.verify(message)
    except AuthError as exc:
        log.warning("comm port: refused a request from %s: %s", peer or "?", exc)
        return False
    if "shutdown" in message:
        value = message["shutdown"]
        if value is True or (type(value) is int and value == 1):
            log.info("comm port: shutdown requested")
            return True
        log.warning("comm port: refused shutdown value %r (only 1 or true)", value)
        return False
    if "signum" in message:
        signum = message["signum"]
        if isinstance(signum, bool) or not isinstance(signum, int) or not 0 <= signum < signal.NSIG:
            log.warning("comm port: ignored an invalid signal number: %s", _describe(data))
            return False
        if signum not in ALLOWED_SIGNALS:
            log.warning(
                "comm port: refused %s: only %s are accepted",
                _signal_name(signum),
                ", ".join(_signal_name(s) for s in sorted(ALLOWED_SIGNALS) if s),
            )
            return False
        try:
            os.killpg(kernel_pgid, signum)
        except ProcessLookupError:
            log.warning("comm port: signal %d not sent, the kernel has exited", signum)
        except OSError as exc:
            log.warning("comm port: signal %d not sent: %s", signum, exc.strerror)
        else:
            if signum:  # 0 is a liveness probe, too frequent to log
                log.info("comm port: sent %s to the kernel", _signal_name(signum))
        return False
    log.warning("comm port: ignored a message without 'signum' or 'shutdown': %s", _describe(data))
    return False


def serve(server: socket.socket, kernel_pgid: int, comm_key: str) -> int:
    """Accept and handle comm-port requests until shutdown is asked for or the launcher dies.

    Runs in the listener process forked by ``start_listener``; ``comm_key`` is the kernel's
    connection key. Returns the exit status.
    """
    verifier = Verifier(comm_key)
    parent = os.getppid()
    server.listen(BACKLOG)
    server.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    clients: dict[socket.socket, _Client] = {}

    def drop(sock: socket.socket) -> None:
        selector.unregister(sock)
        clients.pop(sock, None)
        sock.close()

    while True:
        now = time.monotonic()
        timeout = min([IDLE_TICK] + [c.deadline - now for c in clients.values()])
        for key, _ in selector.select(max(0.0, timeout)):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is server:
                try:
                    conn, addr = server.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    continue
                if len(clients) >= MAX_CONNECTIONS:
                    # Drop the oldest, not the newcomer: whoever holds slots open cannot lock
                    # out the gateway, which sends its request as soon as it connects.
                    oldest = min(clients, key=lambda s: clients[s].deadline)
                    log.warning(
                        "comm port: too many open connections, dropped the oldest (from %s)",
                        clients[oldest].peer,
                    )
                    drop(oldest)
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ)
                peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)
                clients[conn] = _Client(deadline=time.monotonic() + READ_TIMEOUT, peer=peer)
                continue
            client = clients[sock]
            try:
                chunk = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""  # reset by peer: treat what arrived as the whole message
            if chunk:
                client.data += chunk
                if len(client.data) > MAX_MESSAGE_BYTES:
                    log.warning(
                        "comm port: ignored an oversized message (more than %d bytes)",
                        MAX_MESSAGE_BYTES,
                    )
                    drop(sock)
                continue
            data = bytes(client.data)
            drop(sock)
            try:
                shutdown = handle_message(data, kernel_pgid, verifier, client.peer)
            except Exception:  # a bug must not cost the kernel its interrupts
                log.exception("comm port: failed to handle %s", _describe(data))
                shutdown = False
            if shutdown:
                for other in list(clients):
                    drop(other)
                selector.close()
                return EXIT_SHUTDOWN
        now = time.monotonic()
        for sock, client in list(clients.items()):
            if client.deadline <= now:
                log.warning(
                    "comm port: dropped a connection that sent no EOF within %gs", READ_TIMEOUT
                )
                drop(sock)
        if os.getppid() != parent:
            log.warning("comm port: the launcher has gone, listener exiting")
            return EXIT_CRASHED


def start_listener(
    server: socket.socket, kernel_pgid: int, close_in_child: list[int], key: str
) -> int:
    """Fork the listener process serving ``server``; return its pid.

    Called by the launcher's main process after the kernel started. ``close_in_child`` lists
    file descriptors the child must not keep (the launcher's signal wake-up pipe); ``key`` is
    the kernel's connection key, which authenticates requests.
    """
    # Listening before the fork: connections queue in the backlog from this moment on, even
    # before the child runs.
    server.listen(BACKLOG)
    pid = os.fork()
    if pid:
        return pid
    # Child: undo the launcher's signal set-up; SIGINT from a terminal is for the kernel
    # (the launcher forwards it), SIGTERM from the launcher must end the listener at once.
    status = EXIT_CRASHED
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        for signum in (signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(signum, signal.SIG_IGN)
        for fd in close_in_child:
            os.close(fd)
        status = serve(server, kernel_pgid, key)
    except BaseException:
        log.exception("comm port: listener failed")
    finally:
        logging.shutdown()
        os._exit(status)
