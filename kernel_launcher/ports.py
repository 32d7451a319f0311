"""Port range parsing and picking the six ports a remote kernel needs.

Called by ``cli.py`` (parsing, before anything starts) and ``launcher.py`` (reservation, just
before the kernel starts). A kernel needs five ZeroMQ ports (shell, iopub, stdin, control,
heartbeat) plus the launcher's communication port. Ports are reserved by binding real sockets
on all interfaces, so six picks never collide with each other or with a port already taken;
the five ZeroMQ sockets are released just before the kernel binds them (inside a pod's own
network namespace nothing else competes for them), the comm socket is kept and becomes the
listener's.
"""

from __future__ import annotations

import errno
import random
import socket
from typing import NamedTuple

from .errors import EXIT_NO_PORTS, LauncherError

#: Five ZeroMQ channels plus the communication port.
PORTS_NEEDED = 6
#: EG's rule for a non-zero range (``_validate_port_range``): both ends within these bounds.
LOWEST_PORT = 1024
HIGHEST_PORT = 65535
#: How many random candidates to try in a range before giving up (all of a smaller range).
MAX_CANDIDATES = 512
#: Where every socket binds: the gateway connects to the pod IP, which is not known in here.
BIND_ALL = "0.0.0.0"

ZMQ_CHANNELS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


class PortRange(NamedTuple):
    """An inclusive ``lower..upper`` range; ``0..0`` means any free port."""

    lower: int
    upper: int

    @property
    def is_any(self) -> bool:
        """True for ``0..0``: let the operating system pick every port."""
        return self.lower == 0 and self.upper == 0

    @property
    def size(self) -> int:
        """How many ports the range holds (both ends included)."""
        return self.upper - self.lower + 1

    def __str__(self) -> str:
        return f"{self.lower}..{self.upper}"


def parse_port_range(text: str, source: str = "--port-range") -> PortRange:
    """Parse ``lower..upper`` the way EG writes it; raise ``LauncherError`` saying how to fix it.

    ``source`` names where the value came from (flag or env name) for the error message.
    """
    text = text.strip()
    example = "e.g. '40000..41000', or '0..0' for any free port"
    parts = text.split("..")
    try:
        if len(parts) != 2:
            raise ValueError(text)
        lower, upper = int(parts[0]), int(parts[1])
    except ValueError:
        raise LauncherError(
            f"invalid port range {text!r} ({source}): expected 'lower..upper' with two "
            f"integers, {example}"
        ) from None
    result = PortRange(lower, upper)
    if result.is_any:
        return result
    if not (LOWEST_PORT <= lower <= HIGHEST_PORT and LOWEST_PORT <= upper <= HIGHEST_PORT):
        raise LauncherError(
            f"invalid port range {text!r} ({source}): both ends must be within "
            f"{LOWEST_PORT}..{HIGHEST_PORT}; {example}"
        )
    if lower > upper:
        raise LauncherError(
            f"invalid port range {text!r} ({source}): the lower end is above the upper end; "
            f"write it as '{upper}..{lower}'"
        )
    if result.size < PORTS_NEEDED:
        raise LauncherError(
            f"port range {text!r} ({source}) is too small: it holds {result.size} port(s) but "
            f"a kernel needs {PORTS_NEEDED} (5 ZeroMQ + 1 comm port); widen it, "
            f"e.g. '{lower}..{min(lower + 999, HIGHEST_PORT)}', or use '0..0'"
        )
    return result


def _bind(port: int, address: str) -> socket.socket | None:
    """Bind a TCP socket on ``address``; None when that port is taken or forbidden."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            return None
        raise
    return sock


def reserve_ports(
    port_range: PortRange, count: int = PORTS_NEEDED, address: str = BIND_ALL
) -> list[socket.socket]:
    """Return ``count`` bound (not listening) sockets on distinct free ports within the range.

    ``address`` is where they bind: every interface by default, the pod IP when
    ``KERNEL_BIND_IP`` says so.

    The caller owns the sockets: it closes the ZeroMQ ones before starting the kernel and
    turns the last one into the comm listener. Raises ``LauncherError`` when the range has
    fewer than ``count`` free ports among the candidates tried.
    """
    sockets: list[socket.socket] = []
    try:
        if port_range.is_any:
            for _ in range(count):
                sock = _bind(0, address)
                if sock is None:  # port 0 cannot be "in use"; only a broken stack gets here
                    raise LauncherError(
                        "the operating system refused to assign a free port; check the pod's "
                        "network",
                        EXIT_NO_PORTS,
                    )
                sockets.append(sock)
            return sockets
        candidates = random.sample(
            range(port_range.lower, port_range.upper + 1), min(port_range.size, MAX_CANDIDATES)
        )
        for port in candidates:
            sock = _bind(port, address)
            if sock is not None:
                sockets.append(sock)
                if len(sockets) == count:
                    return sockets
        raise LauncherError(
            f"only {len(sockets)} of {len(candidates)} ports tried in range {port_range} are "
            f"free but a kernel needs {count}; widen the port range or use '0..0'",
            EXIT_NO_PORTS,
        )
    except BaseException:
        for sock in sockets:
            sock.close()
        raise


def port_of(sock: socket.socket) -> int:
    """The port a bound socket holds."""
    port: int = sock.getsockname()[1]
    return port
