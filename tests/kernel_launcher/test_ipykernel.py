"""The launcher with a real ipykernel, EG 3.3's ResponseManager and EG's own comm-port code.

One kernel is shared by the tests that leave it running (payload, execute, interrupts, fuzz);
the lifecycle tests (shutdown, SIGTERM, exit codes) start their own.
"""

from __future__ import annotations

import random
import signal
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import (
    Launched,
    StartLauncher,
    connect_client,
    execute,
    get_reply,
    process_gone,
    requires_kernel_venv,
    wait_for_output,
)

pytestmark = [requires_kernel_venv, pytest.mark.slow]

# A 1000-port range (EG's minimum width) that the launcher must stay inside.
RANGE_LOWER = random.Random().randrange(30000, 50000)
PORT_RANGE = f"{RANGE_LOWER}..{RANGE_LOWER + 999}"
CHANNELS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port", "comm_port")
INTERRUPT_BOUND = 10.0  # seconds; the cell would otherwise run for 60


@pytest.fixture(scope="module")
def kernel(start_launcher: StartLauncher) -> Launched:
    """One ipykernel started through the launcher, flags in EG's spelling."""
    return start_launcher("--RemoteProcessProxy.port-range", PORT_RANGE)


@pytest.fixture(scope="module")
def client(kernel: Launched) -> Iterator[Any]:
    """jupyter_client 6.1 (the gateway's) connected with the info EG decrypted."""
    kc = connect_client(kernel.info)
    yield kc
    kc.stop_channels()


def test_payload_is_accepted_by_eg_and_decrypts_to_the_ports(kernel: Launched) -> None:
    info = kernel.info
    assert info["kernel_id"] == kernel.kernel_id
    ports = [info[name] for name in CHANNELS]
    assert all(isinstance(port, int) for port in ports)
    assert len(set(ports)) == 6
    assert all(RANGE_LOWER <= port <= RANGE_LOWER + 999 for port in ports)
    assert info["transport"] == "tcp"
    assert info["signature_scheme"] == "hmac-sha256"
    assert info["pid"] == info["pgid"] == kernel.kernel_pid
    # EG decrypted exactly the ports the launcher reserved and gave the kernel.
    expected = (
        f"ports: shell {info['shell_port']}, iopub {info['iopub_port']}, "
        f"stdin {info['stdin_port']}, control {info['control_port']}, hb {info['hb_port']}, "
        f"comm {info['comm_port']}"
    )
    assert expected in kernel.log


def test_execute_one_plus_one(client: Any) -> None:
    reply, outputs = execute(client, "1+1")
    assert reply["status"] == "ok"
    assert outputs == ["2"]


def _interrupt_running_cell(
    client: Any, kernel: Launched, eg_comm: Any, code: str
) -> dict[str, Any]:
    msg_id = client.execute(code)
    wait_for_output(client, msg_id, "started")
    started = time.monotonic()
    # Exactly what EG does on an interrupt request: send_signal(SIGINT) over the comm port.
    assert eg_comm(kernel.info).send_signal(signal.SIGINT) is None
    reply = get_reply(client, msg_id, timeout=INTERRUPT_BOUND)
    print(f"interrupt returned control after {time.monotonic() - started:.3f}s")
    return reply


def test_interrupt_sleep_through_comm_port(client: Any, kernel: Launched, eg_comm: Any) -> None:
    code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
    reply = _interrupt_running_cell(client, kernel, eg_comm, code)
    assert reply["status"] == "error"
    assert reply["ename"] == "KeyboardInterrupt"


def test_comm_port_accepts_and_interrupts_during_busy_loop(
    client: Any, kernel: Launched, eg_comm: Any
) -> None:
    code = "print('started', flush=True)\nwhile True:\n    pass"
    msg_id = client.execute(code)
    wait_for_output(client, msg_id, "started")
    eg = eg_comm(kernel.info)
    # EG connects with a 5 ms timeout; a liveness probe must get through while the kernel spins.
    for _ in range(20):
        eg._send_listener_request({"signum": 0})
    assert eg.send_signal(signal.SIGINT) is None
    reply = get_reply(client, msg_id, timeout=INTERRUPT_BOUND)
    assert reply["status"] == "error"
    assert reply["ename"] == "KeyboardInterrupt"


def _send_raw(port: int, data: bytes, half_close: bool) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the listener may drop an oversized message before we finish sending


def _fuzz_messages(rng: random.Random) -> list[bytes]:
    messages = [
        b"",
        b"   ",
        b"{",
        b"not json at all",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b"42",
        b'"signum"',
        b"null",
        b'{"signum": "2"}',
        b'{"signum": 2.5}',
        b'{"signum": -1}',
        b'{"signum": 100000}',
        b'{"signum": true}',
        b'{"signum": null}',
        b'{"shutdown": 0}',
        b'{"unknown": 1}',
        b'{"signum": 0}',
        b"{" * 10_000,
        b"[" * 60_000,  # nests deeper than json's recursion limit
        b'{"signum": 2, "pad": "' + b"x" * 200_000 + b'"}',  # oversized: must NOT interrupt
        b"x" * 3_000_000,
    ]
    messages += [
        bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 2048))) for _ in range(20)
    ]
    return messages


def test_garbage_and_huge_messages_leave_kernel_working(
    client: Any, kernel: Launched, eg_comm: Any
) -> None:
    rng = random.Random(682)
    port = int(kernel.info["comm_port"])
    # A client that connects and never finishes must not block anyone behind it.
    stalled = socket.create_connection(("127.0.0.1", port), timeout=5)
    stalled.sendall(b'{"signum":')
    try:
        for i, data in enumerate(_fuzz_messages(rng)):
            _send_raw(port, data, half_close=bool(i % 2))
        reply, outputs = execute(client, "6*7")
        assert reply["status"] == "ok"
        assert outputs == ["42"]
        assert "ignored" in kernel.log
        # The listener still interrupts, with the stalled connection still open.
        code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
        reply = _interrupt_running_cell(client, kernel, eg_comm, code)
        assert reply["ename"] == "KeyboardInterrupt"
    finally:
        stalled.close()
    assert kernel.proc.poll() is None
    # Nothing was swallowed by a crash-and-restart of the listener.
    assert "listener ended unexpectedly" not in kernel.log
    assert "failed to handle" not in kernel.log


def test_sigint_to_launcher_is_forwarded_as_interrupt(client: Any, kernel: Launched) -> None:
    msg_id = client.execute("import time\nprint('started', flush=True)\ntime.sleep(60)")
    wait_for_output(client, msg_id, "started")
    kernel.proc.send_signal(signal.SIGINT)
    reply = get_reply(client, msg_id, timeout=INTERRUPT_BOUND)
    assert reply["ename"] == "KeyboardInterrupt"
    assert kernel.proc.poll() is None


def test_shutdown_through_comm_port_ends_kernel_and_launcher(
    start_launcher: StartLauncher, eg_comm: Any
) -> None:
    launched = start_launcher()
    eg_comm(launched.info).shutdown_listener()
    code = launched.wait(30)
    assert code == 128 + signal.SIGTERM  # the kernel's own exit status, shell-style
    assert process_gone(launched.kernel_pid)
    assert "shutdown requested through the comm port" in launched.log


def test_sigterm_to_launcher_ends_kernel_and_launcher(start_launcher: StartLauncher) -> None:
    launched = start_launcher()
    connect_client(launched.info).stop_channels()  # the kernel is fully up
    launched.proc.send_signal(signal.SIGTERM)
    assert launched.wait(30) == 128 + signal.SIGTERM
    assert process_gone(launched.kernel_pid)


def test_eg_shutdown_sequence_exits_with_kernel_code_zero(
    start_launcher: StartLauncher, eg_comm: Any
) -> None:
    """EG's order: ZeroMQ shutdown_request (kernel exits 0), then the comm-port shutdown."""
    launched = start_launcher()
    kc = connect_client(launched.info)
    kc.shutdown()
    kc.stop_channels()
    assert launched.wait(30) == 0
    assert process_gone(launched.kernel_pid)
    # The listener is gone with the launcher: EG's shutdown_listener copes (ECONNREFUSED).
    eg_comm(launched.info).shutdown_listener()


def test_launcher_exits_with_the_kernels_exit_code(start_launcher: StartLauncher) -> None:
    script = "import sys, time; time.sleep(0.5); sys.exit(7)"
    launched = start_launcher("--", sys.executable, "-c", script, "{connection_file}")
    assert launched.wait(30) == 7
    assert "kernel exited with code 7" in launched.log
