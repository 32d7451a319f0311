"""Fast checks of the launcher's pieces, in-process (no kernels)."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from elastic_jupyter.kernel_launcher import comm_auth, env, listener, payload, ports
from elastic_jupyter.kernel_launcher.errors import LauncherError
from elastic_jupyter.kernel_launcher.kernel_process import exit_code_of
from elastic_jupyter.kernel_launcher.launcher import substitute_argv


@pytest.fixture(scope="module")
def rsa_key() -> Any:
    from Cryptodome.PublicKey import RSA

    return RSA.generate(1024)  # EG's ResponseManager.KEY_SIZE


def eg_public_key(key: Any) -> str:
    """The key as EG's ResponseManager.public_key renders it (PEM body without lines)."""
    pem: str = key.publickey().export_key("PEM").decode()
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


def eg_decode(key: Any, wire: bytes) -> dict[str, Any]:
    """Decode with EG 3.3's own ResponseManager._decode_payload (on a minimal stand-in)."""
    from enterprise_gateway.services.processproxies.processproxy import ResponseManager

    stand_in = SimpleNamespace(_private_key=key, log=logging.getLogger("eg"), _response_registry={})
    decoded: dict[str, Any] = ResponseManager._decode_payload(stand_in, wire.decode("utf-8"))
    return decoded


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 300])
def test_payload_v1_decodes_with_egs_code(rsa_key: Any, size: int) -> None:
    public = payload.load_public_key(eg_public_key(rsa_key))
    info = {"kernel_id": "k-1", "shell_port": 1234, "pad": "x" * size}
    wire = payload.encode_payload(info, public)
    envelope = json.loads(base64.b64decode(wire))
    assert set(envelope) == {"version", "key", "conn_info"}
    assert envelope["version"] == 1  # an integer: EG rejects the string "1"
    assert eg_decode(rsa_key, wire) == info


def test_public_key_in_pem_form_is_tolerated(rsa_key: Any) -> None:
    pem = rsa_key.publickey().export_key("PEM").decode()
    public = payload.load_public_key(pem)
    assert eg_decode(rsa_key, payload.encode_payload({"kernel_id": "k"}, public))["kernel_id"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.5:8877", ("10.0.0.5", 8877)),
        ("gateway.ns.svc:8877", ("gateway.ns.svc", 8877)),
        ("[fd00::1]:8877", ("fd00::1", 8877)),
        (" 127.0.0.1:1 ", ("127.0.0.1", 1)),
    ],
)
def test_response_address_parsing(text: str, expected: tuple[str, int]) -> None:
    assert payload.parse_response_address(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0..0", (0, 0)), ("1024..65535", (1024, 65535)), (" 40000..40005 ", (40000, 40005))],
)
def test_port_range_parsing(text: str, expected: tuple[int, int]) -> None:
    parsed = ports.parse_port_range(text)
    assert (parsed.lower, parsed.upper) == expected


def test_reserved_ports_are_distinct_and_inside_the_range() -> None:
    sockets = ports.reserve_ports(ports.parse_port_range("45000..45999"))
    try:
        numbers = [ports.port_of(s) for s in sockets]
        assert len(set(numbers)) == ports.PORTS_NEEDED
        assert all(45000 <= n <= 45999 for n in numbers)
    finally:
        for sock in sockets:
            sock.close()


def test_ports_bind_the_given_address_only() -> None:
    # A port held on one loopback address is still free on another, but not on "every
    # interface": why sandbox pods, which share one host network, bind their own pod IPs.
    held = ports.reserve_ports(ports.parse_port_range("0..0"), count=1, address="127.0.0.2")
    try:
        assert held[0].getsockname()[0] == "127.0.0.2"
        port = ports.port_of(held[0])
        other = ports._bind(port, "127.0.0.3")
        assert other is not None
        other.close()
        assert ports._bind(port, ports.BIND_ALL) is None
    finally:
        held[0].close()


def test_a_full_range_is_reported() -> None:
    held = ports.reserve_ports(ports.parse_port_range("0..0"), count=1)
    port = ports.port_of(held[0])
    try:
        # A 6-port range in which one port is taken cannot hold a kernel.
        lower = min(port, 65535 - 5)
        with pytest.raises(LauncherError, match=r"only [0-5] of 6 ports tried in range .* needs 6"):
            ports.reserve_ports(ports.PortRange(lower, lower + 5))
    finally:
        held[0].close()


def test_argv_placeholders_are_replaced_textually() -> None:
    argv = ("k", "-f", "{connection_file}", "--id={kernel_id}", "{other}", "{")
    assert substitute_argv(argv, "/tmp/c.json", "abc") == [
        "k",
        "-f",
        "/tmp/c.json",
        "--id=abc",
        "{other}",
        "{",
    ]


def test_exit_codes_follow_the_shell_convention() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    assert exit_code_of(os.waitpid(pid, 0)[1]) == 7
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    assert exit_code_of(os.waitpid(pid, 0)[1]) == 128 + signal.SIGKILL


KEY = "0123456789abcdef0123456789abcdef"


def _signed(request: dict[str, object]) -> bytes:
    return json.dumps(comm_auth.sign(request, KEY)).encode()


def test_listener_message_handling(caplog: pytest.LogCaptureFixture) -> None:
    own_group = os.getpgrp()  # signal 0 only checks that the group exists
    verifier = comm_auth.Verifier(KEY)
    assert listener.handle_message(_signed({"shutdown": 1}), own_group, verifier) is True
    assert listener.handle_message(_signed({"signum": 0}), own_group, verifier) is False
    bad_messages = (
        b"{",
        b"[]",
        _signed({"signum": "2"}),
        _signed({"signum": 999}),
        _signed({"x": 1}),
        b"\xff",
        b"[" * 60_000,
    )
    for bad in bad_messages:
        assert listener.handle_message(bad, own_group, verifier) is False
    assert len([r for r in caplog.records if "ignored" in r.getMessage()]) == len(bad_messages)


def test_listener_signals_a_process_group() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True
    )
    try:
        verifier = comm_auth.Verifier(KEY)
        listener.handle_message(_signed({"signum": signal.SIGTERM}), child.pid, verifier)
        assert child.wait(10) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()


def test_env_module_is_import_light() -> None:
    code = (
        "import sys; before = set(sys.modules)\n"
        "import elastic_jupyter.kernel_launcher.env as e\n"
        "new = set(sys.modules) - before\n"
        "ours = {m for m in new if m.startswith('elastic_jupyter')}\n"
        "assert ours <= {'elastic_jupyter', 'elastic_jupyter.kernel_launcher', e.__name__}, ours\n"
        "other = {m.split('.')[0] for m in new - ours} - sys.stdlib_module_names\n"
        "assert not other, other\n"
        "print(e.KERNEL_ID)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "KERNEL_ID"


def test_env_contract_names() -> None:
    assert env.KERNEL_ID == "KERNEL_ID"
    assert env.RESPONSE_ADDRESS == "RESPONSE_ADDRESS"
    assert env.PUBLIC_KEY == "PUBLIC_KEY"
    assert env.PORT_RANGE == "PORT_RANGE"
    assert env.KERNEL_ARGV in env.ALL
    assert len(set(env.ALL)) == len(env.ALL)


def test_listener_process_exits_on_shutdown_request() -> None:
    # The listener gets a socket that is bound, not yet listening, as reserve_ports leaves it.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    pid = listener.start_listener(sock, os.getpgrp(), [], KEY)
    try:
        with socket.create_connection(sock.getsockname(), timeout=5) as client:
            client.sendall(_signed({"shutdown": 1}))
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == listener.EXIT_SHUTDOWN
    finally:
        sock.close()
