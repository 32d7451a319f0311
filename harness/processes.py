"""Processes the harness runs beside the cluster: the operator CLI, free ports, polling.

One launcher for ``elastic-jupyter-operator`` serves the demo, the tests and the benchmarks, so
they all start and stop it the same way: its own process group, SIGTERM, SIGKILL after a grace.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

OPERATOR_EXECUTABLE = "elastic-jupyter-operator"
#: Flags for an operator whose liveness and metrics endpoints nobody reads.
NO_PORTS = ("--liveness", "none", "--metrics-port", "0")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    what: str,
    check: Callable[[], T | None],
    timeout_s: float,
    interval_s: float = 0.3,
    *,
    ignore: tuple[type[Exception], ...] = (),
) -> T:
    """Return ``check()``'s first truthy value; raise TimeoutError naming ``what`` otherwise.

    Exceptions of the ``ignore`` types count as "not yet" (a server still starting); the
    TimeoutError ends with the last value or exception seen.
    """
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            value = check()
        except ignore as error:
            last = error
        else:
            if value:
                return value
            last = value
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout_s:g} s waiting for {what}; last: {last!r}"
            )
        time.sleep(interval_s)


def operator_executable() -> str:
    """The operator's console script: beside this interpreter (a venv), else on PATH."""
    beside = Path(sys.executable).parent / OPERATOR_EXECUTABLE
    if beside.exists():
        return str(beside)
    return shutil.which(OPERATOR_EXECUTABLE) or str(beside)


def operator_env(cluster: Any) -> dict[str, str]:
    """The environment of an operator running as its own ServiceAccount (``crds/rbac/``)."""
    from elastic_jupyter.operator.service_accounts import operator_kubeconfig

    return dict(cluster.env(KUBECONFIG=str(operator_kubeconfig(cluster))))


def start_operator(
    env: Mapping[str, str], log: Path, *args: str, profile: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``elastic-jupyter-operator <args>`` in its own process group, output to ``log``.

    With ``profile`` it runs under cProfile, which writes its statistics there on exit.
    """
    command = [operator_executable(), *args]
    if profile is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), *command]
    with log.open("wb") as out:
        return subprocess.Popen(
            command, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_process(process: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM to the process (its group when it leads one), SIGKILL after ``grace_s``."""
    if process.poll() is not None:
        return
    group = os.getpgid(process.pid) == process.pid

    def send(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)

    send(signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def operator_process(
    env: Mapping[str, str], log: Path, *args: str, grace_s: float = 20.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``elastic-jupyter-operator <args>`` until the block ends (see :func:`stop_process`).

    Raises RuntimeError with its log when it exits within its first half second (bad flags,
    no kubeconfig).
    """
    process = start_operator(env, log, *args)
    try:
        time.sleep(0.5)
        if process.poll() is not None:
            raise RuntimeError(
                f"the operator exited at once ({process.returncode}):\n{log.read_text()}"
            )
        yield process
    finally:
        stop_process(process, grace_s)
