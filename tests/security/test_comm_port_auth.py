"""Attacks on a kernel's comm port by a neighbouring pod (no key), and what must still work.

A real ``kubeflow-kernel-launcher`` with ipykernel, EG 3.3's ResponseManager, and EG's own
comm-port client code signed as the gateway plugin signs it (fixtures shared with
``tests/kernel_launcher``). The neighbour speaks raw TCP to the comm port, as any pod could.
"""

from __future__ import annotations

import json
import queue
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from elastic_jupyter.kernel_launcher import comm_auth
from tests.kernel_launcher.conftest import (  # noqa: F401  (fixtures used by name)
    Launched,
    StartLauncher,
    connect_client,
    eg_comm,
    execute,
    get_reply,
    requires_kernel_venv,
    response_server,
    start_launcher,
    wait_for_output,
)

pytestmark = [requires_kernel_venv, pytest.mark.slow]

SLEEP_CELL = "import time\nprint('started', flush=True)\ntime.sleep(60)"


@pytest.fixture(scope="module")
def kernel(start_launcher: StartLauncher) -> Launched:  # noqa: F811
    return start_launcher()


@pytest.fixture(scope="module")
def client(kernel: Launched) -> Iterator[Any]:
    kc = connect_client(kernel.info)
    yield kc
    kc.stop_channels()


def _neighbour_sends(port: int, message: Any) -> None:
    """What a pod without the kernel's key can do: connect and send any JSON."""
    data = message if isinstance(message, bytes) else json.dumps(message).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)


def _log_shows(kernel: Launched, text: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in kernel.log:
            return True
        time.sleep(0.05)
    return False


def _kernel_still_computes(client: Any) -> None:
    reply, outputs = execute(client, "6*7")
    assert reply["status"] == "ok" and outputs == ["42"]


def test_unsigned_sigkill_sigstop_and_interrupt_are_refused(
    kernel: Launched,
    client: Any,
    eg_comm: Any,  # noqa: F811
) -> None:
    port = int(kernel.info["comm_port"])
    msg_id = client.execute(SLEEP_CELL)
    wait_for_output(client, msg_id, "started")
    for signum in (signal.SIGINT, signal.SIGSTOP, signal.SIGKILL):
        _neighbour_sends(port, {"signum": int(signum)})
    assert _log_shows(kernel, "refused a request from 127.0.0.1")
    assert "unauthenticated request (no 'mac')" in kernel.log
    # The cell is still running (no interrupt), the kernel neither stopped nor died ...
    with pytest.raises(queue.Empty):
        get_reply(client, msg_id, timeout=1.5)
    assert kernel.proc.poll() is None
    # ... and the gateway's own, signed interrupt still works.
    assert eg_comm(kernel.info).send_signal(signal.SIGINT) is None
    assert get_reply(client, msg_id, timeout=10)["ename"] == "KeyboardInterrupt"


def test_forged_mac_and_untruthful_shutdown_do_not_stop_the_kernel(
    kernel: Launched, client: Any
) -> None:
    port = int(kernel.info["comm_port"])
    _neighbour_sends(port, {"shutdown": "no"})
    _neighbour_sends(port, comm_auth.sign({"shutdown": 1}, "a-key-guessed-by-the-neighbour"))
    # Even the gateway's key does not make "no" mean yes.
    _neighbour_sends(port, comm_auth.sign({"shutdown": "no"}, kernel.info["key"]))
    assert _log_shows(kernel, "refused shutdown value 'no'")
    assert "request with a wrong MAC" in kernel.log
    time.sleep(0.5)
    assert kernel.proc.poll() is None
    _kernel_still_computes(client)


def test_signed_sigkill_and_sigstop_are_refused(kernel: Launched, client: Any) -> None:
    port = int(kernel.info["comm_port"])
    for signum in (signal.SIGKILL, signal.SIGSTOP):
        _neighbour_sends(port, comm_auth.sign({"signum": int(signum)}, kernel.info["key"]))
    assert _log_shows(kernel, "refused SIGKILL")
    assert _log_shows(kernel, "refused SIGSTOP")
    _kernel_still_computes(client)


def test_replayed_interrupt_is_refused(
    kernel: Launched,
    client: Any,
    eg_comm: Any,  # noqa: F811
) -> None:
    port = int(kernel.info["comm_port"])
    captured = comm_auth.sign({"signum": int(signal.SIGINT)}, kernel.info["key"])
    msg_id = client.execute(SLEEP_CELL)
    wait_for_output(client, msg_id, "started")
    _neighbour_sends(port, captured)  # the original request, as the gateway sent it
    assert get_reply(client, msg_id, timeout=10)["ename"] == "KeyboardInterrupt"
    msg_id = client.execute(SLEEP_CELL)
    wait_for_output(client, msg_id, "started")
    _neighbour_sends(port, captured)  # sniffed and sent again
    assert _log_shows(kernel, "replayed request")
    with pytest.raises(queue.Empty):
        get_reply(client, msg_id, timeout=1.5)
    stale = comm_auth.sign({"signum": 2}, kernel.info["key"], now=time.time() - 3600)
    _neighbour_sends(port, stale)
    assert _log_shows(kernel, "more than 60s from now")
    assert eg_comm(kernel.info).send_signal(signal.SIGINT) is None
    assert get_reply(client, msg_id, timeout=10)["ename"] == "KeyboardInterrupt"


def test_neighbour_holding_every_slot_cannot_block_interrupts(
    kernel: Launched,
    client: Any,
    eg_comm: Any,  # noqa: F811
) -> None:
    port = int(kernel.info["comm_port"])
    held = []
    try:
        for _ in range(200):  # far more than the listener's 64 slots, none ever finished
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b'{"signum":')
            held.append(sock)
        msg_id = client.execute(SLEEP_CELL)
        wait_for_output(client, msg_id, "started")
        assert eg_comm(kernel.info).send_signal(signal.SIGINT) is None
        assert get_reply(client, msg_id, timeout=10)["ename"] == "KeyboardInterrupt"
    finally:
        for sock in held:
            sock.close()
    assert "too many open connections" in kernel.log
