"""Run the real ``elastic-jupyter-operator`` against the sandbox, and small HTTP/API helpers.

Shared by the end-to-end tests of gateways, notebooks, examples and install manifests. The
operator serves only the namespaces matching a glob, so operators started by other test
modules in the same sandbox never act on these tests' objects.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.harness.processes import start_operator, stop_process
from elastic_jupyter.operator.service_accounts import operator_kubeconfig
from elastic_jupyter.sandbox.cluster import SandboxCluster

REPO = Path(__file__).resolve().parents[2]
QUIET = ("--metrics-port", "0", "--verbose")


@contextmanager
def running_operator(
    sandbox: SandboxCluster, namespace_glob: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """The operator as a subprocess serving ``namespace_glob``; stopped (SIGTERM) on exit."""
    env = sandbox.env(KUBECONFIG=str(operator_kubeconfig(sandbox)))
    proc = start_operator(env, log, "--namespace", namespace_glob, "--liveness", "none", *QUIET)
    try:
        yield proc
    finally:
        stop_process(proc, grace_s=15)


def new_namespace(sandbox: SandboxCluster, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    sandbox.create_namespace(name)
    return name


def custom(sandbox: SandboxCluster, plural: str, namespace: str, name: str) -> dict[str, Any]:
    path = f"/apis/{crds.GROUP}/{crds.VERSION}/namespaces/{namespace}/{plural}/{name}"
    result: dict[str, Any] = sandbox.request("GET", path)
    return result


def core(sandbox: SandboxCluster, path: str) -> dict[str, Any]:
    result: dict[str, Any] = sandbox.request("GET", path)
    return result


def secret_value(sandbox: SandboxCluster, namespace: str, name: str, key: str = "token") -> str:
    secret = core(sandbox, f"/api/v1/namespaces/{namespace}/secrets/{name}")
    data = secret.get("data") or {}
    if key in data:
        return base64.b64decode(data[key]).decode()
    return str((secret.get("stringData") or {})[key])


def service_url(sandbox: SandboxCluster, namespace: str, name: str, port: int = 8888) -> str:
    svc = core(sandbox, f"/api/v1/namespaces/{namespace}/services/{name}")
    return f"http://{svc['spec']['clusterIP']}:{port}"


def http_get(url: str, token: str | None = None, timeout: float = 5.0) -> tuple[int, Any]:
    """GET a Jupyter API URL; returns (status, decoded JSON or text)."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"token {token}")
    return _send(request, timeout)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def events(sandbox: SandboxCluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = core(sandbox, f"/api/v1/namespaces/{namespace}/events")["items"]
    return items


def gateway_pods(sandbox: SandboxCluster, namespace: str, gateway: str) -> list[dict[str, Any]]:
    selector = f"{crds.LABEL_GATEWAY}={gateway},{crds.LABEL_COMPONENT}={crds.COMPONENT_GATEWAY}"
    path = f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}"
    pods: list[dict[str, Any]] = core(sandbox, path)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def monotonic() -> float:
    return time.monotonic()


def _send(request: urllib.request.Request, timeout: float) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read().decode()
            return response.status, json.loads(body) if body else None
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def http_post(
    url: str, body: Any, token: str | None = None, timeout: float = 30.0
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"token {token}")
    return _send(request, timeout)


def http_delete(url: str, token: str | None = None, timeout: float = 30.0) -> tuple[int, Any]:
    request = urllib.request.Request(url, method="DELETE")
    if token:
        request.add_header("Authorization", f"token {token}")
    return _send(request, timeout)
