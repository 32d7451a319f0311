"""Fixtures for end-to-end gateway tests: a sandbox cluster, the operator, real EG processes.

* ``gw_cluster`` (session): the project's ``sandbox`` fixture, with helpers for these tests.
* ``gw_operator`` (session): the real ``elastic-jupyter-operator``, checked with a probe kernel.
* ``gateway_factory`` (module): starts Enterprise Gateway 3.3 processes loading our plugin
  with a temporary kernelspec directory; every process is stopped at the end of the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin.kube import ApiError, KubeApi, kernels_path
from elastic_jupyter.harness.processes import NO_PORTS, free_port, start_operator, stop_process
from elastic_jupyter.harness.processes import wait_until as harness_wait_until
from elastic_jupyter.operator.service_accounts import gateway_kubeconfig, operator_kubeconfig
from elastic_jupyter.sandbox.cluster import SandboxCluster

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KERNEL_IMAGE = "elastic-jupyter/kernel-py:dev"
USER = "jovyan"
NAMESPACE_PREFIX = "gw-"


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    try:
        return harness_wait_until(what, check, timeout, interval)
    except TimeoutError as error:
        raise AssertionError(str(error)) from None


@dataclass
class Cluster:
    """What gateway tests need from the sandbox: ``api`` and ``kubectl`` act as the admin (the
    test's own setup); gateways run as their own ServiceAccount (:meth:`gateway_kubeconfig`)."""

    sandbox: SandboxCluster
    api: KubeApi = field(init=False)

    def __post_init__(self) -> None:
        token = self.sandbox.auth_headers["Authorization"]
        self.api = KubeApi(self.url, auth=lambda: token, user_agent="gateway-tests/0.1")

    @property
    def url(self) -> str:
        return self.sandbox.url

    @property
    def kubeconfig(self) -> Path:
        return self.sandbox.kubeconfig

    def gateway_kubeconfig(
        self, namespace: str, name: str, kernel_namespaces: Sequence[str] = ()
    ) -> Path:
        """Gateway ``name``'s ServiceAccount and Role (as the operator makes them)."""
        return gateway_kubeconfig(self.sandbox, namespace, name, kernel_namespaces)

    def get_json(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers=self.sandbox.auth_headers)
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())

    def kubectl(self, *args: str) -> str:
        out = subprocess.run(
            ["kubectl", *args],
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = self.get_json("/sandbox/stats")
        return data

    def requests_by(self, agent: str) -> dict[str, int]:
        """Request counts of one User-Agent product, per ``verb resource``."""
        counts: dict[str, int] = {}
        for row in self.stats().get("counts") or []:
            if row.get("userAgent") == agent:
                key = f"{row['verb']} {row['resource']}"
                counts[key] = counts.get(key, 0) + int(row["count"])
        return counts

    def create_namespace(self, prefix: str) -> str:
        assert prefix.startswith(NAMESPACE_PREFIX), "the suite's operator serves gw-* only"
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
        return name

    def kernels(self, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.api.request("GET", kernels_path(namespace))["items"]
        return items

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{namespace}/pods"
        items: list[dict[str, Any]] = self.api.request("GET", path)["items"]
        return items

    def apply_template(self, namespace: str, name: str, pod_spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": crds.API_VERSION,
            "kind": crds.JUPYTER_KERNEL_TEMPLATE.kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"template": {"metadata": {"labels": {"team": "tests"}}, "spec": pod_spec}},
        }
        path = f"/apis/{crds.API_VERSION}/namespaces/{namespace}/jupyterkerneltemplates"
        self.api.request("POST", path, body=body)


@pytest.fixture(scope="session")
def gw_cluster(sandbox: Any) -> Cluster:
    """The project's sandbox (``tests/conftest.py``), seen through :class:`Cluster`."""
    return Cluster(sandbox)


def _probe_operator(cluster: Cluster, timeout: float) -> bool:
    """Does the running operator turn a JupyterKernel into a running pod and report it?"""
    namespace = cluster.create_namespace("gw-probe")
    body = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL.kind,
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "kernel", "image": "busybox", "command": ["sleep", "60"]}
                    ]
                }
            }
        },
    }
    cluster.api.request("POST", kernels_path(namespace), body=body)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            obj = cluster.api.request("GET", kernels_path(namespace, "probe"))
            if (obj.get("status") or {}).get("phase") == crds.PHASE_RUNNING:
                return True
            time.sleep(0.1)
        return False
    finally:
        with contextlib.suppress(ApiError):
            cluster.api.request("DELETE", f"/api/v1/namespaces/{namespace}")


@pytest.fixture(scope="session")
def gw_operator(gw_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The real ``elastic-jupyter-operator`` serving JupyterKernels; yields its log's path.

    It serves only this suite's namespaces (``gw-*``), so it never acts in other suites' ones
    for the rest of the session.
    """
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    env = {**os.environ, "KUBECONFIG": str(operator_kubeconfig(gw_cluster.sandbox))}
    args = ("--namespace", f"{NAMESPACE_PREFIX}*", *NO_PORTS)
    proc = start_operator(env, log_path, *args)
    try:
        if not _probe_operator(gw_cluster, 20.0):
            tail = log_path.read_text(errors="replace")[-3000:]
            raise AssertionError(f"the operator does not run kernels; its log ends:\n{tail}")
        yield log_path
    finally:
        stop_process(proc, grace_s=10)


def kernelspec(
    image: str | None = KERNEL_IMAGE,
    template: tuple[str, str] | None = None,
    public_key: bool = True,
    argv: list[str] | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A kernel.json using our process proxy and (by default) the original launcher argv."""
    if argv is None:
        argv = ["kubeflow-launcher", "--verbose"]
        argv += ["--RemoteProcessProxy.kernel-id", "{kernel_id}"]
        argv += ["--RemoteProcessProxy.port-range", "{port_range}"]
        argv += ["--RemoteProcessProxy.response-address", "{response_address}"]
        if public_key:
            argv += ["--RemoteProcessProxy.public-key", "{public_key}"]
        if template:
            argv += ["--kernel-template-name", template[1]]
            argv += ["--kernel-template-namespace", template[0]]
    proxy_config: dict[str, Any] = dict(config or {})
    if image:
        proxy_config["image_name"] = image
    return {
        "display_name": "Python (elastic-jupyter test)",
        "language": "python",
        "argv": argv,
        "metadata": {
            "process_proxy": {
                "class_name": "elastic_jupyter.gateway_plugin.KubeflowProcessProxy",
                "config": proxy_config,
            }
        },
    }


@dataclass
class Reply:
    status: str
    stdout: str
    ename: str


class Gateway:
    """One Enterprise Gateway process with our plugin, talking to the sandbox."""

    def __init__(
        self,
        cluster: Cluster,
        workdir: Path,
        namespace: str,
        specs: dict[str, dict[str, Any]],
        env: dict[str, str] | None = None,
        name: str = "gw",
        args: list[str] | None = None,
        kernel_namespaces: Sequence[str] = (),
    ) -> None:
        self.args = list(args or [])
        self.cluster = cluster
        self.workdir = workdir
        self.namespace = namespace
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"eg-{self.port}.log"
        share = workdir / "share" / "jupyter"
        for spec_name, spec in specs.items():
            folder = share / "kernels" / spec_name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("EG_", "EJ_", "KERNEL_"))}
        self.env = {
            **base,
            # as its own ServiceAccount, with the Role the operator gives a gateway
            "KUBECONFIG": str(cluster.gateway_kubeconfig(namespace, name, kernel_namespaces)),
            "JUPYTER_PATH": str(share),
            "JUPYTER_DATA_DIR": str(workdir / "data"),
            "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
            "EG_NAME": name,
            "EG_NAMESPACE": namespace,
            "EG_SHARED_NAMESPACE": "true",
            "EG_RESPONSE_IP": "127.0.0.1",
            "EG_RESPONSE_PORT": str(free_port()),
            "EG_LIST_KERNELS": "true",
            "EG_KERNEL_LAUNCH_TIMEOUT": "30",
            "EJ_UNSCHEDULABLE_GRACE_SECONDS": "1",
            "KERNEL_USERNAME": USER,
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Gateway:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                str(BIN / "jupyter-enterprisegateway"),
                "--ip=127.0.0.1",
                f"--port={self.port}",
                *self.args,
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        log.close()
        wait_until(lambda: self._up(), 30, f"Enterprise Gateway on {self.url}")
        return self

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"gateway exited: {self.log_text()[-2000:]}")
        try:
            return self.request("GET", "/api")[0] == 200
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 60
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw)
            except ValueError:
                return err.code, {"message": raw.decode(errors="replace")}

    def start_kernel(self, name: str, env: dict[str, str] | None = None) -> tuple[int, Any, float]:
        started = time.monotonic()
        body = {"name": name, "env": {"KERNEL_USERNAME": USER, **(env or {})}}
        status, reply = self.request("POST", "/api/kernels", body)
        return status, reply, time.monotonic() - started

    def execute(self, kernel_id: str, code: str, timeout: float = 30) -> Reply:
        return asyncio.run(_execute(self.url, kernel_id, code, timeout, None))

    def execute_and_interrupt(self, kernel_id: str, code: str, timeout: float = 30) -> Reply:
        async def interrupt() -> None:
            await asyncio.sleep(0.5)
            await asyncio.to_thread(self.request, "POST", f"/api/kernels/{kernel_id}/interrupt", {})

        return asyncio.run(_execute(self.url, kernel_id, code, timeout, interrupt))


async def _execute(url: str, kernel_id: str, code: str, timeout: float, while_busy: Any) -> Reply:
    from tornado.websocket import websocket_connect

    ws_url = url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    conn = await asyncio.wait_for(websocket_connect(ws_url), timeout)
    msg_id = uuid.uuid4().hex
    message = {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": USER,
            "session": uuid.uuid4().hex,
            "version": "5.3",
            "date": "",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }
    await conn.write_message(json.dumps(message))
    stdout, ename, status, idle = "", "", "", False
    side_task = asyncio.ensure_future(while_busy()) if while_busy else None
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no execute_reply within {timeout}s; stdout={stdout!r}")
            raw = await asyncio.wait_for(conn.read_message(), remaining)
            if raw is None:
                raise AssertionError("kernel websocket closed")
            msg = json.loads(raw)
            if (msg.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream" and msg["content"].get("name") == "stdout":
                stdout += msg["content"]["text"]
            elif kind == "error":
                ename = msg["content"]["ename"]
            elif kind == "execute_reply":
                status = msg["content"]["status"]
                ename = ename or msg["content"].get("ename", "")
            elif kind == "status" and msg["content"].get("execution_state") == "idle":
                idle = True
            if status and idle:  # the reply (shell) and idle (iopub) can come in any order
                return Reply(status, stdout, ename)
    finally:
        if side_task is not None:
            await side_task
        conn.close()


@pytest.fixture(scope="module")
def gateway_factory(
    gw_cluster: Cluster, gw_operator: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def factory(namespace: str, specs: dict[str, dict[str, Any]], **kwargs: Any) -> Gateway:
        workdir = kwargs.pop("workdir", None) or tmp_path_factory.mktemp("gateway")
        gateway = Gateway(gw_cluster, workdir, namespace, specs, **kwargs).start()
        started.append(gateway)
        return gateway

    yield factory
    for gateway in started:
        gateway.stop()
