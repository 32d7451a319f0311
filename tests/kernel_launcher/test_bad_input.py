"""Every mistake a user can make: a non-zero exit and one ERROR line saying what and how to fix.

These launchers fail before or right after the kernel starts, so each run is cheap; where a
kernel does start (unreachable gateway) it is a stand-in process and must be stopped too.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers import free_port

from .conftest import (
    LAUNCHER,
    ResponseServer,
    launcher_tree,
    process_gone,
    requires_kernel_venv,
)

pytestmark = requires_kernel_venv

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)", "{connection_file}"]


def run_launcher(
    args: list[str], env: dict[str, str], timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run the launcher with exactly ``env`` (plus PATH) and capture its log."""
    full_env = {"PATH": "/usr/bin:/bin", "KERNEL_LAUNCHER_LOG_LEVEL": "INFO", **env}
    return subprocess.run(
        [str(LAUNCHER), *args], env=full_env, capture_output=True, text=True, timeout=timeout
    )


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The launcher's ERROR log lines."""
    return [line for line in result.stderr.splitlines() if " ERROR kernel-launcher[" in line]


def assert_one_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Non-zero exit, exactly one ERROR line containing every ``expected`` fragment."""
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    for fragment in expected:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def good_env(response_server: ResponseServer) -> dict[str, str]:
    """A complete, valid environment; each test breaks one thing."""
    return {
        "KERNEL_ID": str(uuid.uuid4()),
        "RESPONSE_ADDRESS": response_server.response_address,
        "PUBLIC_KEY": response_server.public_key,
    }


def without(env: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != name}


def test_missing_public_key(good_env: dict[str, str]) -> None:
    result = run_launcher([], without(good_env, "PUBLIC_KEY"))
    assert_one_error(result, "no public key", "--public-key", "PUBLIC_KEY")
    assert result.returncode == 2


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("not base64 at all!", "not valid base64"),
        ("aGVsbG8gd29ybGQ=", "does not decode to an RSA public key"),
        ("{public_key}", "placeholder nobody substituted"),
    ],
)
def test_malformed_public_key(good_env: dict[str, str], key: str, reason: str) -> None:
    result = run_launcher(["--public-key", key], good_env)
    assert_one_error(result, "malformed public key", reason, "{public_key} unchanged")


def test_missing_kernel_id(good_env: dict[str, str]) -> None:
    result = run_launcher([], without(good_env, "KERNEL_ID"))
    assert_one_error(result, "kernel id", "--kernel-id", "KERNEL_ID")


def test_missing_response_address(good_env: dict[str, str]) -> None:
    result = run_launcher([], without(good_env, "RESPONSE_ADDRESS"))
    assert_one_error(result, "no response address", "RESPONSE_ADDRESS")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("gateway", "expected host:port"),
        ("gateway:http", "port must be 1..65535"),
        ("10.0.0.1:70000", "port must be 1..65535"),
        ("http://gateway:8877", "without a scheme"),
    ],
)
def test_malformed_response_address(good_env: dict[str, str], address: str, reason: str) -> None:
    result = run_launcher([], {**good_env, "RESPONSE_ADDRESS": address})
    assert_one_error(result, "malformed response address", reason, "{response_address}")


def test_eg_prefixed_fallbacks_are_read(good_env: dict[str, str]) -> None:
    env = without(without(good_env, "RESPONSE_ADDRESS"), "PUBLIC_KEY")
    env.update(EG_RESPONSE_ADDRESS="gateway", EG_PUBLIC_KEY=good_env["PUBLIC_KEY"])
    result = run_launcher([], env)
    assert_one_error(result, "malformed response address 'gateway'", "EG_RESPONSE_ADDRESS")


def test_unreachable_response_address_stops_the_kernel(good_env: dict[str, str]) -> None:
    env = {
        **good_env,
        "RESPONSE_ADDRESS": f"127.0.0.1:{free_port()}",
        "KERNEL_LAUNCHER_RESPONSE_TIMEOUT": "1",
    }
    result = run_launcher(["--", *SLEEPER], env)
    line = assert_one_error(result, "could not deliver the connection info", "reachable")
    assert "KERNEL_LAUNCHER_RESPONSE_TIMEOUT" in line
    assert result.returncode == 3
    match = re.search(r"kernel started, pid (\d+)", result.stderr)
    assert match, result.stderr
    assert process_gone(int(match.group(1)))


def test_unresolvable_response_host(good_env: dict[str, str]) -> None:
    env = {
        **good_env,
        "RESPONSE_ADDRESS": "no-such-gateway.invalid:8877",
        "KERNEL_LAUNCHER_RESPONSE_TIMEOUT": "0.5",
    }
    result = run_launcher(["--", *SLEEPER], env)
    assert_one_error(result, "could not deliver", "does not resolve")


@pytest.mark.parametrize(
    ("port_range", "reason"),
    [
        ("40000-41000", "expected 'lower..upper'"),
        ("abc..def", "expected 'lower..upper'"),
        ("80..2000", "within 1024..65535"),
        ("41000..40000", "lower end is above the upper end"),
        ("40000..40004", "too small"),
    ],
)
def test_bad_port_range(good_env: dict[str, str], port_range: str, reason: str) -> None:
    result = run_launcher(["--port-range", port_range], good_env)
    assert_one_error(result, reason, repr(port_range))


@pytest.mark.parametrize("address", ["everywhere", "300.1.2.3", "::1"])
def test_bad_bind_address(good_env: dict[str, str], address: str) -> None:
    result = run_launcher([], {**good_env, "KERNEL_BIND_IP": address})
    assert_one_error(result, "invalid bind address", repr(address), "KERNEL_BIND_IP")


def test_bad_port_range_from_eg_env(good_env: dict[str, str]) -> None:
    result = run_launcher([], {**good_env, "EG_PORT_RANGE": "40000..40002"})
    assert_one_error(result, "too small", "EG_PORT_RANGE", "needs 6")


def test_kernel_command_not_found(good_env: dict[str, str]) -> None:
    result = run_launcher(["--", "no-such-kernel", "-f", "{connection_file}"], good_env)
    assert_one_error(result, "kernel command not found", "'no-such-kernel'", "install the kernel")
    assert result.returncode == 127


def test_kernel_argv_env_not_a_json_list(good_env: dict[str, str]) -> None:
    result = run_launcher([], {**good_env, "KERNEL_ARGV": "python -m bash_kernel"})
    assert_one_error(result, "invalid kernel argv", "KERNEL_ARGV", "JSON list")


def test_kernel_argv_without_connection_file(good_env: dict[str, str]) -> None:
    result = run_launcher(["--", sys.executable, "-m", "ipykernel_launcher"], good_env)
    assert_one_error(result, "has no {connection_file}")


def test_default_kernel_needs_ipykernel(good_env: dict[str, str], tmp_path: Path) -> None:
    # The launcher package alone, run by the base interpreter (no ipykernel there).
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    if subprocess.run([str(base), "-c", "import ipykernel"], capture_output=True).returncode == 0:
        pytest.skip(f"{base} has ipykernel installed")
    tree = launcher_tree(tmp_path, with_crypto=True)
    result = subprocess.run(
        [str(base), "-m", "elastic_jupyter.kernel_launcher"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree), **good_env},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    assert_one_error(result, "kernel command not found", "ipykernel is not installed")


def test_unknown_flag(good_env: dict[str, str]) -> None:
    result = run_launcher(["--kernel-idd", "x"], good_env)
    assert_one_error(result, "unrecognized arguments", "--help")


def test_help_works(good_env: dict[str, str]) -> None:
    result = run_launcher(["--help"], {})
    assert result.returncode == 0
    for flag in ("--RemoteProcessProxy.kernel-id", "--kernel-id", "--public-key", "KERNEL_ARGV"):
        assert flag in result.stdout
