"""A warm-pool kernel: started before any user asks for it, bound to one user by one claim.

The operator starts pool kernels with ``KERNEL_WARM_POOL=1`` and no kernel id, response address
or public key. ``cli.main`` then calls :func:`launch_pooled`:

1. Bind the comm port on the fixed ``KERNEL_CLAIM_PORT`` and reserve the five ZeroMQ ports;
   write the connection file (a fresh key, as for any kernel).
2. IPython (the default argv): start ``warm_kernel`` (``python -m
   elastic_jupyter.kernel_launcher.warm_kernel``), which imports ipykernel and initialises the
   kernel application - sockets bound, shell built - but does not serve a single message, so
   no user code can run. Any other kernel argv is started only after the claim (the pod is
   still warm: scheduled, image present, launcher up).
3. Wait for exactly one claim on the comm port: ``{"claim": {...}}`` signed (``comm_auth``)
   with the pool kernel's claim key, a file from its Secret that only the pod and the gateways
   allowed to read that Secret know. Anything else is logged and ignored.
4. Apply the identity: the claim's ``env`` (``KERNEL_USERNAME``, ``KERNEL_ID``, the client env
   the gateway allowed...), ``cwd`` and ``HOME`` go to the kernel through a pipe; the warm
   kernel sets ``os.environ`` and its working directory and answers before it starts serving.
5. From here on it is a normal launch (``launcher.py``): the comm port serves EG's signed
   signal/shutdown requests with the connection key (the claim key is no longer accepted, so a
   kernel is claimed once), and the connection info, with the claim's kernel id and launch
   token, goes to the claiming gateway's response address.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from . import env as env_names
from .comm_auth import AuthError, Verifier
from .errors import EXIT_NO_PORTS, LauncherError
from .kernel_process import Supervisor
from .launcher import new_connection_info, substitute_argv, write_connection_file
from .payload import deliver, encode_payload, load_public_key, parse_response_address
from .ports import ZMQ_CHANNELS, PortRange, port_of, reserve_ports

log = logging.getLogger(__name__)

#: The warm IPython kernel's module (run with ``python -m``).
WARM_KERNEL_MODULE = "elastic_jupyter.kernel_launcher.warm_kernel"
#: Seconds a claimer may take to send its request and EOF.
CLAIM_READ_TIMEOUT = 2.0
MAX_CLAIM_BYTES = 256 * 1024
#: Seconds the warm kernel may take to apply an identity.
APPLY_TIMEOUT = 30.0


class PoolConfig(NamedTuple):
    """A pool kernel's launch, validated by :func:`parse_pool_config`."""

    claim_key: str
    claim_port: int
    port_range: PortRange
    kernel_argv: tuple[str, ...]
    warm: bool  # the default IPython argv: started now, identity applied before it serves
    pod_ip: str | None
    bind_ip: str
    response_timeout: float
    stop_timeout: float


class Claim(NamedTuple):
    """One verified claim: who the kernel now belongs to."""

    kernel_id: str
    response_address: tuple[str, int]
    public_key: Any
    launch_token: str | None
    env: dict[str, str]
    cwd: str | None


def parse_claim(fields: Mapping[str, Any]) -> Claim:
    """Validate a verified request's ``claim`` object; raise ``ValueError`` saying what is wrong."""
    claim = fields.get("claim")
    if not isinstance(claim, Mapping) or set(fields) != {"claim"}:
        raise ValueError("not a claim request")
    kernel_id = claim.get("kernel_id")
    if not isinstance(kernel_id, str) or not kernel_id:
        raise ValueError("claim without a kernel_id")
    env = claim.get("env") or {}
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and "\x00" not in v for k, v in env.items()
    ):
        raise ValueError("claim env must map names to strings")
    cwd = claim.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise ValueError("claim cwd must be a string")
    token = claim.get("launch_token")
    try:
        address = parse_response_address(str(claim.get("response_address") or ""), "claim")
        key = load_public_key(str(claim.get("public_key") or ""), "claim")
    except LauncherError as exc:
        raise ValueError(str(exc)) from None
    return Claim(
        kernel_id=kernel_id,
        response_address=address,
        public_key=key,
        launch_token=token if isinstance(token, str) and token else None,
        env=dict(env),
        cwd=cwd or None,
    )


def _read_request(conn: socket.socket) -> bytes:
    conn.settimeout(CLAIM_READ_TIMEOUT)
    data = bytearray()
    deadline = time.monotonic() + CLAIM_READ_TIMEOUT
    while time.monotonic() < deadline:
        chunk = conn.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > MAX_CLAIM_BYTES:
            break
    raise OSError("no EOF within the time limit, or too large")


def wait_for_claim(server: socket.socket, claim_key: str, supervisor: Supervisor) -> Claim | None:
    """Serve the comm port until one valid claim arrives; ``None`` when the launch must end."""
    verifier = Verifier(claim_key)
    while not (supervisor.kernel_exited or supervisor.stopping):
        ready, _, _ = select.select([server.fileno(), supervisor.wake_fd], [], [], 1.0)
        if server.fileno() not in ready:
            supervisor.poll(0)
            continue
        try:
            conn, addr = server.accept()
        except OSError:
            continue
        peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)
        try:
            with conn:
                data = _read_request(conn)
            message = json.loads(data.decode("utf-8"))
            if not isinstance(message, dict):
                raise ValueError("not a JSON object")
            claim = parse_claim(verifier.verify(message))
        except (OSError, ValueError, AuthError) as exc:
            log.warning("pool kernel: refused a request from %s: %s", peer, exc)
            continue
        log.info("pool kernel: claimed for kernel %s by %s", claim.kernel_id, peer)
        return claim
    return None


def _apply_warm(identity_w: int, applied_r: int, claim: Claim, supervisor: Supervisor) -> None:
    """Send the identity to the warm kernel and wait until it says it applied it."""
    line = json.dumps({"env": claim.env, "cwd": claim.cwd}).encode("utf-8") + b"\n"
    view = memoryview(line)
    while view:
        view = view[os.write(identity_w, view) :]
    os.close(identity_w)
    deadline = time.monotonic() + APPLY_TIMEOUT
    answer = b""
    while not answer.endswith(b"\n"):
        if supervisor.kernel_exited or time.monotonic() > deadline:
            raise LauncherError("the warm kernel did not apply the claim's identity")
        ready, _, _ = select.select([applied_r, supervisor.wake_fd], [], [], 0.5)
        if applied_r in ready:
            chunk = os.read(applied_r, 4096)
            if not chunk:
                raise LauncherError("the warm kernel exited before applying the identity")
            answer += chunk
        else:
            supervisor.poll(0)
    os.close(applied_r)
    text = answer.decode("utf-8", "replace").strip()
    if text != "ok":
        log.warning("warm kernel: %s", text)


def launch_pooled(config: PoolConfig) -> int:
    """Run a pool kernel: warm up, wait for its claim, apply it, report to the claimer."""
    comm = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        comm.bind((config.bind_ip, config.claim_port))
    except OSError as exc:
        comm.close()
        raise LauncherError(
            f"cannot bind the claim port {config.claim_port} ({env_names.KERNEL_CLAIM_PORT}): "
            f"{exc.strerror}",
            EXIT_NO_PORTS,
        ) from None
    comm.listen(16)
    sockets = reserve_ports(config.port_range, count=len(ZMQ_CHANNELS), address=config.bind_ip)
    connection_info = new_connection_info(sockets, config.bind_ip)
    workdir = tempfile.mkdtemp(prefix="kernel-launcher-")
    supervisor: Supervisor | None = None
    pipes: list[int] = []
    try:
        path = write_connection_file(workdir, "pooled", connection_info)
        kernel_env = dict(os.environ)
        kernel_env[env_names.JPY_PARENT_PID] = str(os.getpid())
        supervisor = Supervisor(config.stop_timeout)
        for sock in sockets:
            sock.close()
        identity_r = identity_w = applied_r = applied_w = -1
        if config.warm:
            identity_r, identity_w = os.pipe()
            applied_r, applied_w = os.pipe()
            pipes += [identity_w, applied_r]
            kernel_env[env_names.KERNEL_WARM_FDS] = f"{identity_r},{applied_w}"
            argv = [sys.executable, "-m", WARM_KERNEL_MODULE, "-f", path]
            supervisor.start_kernel(argv, kernel_env, pass_fds=(identity_r, applied_w))
            os.close(identity_r)
            os.close(applied_w)
            log.info("pool kernel: warm IPython kernel started, waiting for a claim")
        else:
            log.info("pool kernel: waiting for a claim (the kernel starts after it)")
        claim = wait_for_claim(comm, config.claim_key, supervisor)
        if claim is None:
            log.info("pool kernel: ended before it was claimed")
            return supervisor.run() if supervisor.kernel is not None else 0
        if config.warm:
            pipes.clear()
            _apply_warm(identity_w, applied_r, claim, supervisor)
        else:
            kernel_env.update(claim.env)
            argv = substitute_argv(config.kernel_argv, path, claim.kernel_id)
            cwd = claim.cwd if claim.cwd and os.path.isdir(claim.cwd) else None
            supervisor.start_kernel(argv, kernel_env, cwd=cwd)
        assert supervisor.kernel is not None
        supervisor.start_listener(comm, connection_info["key"])
        report: dict[str, Any] = {
            **connection_info,
            "kernel_id": claim.kernel_id,
            "comm_port": port_of(comm),
            "pid": supervisor.kernel.pid,
            "pgid": supervisor.kernel.pid,
        }
        if claim.launch_token:
            report["launch_token"] = claim.launch_token

        def build(local_ip: str) -> bytes:
            return encode_payload({**report, "ip": config.pod_ip or local_ip}, claim.public_key)

        delivered = deliver(claim.response_address, build, config.response_timeout, supervisor.wait)
        if not delivered and supervisor.kernel_exited:
            log.warning("the kernel exited before its connection info was delivered")
        return supervisor.run()
    finally:
        for fd in pipes:
            with contextlib.suppress(OSError):
                os.close(fd)
        if supervisor is not None:
            supervisor.close()
        comm.close()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


def read_claim_key(path: str | None) -> str:
    """The claim key from the pool kernel's mounted Secret."""
    if not path:
        raise LauncherError(
            f"{env_names.KERNEL_WARM_POOL} is set but {env_names.KERNEL_CLAIM_KEY_FILE} is not: a "
            "pool kernel needs its claim key (the operator mounts the pool kernel's Secret)"
        )
    try:
        with open(path, encoding="utf-8") as handle:
            key = handle.read().strip()
    except OSError as exc:
        raise LauncherError(f"cannot read the claim key {path!r}: {exc.strerror}") from None
    if len(key) < 16:
        raise LauncherError(f"the claim key in {path!r} is too short (at least 16 characters)")
    return key


def parse_pool_config(
    args: Sequence[str], environ: Mapping[str, str], parse_common: Any
) -> PoolConfig:
    """A pool kernel's config. ``parse_common(args, environ)`` (from ``cli``) returns the port
    range, kernel argv, whether it is the default IPython argv, pod/bind IPs and timeouts."""
    common = parse_common(args, environ)
    port_text = environ.get(env_names.KERNEL_CLAIM_PORT, "").strip()
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise LauncherError(
            f"{env_names.KERNEL_CLAIM_PORT}={port_text!r}: a pool kernel needs its fixed comm "
            "port (1-65535)"
        )
    return PoolConfig(
        claim_key=read_claim_key(environ.get(env_names.KERNEL_CLAIM_KEY_FILE)),
        claim_port=int(port_text),
        **common,
    )
