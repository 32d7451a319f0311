"""Forged answers at the gateway's response address, from a neighbour who knows a kernel's id.

Enterprise Gateway 3.3's real ResponseManager (in its own process, ``response_server.py``) with
the gateway plugin's launch-token check installed, as the gateway boots it. The attacker has what
any kernel pod shows: the gateway's ``PUBLIC_KEY`` and ``RESPONSE_ADDRESS`` (every kernel's env)
and a launching kernel's id (JupyterKernel labels), and sends "that kernel listens at my address"
before the real kernel does. The real ``kubeflow-kernel-launcher`` reads its launch token from a
file, as the operator mounts the kernel's Secret.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter.kernel_launcher import payload
from tests.kernel_launcher.conftest import (
    LAUNCHER,
    ResponseServer,
    kill_group,
    requires_kernel_venv,
)

pytestmark = [requires_kernel_venv, pytest.mark.slow]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ResponseServer, Path]]:
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with log.open("w") as stderr:
        server = ResponseServer(env={"EJ_GUARD_RESPONSES": "1"}, stderr=stderr)
    yield server, log
    server.close()


def _forge(server: ResponseServer, kernel_id: str, **extra: Any) -> None:
    """The neighbour's answer: its own address and ports, encrypted with the public key."""
    info = {
        "kernel_id": kernel_id,
        "ip": "127.0.0.1",
        "shell_port": 1,
        "iopub_port": 2,
        "stdin_port": 3,
        "control_port": 4,
        "hb_port": 5,
        "comm_port": 6,
        "key": "attacker-chosen-key",
        "transport": "tcp",
        "signature_scheme": "hmac-sha256",
        **extra,
    }
    data = payload.encode_payload(info, payload.load_public_key(server.public_key))
    host, port = payload.parse_response_address(server.response_address)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        while sock.recv(1024):
            pass


def _log_shows(log: Path, text: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return True
        time.sleep(0.05)
    return False


def test_forged_and_replayed_answers_are_refused(
    gateway: tuple[ResponseServer, Path], tmp_path: Path
) -> None:
    server, log = gateway
    kernel_id = str(uuid.uuid4())
    token = secrets.token_urlsafe(32)
    server.register(kernel_id, launch_token=token)

    # The neighbour answers first: without a token, then with a guessed one.
    _forge(server, kernel_id)
    _forge(server, kernel_id, launch_token="guessed")
    assert _log_shows(log, f"refused connection info for kernel {kernel_id}")
    assert "not from the kernel's own pod" in log.read_text()
    assert server.wait_info(kernel_id, timeout=1.0) is None, "EG accepted a forged answer"

    # The real kernel, with the token from its mounted Secret, is accepted.
    token_file = tmp_path / "launch-token"
    token_file.write_text(token + "\n")
    env = {
        **os.environ,
        "KERNEL_ID": kernel_id,
        "RESPONSE_ADDRESS": server.response_address,
        "PUBLIC_KEY": server.public_key,
        "KERNEL_LAUNCH_TOKEN_FILE": str(token_file),
        "KERNEL_ARGV": '["sleep", "60", "{connection_file}"]',
    }
    proc = subprocess.Popen(
        [str(LAUNCHER)], env=env, cwd=tmp_path, start_new_session=True, stderr=subprocess.DEVNULL
    )
    try:
        message = server.wait_info(kernel_id, timeout=30)
        assert message is not None, "the real kernel's answer was not accepted"
        info = message["connection_info"]
        assert info["key"] != "attacker-chosen-key"
        assert info["pid"] > 0 and "launch_token" not in info  # the token stays in the gateway

        # The same token again (a replay, or a second sender): accepted once only.
        _forge(server, kernel_id, launch_token=token)
        assert _log_shows(log, "a second answer")
    finally:
        kill_group(proc.pid)
        proc.wait(10)


def test_launcher_without_its_token_file_says_so(
    gateway: tuple[ResponseServer, Path], tmp_path: Path
) -> None:
    server, _ = gateway
    env = {
        **os.environ,
        "KERNEL_ID": str(uuid.uuid4()),
        "RESPONSE_ADDRESS": server.response_address,
        "PUBLIC_KEY": server.public_key,
        "KERNEL_LAUNCH_TOKEN_FILE": str(tmp_path / "missing"),
    }
    out = subprocess.run(
        [str(LAUNCHER)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert out.returncode != 0
    assert "cannot read the launch token" in out.stderr
    assert "KERNEL_LAUNCH_TOKEN_FILE" in out.stderr
