"""One launch, start to finish: ports → connection file → kernel → listener → gateway → wait.

``cli.main`` builds a validated ``LaunchConfig`` and calls ``launch``; nothing here reads the
environment or the command line. The connection info is sent as soon as the kernel process
exists, *before* the kernel has bound its ports: the gateway then connects ZeroMQ while the
kernel is still importing, which is how EG's own launchers behave (ZeroMQ connects lazily and
EG waits for ``kernel_info``), so the kernel's start-up is never added to the launch path.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from typing import Any, NamedTuple

from . import env as env_names
from .kernel_process import DEFAULT_STOP_TIMEOUT, Supervisor
from .payload import DEFAULT_RESPONSE_TIMEOUT, deliver, encode_payload
from .ports import BIND_ALL, ZMQ_CHANNELS, PortRange, port_of, reserve_ports

log = logging.getLogger(__name__)


class LaunchConfig(NamedTuple):
    """Everything one launch needs, already validated by ``cli.py``."""

    kernel_id: str
    response_address: tuple[str, int]
    public_key: Any  # a pycryptodomex RSA key; typed loosely so this module imports no crypto
    port_range: PortRange
    kernel_argv: tuple[str, ...]  # still holding {connection_file} / {kernel_id}
    pod_ip: str | None = None
    bind_ip: str = BIND_ALL
    response_timeout: float = DEFAULT_RESPONSE_TIMEOUT
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    launch_token: str | None = None  # proves to the gateway that the answer is this kernel's


def substitute_argv(argv: tuple[str, ...], connection_file: str, kernel_id: str) -> list[str]:
    """Replace the placeholders in the kernel's argv (plain text replacement, no format())."""
    return [
        arg.replace(env_names.CONNECTION_FILE_PLACEHOLDER, connection_file).replace(
            env_names.KERNEL_ID_PLACEHOLDER, kernel_id
        )
        for arg in argv
    ]


def write_connection_file(directory: str, kernel_id: str, info: dict[str, Any]) -> str:
    """Write the kernel's connection file (mode 0600: it holds the HMAC key); return its path."""
    path = os.path.join(directory, f"kernel-{kernel_id}.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(info, handle, indent=1)
    return path


def new_connection_info(sockets: list[socket.socket], bind_ip: str) -> dict[str, Any]:
    """A kernel's connection file contents: the reserved ``sockets``' ports (in
    ``ZMQ_CHANNELS`` order), a fresh HMAC key. Used for a kernel launched for a user and for a
    warm-pool kernel (:mod:`.warm`)."""
    return {
        **{name: port_of(sock) for name, sock in zip(ZMQ_CHANNELS, sockets)},
        # Where the kernel binds (every interface by default); EG reaches it at the pod IP.
        "ip": bind_ip,
        # The HMAC key: 128 random bits (``uuid`` would pull in ``platform`` for the same).
        "key": os.urandom(16).hex(),
        "transport": "tcp",
        "signature_scheme": "hmac-sha256",
        "kernel_name": "",
    }


def launch(config: LaunchConfig) -> int:
    """Run the kernel and report it to the gateway; return the kernel's exit code.

    Raises ``LauncherError`` for problems the user can fix (the kernel is stopped first).
    """
    sockets = reserve_ports(config.port_range, address=config.bind_ip)
    comm_socket = sockets[-1]
    connection_info = new_connection_info(sockets, config.bind_ip)
    workdir = tempfile.mkdtemp(prefix="kernel-launcher-")
    supervisor: Supervisor | None = None
    try:
        path = write_connection_file(workdir, config.kernel_id, connection_info)
        argv = substitute_argv(config.kernel_argv, path, config.kernel_id)
        kernel_env = dict(os.environ)
        kernel_env[env_names.JPY_PARENT_PID] = str(os.getpid())
        supervisor = Supervisor(config.stop_timeout)
        for sock in sockets[:-1]:
            sock.close()  # released for the kernel to bind
        kernel = supervisor.start_kernel(argv, kernel_env)
        supervisor.start_listener(comm_socket, connection_info["key"])
        log.info(
            "ports: %s, comm %d",
            ", ".join(f"{name[:-5]} {connection_info[name]}" for name in ZMQ_CHANNELS),
            port_of(comm_socket),
        )
        report: dict[str, Any] = {
            **connection_info,
            "kernel_id": config.kernel_id,
            "comm_port": port_of(comm_socket),
            "pid": kernel.pid,
            "pgid": kernel.pid,  # start_new_session: the kernel leads its own group
        }
        if config.launch_token:
            report["launch_token"] = config.launch_token

        def build(local_ip: str) -> bytes:
            return encode_payload({**report, "ip": config.pod_ip or local_ip}, config.public_key)

        delivered = deliver(
            config.response_address, build, config.response_timeout, supervisor.wait
        )
        if not delivered and supervisor.kernel_exited:
            log.warning("the kernel exited before its connection info was delivered")
        return supervisor.run()
    finally:
        if supervisor is not None:
            supervisor.close()
        for sock in sockets:
            sock.close()
        import shutil  # only now: its import (bz2, lzma) is not worth paying before delivery

        shutil.rmtree(workdir, ignore_errors=True)
