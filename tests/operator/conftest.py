"""Fixtures and helpers for the operator's tests against the sandbox.

* ``operator_proc`` (module) — the real ``elastic-jupyter-operator`` CLI as a subprocess,
  serving namespaces matching ``opk-*`` (so it never touches other suites' namespaces), with
  liveness and metrics on free ports.
* ``op_namespace`` — a fresh ``opk-…`` namespace served by that operator.
* helpers to create JupyterKernels and read objects and Events through the raw API.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import urllib.error
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.harness.processes import start_operator, stop_process
from elastic_jupyter.operator.service_accounts import operator_kubeconfig
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.helpers import free_port, wait_for

NAMESPACE_PREFIX = "opk-"
KERNELS = f"/apis/{crds.GROUP}/{crds.VERSION}/namespaces/{{ns}}/{crds.JUPYTER_KERNEL.plural}"
SLEEP = ["sleep", "600"]


@dataclass
class OperatorProcess:
    """A running ``elastic-jupyter-operator``."""

    process: subprocess.Popen[bytes]
    log: Path
    liveness_url: str
    metrics_url: str

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.wait(timeout=30)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def run_operator(
    sandbox: SandboxCluster,
    tmp: Path,
    *args: str,
    name: str = "operator",
    env: dict[str, str] | None = None,
) -> Iterator[OperatorProcess]:
    """Start the operator CLI against the sandbox, as its own ServiceAccount (crds/rbac/);
    stop it (SIGTERM, then SIGKILL) afterwards."""
    live, metrics = free_port(), free_port()
    log = tmp / f"{name}-{uuid.uuid4().hex[:6]}.log"
    environ = {**sandbox.env(KUBECONFIG=str(operator_kubeconfig(sandbox))), **(env or {})}
    ports = ("--liveness", f"http://127.0.0.1:{live}/healthz", "--metrics-port", str(metrics))
    process = start_operator(environ, log, *ports, *args)
    proc = OperatorProcess(
        process, log, f"http://127.0.0.1:{live}/healthz", f"http://127.0.0.1:{metrics}/metrics"
    )
    try:
        yield proc
    finally:
        stop_process(process, grace_s=10)


@pytest.fixture(scope="module")
def operator_proc(
    sandbox: SandboxCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    tmp = tmp_path_factory.mktemp("operator")
    with run_operator(sandbox, tmp, "--namespace", f"{NAMESPACE_PREFIX}*") as proc:
        yield proc


def new_namespace(sandbox: SandboxCluster, prefix: str = NAMESPACE_PREFIX) -> str:
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    sandbox.create_namespace(name)
    return name


@pytest.fixture
def op_namespace(sandbox: SandboxCluster, operator_proc: OperatorProcess) -> Iterator[str]:
    name = new_namespace(sandbox)
    yield name
    sandbox.delete_namespace(name)


def get(sandbox: SandboxCluster, path: str) -> dict[str, Any] | None:
    """GET an object, ``None`` when it does not exist."""
    try:
        result: dict[str, Any] = sandbox.request("GET", path)
        return result
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def kernel_manifest(
    name: str,
    *,
    image: str = "busybox",
    command: list[str] | None = None,
    resources: dict[str, Any] | None = None,
    kernel_id: str | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "kernel", "image": image, "command": command or SLEEP}
    if resources:
        container["resources"] = resources
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL.kind,
        "metadata": {
            "name": name,
            "labels": {crds.LABEL_KERNEL_ID: kernel_id or uuid.uuid4().hex},
        },
        "spec": {"template": {"spec": {"containers": [container]}}},
    }


def create_kernel(sandbox: SandboxCluster, namespace: str, name: str, **kwargs: Any) -> None:
    sandbox.request("POST", KERNELS.format(ns=namespace), kernel_manifest(name, **kwargs))


def kernel(sandbox: SandboxCluster, namespace: str, name: str) -> dict[str, Any] | None:
    return get(sandbox, f"{KERNELS.format(ns=namespace)}/{name}")


def kernel_status(sandbox: SandboxCluster, namespace: str, name: str) -> dict[str, Any]:
    body = kernel(sandbox, namespace, name) or {}
    return dict(body.get("status") or {})


def pod(sandbox: SandboxCluster, namespace: str, name: str) -> dict[str, Any] | None:
    return get(sandbox, f"/api/v1/namespaces/{namespace}/pods/{name}")


def events(sandbox: SandboxCluster, namespace: str, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Events whose involved object is ``name``."""
    listing = sandbox.request("GET", f"/api/v1/namespaces/{namespace}/events")
    return [
        (item.get("type", ""), item.get("reason", ""), item.get("message", ""))
        for item in listing.get("items") or []
        if (item.get("involvedObject") or {}).get("name") == name
    ]


def wait_status(
    sandbox: SandboxCluster, namespace: str, name: str, timeout: float = 20.0, **expected: Any
) -> dict[str, Any]:
    """Wait until the kernel's status has every ``expected`` key/value; return the status."""

    def matches() -> dict[str, Any] | None:
        status = kernel_status(sandbox, namespace, name)
        ok = all(status.get(key) == value for key, value in expected.items())
        return status if ok else None

    found = wait_for(matches, timeout=timeout, message=f"status {expected} of {namespace}/{name}")
    assert found is not None
    return found
