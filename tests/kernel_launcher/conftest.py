"""Fixtures for the launcher tests: EG's real ResponseManager, real launchers, real kernels.

* ``response_server``: EG 3.3's ``ResponseManager`` in its own process (``response_server.py``).
* ``start_launcher``: runs ``kubeflow-kernel-launcher`` from the kernel venv (``.venv-kernel``,
  jupyter_client 8 / ipykernel 7) as a subprocess, registered with the ResponseManager; every
  launcher and its kernel's process group is killed at teardown.
* ``eg_comm``: EG's own ``RemoteProcessProxy`` comm-port methods (``send_signal``,
  ``shutdown_listener``, ``_send_listener_request``) on an object carrying only the fields
  they read, so requests go out exactly as EG sends them (5 ms connect timeout included).
* ``connect_client``: a jupyter_client 6.1 (the gateway's version) BlockingKernelClient on the
  connection info EG decrypted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]
KERNEL_VENV = ROOT / ".venv-kernel"
KERNEL_PYTHON = KERNEL_VENV / "bin" / "python"
LAUNCHER = KERNEL_VENV / "bin" / "kubeflow-kernel-launcher"
RESPONSE_SERVER = Path(__file__).with_name("response_server.py")

requires_kernel_venv = pytest.mark.skipif(
    not LAUNCHER.exists(), reason=f"{LAUNCHER} missing: run `make venv` first"
)


def launcher_tree(directory: Path, with_crypto: bool) -> Path:
    """A PYTHONPATH entry holding only our launcher package (and pycryptodomex if asked).

    Lets an interpreter without our package installed — the base Python, Python 3.9 — run
    ``python -m elastic_jupyter.kernel_launcher`` from this work tree. pycryptodomex ships
    ``abi3`` wheels, so the kernel venv's copy loads in any CPython 3.x.
    """
    package = directory / "elastic_jupyter"
    package.mkdir(parents=True, exist_ok=True)
    (package / "kernel_launcher").symlink_to(ROOT / "kernel_launcher")
    if with_crypto:
        import Cryptodome

        (directory / "Cryptodome").symlink_to(Path(Cryptodome.__file__).parent)
    return directory


class ResponseServer:
    """Client side of ``response_server.py``: register ids, await EG-accepted connection info."""

    def __init__(self, env: dict[str, str] | None = None, stderr: Any = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(RESPONSE_SERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None
        hello = json.loads(self.proc.stdout.readline())
        self.public_key: str = hello["public_key"]
        self.response_address: str = hello["response_address"]
        self._received: dict[str, dict[str, Any]] = {}
        self._registered: set[str] = set()
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            with self._cond:
                if "registered" in message:
                    self._registered.add(message["registered"])
                else:
                    self._received[message["kernel_id"]] = message
                self._cond.notify_all()

    def register(self, kernel_id: str, launch_token: str | None = None) -> None:
        """EG's ``register_event(kernel_id)`` (after the plugin's ``expect`` when a launch
        token is given); returns once it is registered."""
        assert self.proc.stdin is not None
        command = {"register": kernel_id, "launch_token": launch_token}
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        with self._cond:
            assert self._cond.wait_for(lambda: kernel_id in self._registered, timeout=10)

    def wait_info(self, kernel_id: str, timeout: float = 30.0) -> dict[str, Any] | None:
        """The message for ``kernel_id`` once EG accepted its payload, or None on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: kernel_id in self._received, timeout=timeout)
            return self._received.get(kernel_id)

    def close(self) -> None:
        """Stop the server process."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def response_server() -> Iterator[ResponseServer]:
    """One EG ResponseManager for the whole session (as one gateway serves many kernels)."""
    server = ResponseServer()
    yield server
    server.close()


@dataclass
class Launched:
    """A running launcher subprocess and what EG received from it."""

    kernel_id: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    info: dict[str, Any] = field(default_factory=dict)
    received_at: float = 0.0

    @property
    def log(self) -> str:
        """The launcher's (and kernel's) stderr so far."""
        return self.log_path.read_text(errors="replace")

    @property
    def kernel_pid(self) -> int:
        """The kernel's pid as the launcher reported it."""
        return int(self.info["pid"])

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the launcher to exit; return its exit code."""
        return self.proc.wait(timeout)


def kill_group(pid: int) -> None:
    """SIGKILL a process group, ignoring one that is gone."""
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def process_gone(pid: int, timeout: float = 10.0) -> bool:
    """True once ``pid`` no longer exists (or is a zombie nobody reaped yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


StartLauncher = Callable[..., Launched]


@pytest.fixture(scope="module")
def start_launcher(
    response_server: ResponseServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartLauncher]:
    """Start launchers registered with EG; wait for EG to accept their connection info.

    Module-scoped so that a module can share one kernel; everything started is killed when
    the module ends.
    """
    started: list[Launched] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        wait_for_info: bool = True,
        register: bool = True,
        command: list[str] | None = None,
        cwd: Path | None = None,
    ) -> Launched:
        kernel_id = str(uuid.uuid4())
        if register:
            response_server.register(kernel_id)
        full_env = {
            **os.environ,
            "KERNEL_ID": kernel_id,
            "RESPONSE_ADDRESS": response_server.response_address,
            "PUBLIC_KEY": response_server.public_key,
            "KERNEL_LAUNCHER_LOG_LEVEL": "DEBUG",
            **(env or {}),
        }
        full_env = {k: v for k, v in full_env.items() if v is not None}
        log_path = tmp_path_factory.mktemp("launcher") / "stderr.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [*(command or [str(LAUNCHER)]), *args],
                env=full_env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=cwd or log_path.parent,
            )
        launched = Launched(kernel_id, proc, log_path)
        started.append(launched)
        if wait_for_info:
            message = response_server.wait_info(kernel_id, timeout=30)
            assert message is not None, f"EG never accepted the payload:\n{launched.log}"
            launched.info = message["connection_info"]
            launched.received_at = message["received_at"]
        return launched

    yield start
    for launched in started:
        if launched.info:
            kill_group(launched.kernel_pid)
        kill_group(launched.proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            launched.proc.wait(10)


@pytest.fixture(scope="session")
def eg_comm() -> Callable[[dict[str, Any]], Any]:
    """EG 3.3's own comm-port client code, aimed at the launcher described by ``info``.

    The returned object carries only the fields ``RemoteProcessProxy``'s methods read, and
    those methods themselves (``send_signal``, ``shutdown_listener``,
    ``_send_listener_request``), so requests go out exactly as EG sends them (5 ms connect
    timeout included) without building a whole kernel manager.
    """
    from enterprise_gateway.services.processproxies.processproxy import RemoteProcessProxy

    from elastic_jupyter.kernel_launcher import comm_auth

    class EGComm(SimpleNamespace):
        send_signal = RemoteProcessProxy.send_signal
        shutdown_listener = RemoteProcessProxy.shutdown_listener

        def _send_listener_request(
            self, request: dict[str, Any], shutdown_socket: bool = False
        ) -> None:
            # What KubeflowProcessProxy does: EG's own send, the request signed with the key.
            signed = comm_auth.sign(request, self.key)
            RemoteProcessProxy._send_listener_request(self, signed, shutdown_socket)

    def make(info: dict[str, Any]) -> Any:
        return EGComm(
            key=info["key"],
            comm_ip="127.0.0.1",
            comm_port=int(info["comm_port"]),
            kernel_id=info["kernel_id"],
            log=logging.getLogger("enterprise_gateway"),
            tunnel_processes={},
        )

    return make


def connect_client(info: dict[str, Any], timeout: float = 60.0) -> Any:
    """A ready jupyter_client 6.1 BlockingKernelClient for the kernel EG was told about."""
    from jupyter_client.blocking import BlockingKernelClient

    client = BlockingKernelClient()
    fields = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
    client.load_connection_info(
        {
            **{name: info[name] for name in fields},
            "ip": "127.0.0.1",  # EG would use the pod IP; the launcher bound every interface
            "key": info["key"],
            "transport": info["transport"],
            "signature_scheme": info["signature_scheme"],
        }
    )
    # No heartbeat: without a kernel manager, jupyter_client 6 judges liveness by heartbeat
    # alone and calls a kernel that takes over a second to start (a loaded machine) dead.
    client.start_channels(hb=False)
    client.wait_for_ready(timeout=timeout)
    return client


def execute(client: Any, code: str, timeout: float = 30.0) -> tuple[dict[str, Any], list[str]]:
    """Run ``code``; return the execute reply content and the text it produced."""
    outputs: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        content = msg["content"]
        if msg["msg_type"] == "stream":
            outputs.append(content["text"])
        elif msg["msg_type"] in ("execute_result", "display_data"):
            outputs.append(content["data"].get("text/plain", ""))

    reply = client.execute_interactive(code, timeout=timeout, output_hook=hook)
    return reply["content"], outputs


def wait_for_output(client: Any, msg_id: str, text: str, timeout: float = 30.0) -> None:
    """Read iopub until the cell ``msg_id`` printed ``text``."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        try:
            msg = client.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
        except Exception:  # queue.Empty
            break
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            seen += msg["content"]["text"]
            if text in seen:
                return
    raise AssertionError(f"cell never printed {text!r} (saw {seen!r})")


def get_reply(client: Any, msg_id: str, timeout: float) -> dict[str, Any]:
    """The shell reply to ``msg_id``."""
    deadline = time.monotonic() + timeout
    while True:
        msg = client.get_shell_msg(timeout=max(0.01, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") == msg_id:
            content: dict[str, Any] = msg["content"]
            return content
