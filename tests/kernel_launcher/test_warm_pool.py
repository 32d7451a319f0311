"""A warm-pool kernel through the real launcher and ipykernel, EG's ResponseManager answering.

The pool kernel starts with no kernel id, response address or key; it must refuse unsigned and
wrongly signed claims, accept exactly one claim signed with its claim key, apply the claim's
identity (env, working directory, HOME) before it serves, report to the claimer, and never
accept a second claim.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter.kernel_launcher import comm_auth

from .conftest import (
    Launched,
    ResponseServer,
    StartLauncher,
    connect_client,
    execute,
    requires_kernel_venv,
)

pytestmark = [requires_kernel_venv, pytest.mark.slow]

CLAIM_KEY = "k" * 8 + uuid.uuid4().hex


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _send(port: int, message: dict[str, Any]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(json.dumps(message).encode())
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)


def _wait_for(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _start_pool_kernel(start_launcher: StartLauncher, tmp_path: Path) -> tuple[Launched, int]:
    key_file = tmp_path / "claim-key"
    key_file.write_text(CLAIM_KEY)
    port = _free_port()
    launched = start_launcher(
        env={
            "KERNEL_ID": None,
            "RESPONSE_ADDRESS": None,
            "PUBLIC_KEY": None,
            "KERNEL_WARM_POOL": "1",
            "KERNEL_CLAIM_KEY_FILE": str(key_file),
            "KERNEL_CLAIM_PORT": str(port),
            "KERNEL_BIND_IP": "127.0.0.1",
        },
        wait_for_info=False,
        register=False,
    )
    assert _wait_for(lambda: "waiting for a claim" in launched.log), launched.log
    return launched, port


def _claim(server: ResponseServer, kernel_id: str, token: str, home: Path) -> dict[str, Any]:
    return {
        "claim": {
            "kernel_id": kernel_id,
            "response_address": server.response_address,
            "public_key": server.public_key,
            "launch_token": token,
            "env": {
                "KERNEL_USERNAME": "alice",
                "KERNEL_ID": kernel_id,
                "KERNEL_MY_SETTING": "from-the-client",
                "HOME": str(home),
            },
            "cwd": str(home),
        }
    }


def test_pool_kernel_applies_one_claim_before_it_serves(
    start_launcher: StartLauncher, response_server: ResponseServer, tmp_path: Path
) -> None:
    launched, port = _start_pool_kernel(start_launcher, tmp_path)
    kernel_id, token = str(uuid.uuid4()), uuid.uuid4().hex
    response_server.register(kernel_id, token)
    home = tmp_path / "home-alice"
    home.mkdir()
    claim = _claim(response_server, kernel_id, token, home)

    # Not signed, signed with another key: refused, nothing reported to the gateway.
    _send(port, claim)
    _send(port, comm_auth.sign(claim, "not-the-claim-key-0123456789"))
    assert _wait_for(lambda: launched.log.count("refused a request") >= 2), launched.log
    assert response_server.wait_info(kernel_id, timeout=0.5) is None

    _send(port, comm_auth.sign(claim, CLAIM_KEY))
    message = response_server.wait_info(kernel_id, timeout=30)
    assert message is not None, launched.log
    info = message["connection_info"]
    assert info["comm_port"] == port

    client = connect_client(info)
    try:
        reply, out = execute(
            client,
            "import os, json; print(json.dumps([os.environ.get('KERNEL_USERNAME'), "
            "os.environ.get('KERNEL_MY_SETTING'), os.environ.get('HOME'), os.getcwd(), "
            "os.path.expanduser('~')]))",
        )
        assert reply["status"] == "ok"
        assert json.loads("".join(out)) == [
            "alice",
            "from-the-client",
            str(home),
            str(home),
            str(home),
        ]
        # A second claim, even signed with the claim key, is not obeyed: the comm port now
        # takes only requests signed with the connection key.
        other = str(uuid.uuid4())
        response_server.register(other, token)
        _send(port, comm_auth.sign(_claim(response_server, other, token, home), CLAIM_KEY))
        assert response_server.wait_info(other, timeout=1.0) is None
        reply, out = execute(client, "print(os.environ['KERNEL_USERNAME'])")
        assert "".join(out).strip() == "alice"
    finally:
        client.stop_channels()


def test_pool_kernel_without_claim_key_fails_clearly(
    start_launcher: StartLauncher, tmp_path: Path
) -> None:
    launched = start_launcher(
        env={
            "KERNEL_ID": None,
            "RESPONSE_ADDRESS": None,
            "PUBLIC_KEY": None,
            "KERNEL_WARM_POOL": "1",
            "KERNEL_CLAIM_PORT": str(_free_port()),
        },
        wait_for_info=False,
        register=False,
    )
    assert launched.wait(30) == 2
    assert "KERNEL_CLAIM_KEY_FILE is not" in launched.log
