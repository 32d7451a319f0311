"""The whole stack for the gateway benchmarks: sandbox, operator, one Enterprise Gateway.

Shared by ``bench/concurrency.py`` and ``bench/api_load.py``. The building blocks (kernelspecs,
the HTTP helper, log parsing) are in ``bench/_gateway_client.py``, percentiles, machine info and
the operator-side accounting in ``bench/_measure.py``; this module assembles them into a
:class:`Stack` and adds what several kernels at once need: concurrent starts (with a websocket
client that outlasts a slow handshake) and shutdowns, a record of kernel pods that failed,
per-process RSS/CPU, request counts split by user agent. The names it re-exports (``machine``,
``summary``, ``accepted_at``...) stay importable from here for the scripts that use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import psutil
from _gateway_client import (
    GATEWAY_AGENT,
    accepted_at,
    created_at,
    execute_request,
    http,
    is_execute_reply,
    kernelspecs,
)
from _measure import OPERATOR_AGENTS, WRITE_VERBS, command_line, machine, summary

from elastic_jupyter.gateway_plugin.kube import kernels_path
from elastic_jupyter.harness.processes import NO_PORTS, free_port, start_operator
from elastic_jupyter.harness.processes import stop_process as stop
from elastic_jupyter.operator.service_accounts import gateway_kubeconfig, operator_kubeconfig
from elastic_jupyter.sandbox.cluster import SandboxCluster

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent

__all__ = [
    "GATEWAY_AGENT",
    "OPERATOR_AGENTS",
    "Stack",
    "Start",
    "accepted_at",
    "command_line",
    "cpu_profile",
    "created_at",
    "machine",
    "requests_by_group",
    "summary",
    "system_busy_s",
]


def agent_group(agent: str) -> str:
    """``gateway``, ``operator`` or ``other`` for a User-Agent product counted by the sandbox."""
    if agent == GATEWAY_AGENT:
        return "gateway"
    if agent in OPERATOR_AGENTS:
        return "operator"
    return "other"


def requests_by_group(
    stats: dict[str, Any], writes_only: bool = False
) -> dict[str, dict[str, int]]:
    """Request counts per agent group, each as ``{"verb resource[/sub] (agent)": n}``."""
    out: dict[str, dict[str, int]] = {"gateway": {}, "operator": {}, "other": {}}
    for row in stats.get("counts") or []:
        if writes_only and row.get("verb") not in WRITE_VERBS:
            continue
        agent = str(row.get("userAgent"))
        resource = row["resource"] + (f"/{row['subresource']}" if row.get("subresource") else "")
        key = f"{row['verb']} {resource}"
        group = agent_group(agent)
        if group == "other":
            key += f" ({agent})"
        out[group][key] = out[group].get(key, 0) + int(row["count"])
    return out


async def first_execute(base: str, kernel_id: str, timeout: float) -> float:
    """Open the kernel's websocket and run one ``execute_request``; return when it opened.

    Unlike ``gateway_start.first_reply`` this gives the websocket handshake the whole
    ``timeout``: tornado's client otherwise gives up after 20 s, and the gateway answers the
    handshake only once the kernel has answered its ``kernel_info_request`` (jupyter_server
    waits up to 60 s), which under a burst of starts can take longer than 20 s. The returned
    ``time.perf_counter()`` marks the handshake done: the kernel answered kernel_info.
    """
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    deadline = time.monotonic() + timeout
    request = HTTPRequest(url, connect_timeout=timeout, request_timeout=timeout)
    conn = await asyncio.wait_for(websocket_connect(request), timeout)
    opened = time.perf_counter()
    msg_id = uuid.uuid4().hex
    try:
        await conn.write_message(execute_request(msg_id))
        while True:
            raw = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
            if raw is None:
                raise RuntimeError("websocket closed before the execute_reply")
            if is_execute_reply(raw, msg_id):
                return opened
    finally:
        conn.close()


@dataclass
class Start:
    """One kernel start through the gateway, as the client saw it."""

    kind: str
    posted_wall: float
    kernel_id: str = ""
    ok: bool = False
    error: str = ""
    post_s: float | None = None  # POST /api/kernels → 201
    info_s: float | None = None  # POST → websocket open: the kernel answered kernel_info
    ready_s: float | None = None  # POST → first execute_reply over the websocket

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProcSample:
    """RSS (MiB) and CPU seconds of one process."""

    rss_mib: float
    cpu_s: float


def proc_sample(pid: int) -> ProcSample:
    proc = psutil.Process(pid)
    times = proc.cpu_times()
    return ProcSample(round(proc.memory_info().rss / 2**20, 1), times.user + times.system)


def system_busy_s() -> float:
    """CPU seconds spent busy by the whole machine since boot (all cores)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def wait_gateway_ready(
    base: str, process: subprocess.Popen[Any], log: Path, what: str, timeout_s: float = 60
) -> None:
    """Wait until the gateway at ``base`` answers ``/api``; raise naming its log when it exits
    or does not answer within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError):
            if http(base + "/api", timeout=2)[0] == 200:
                return
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{what} did not start; see {log}")
        time.sleep(0.1)


class Stack:
    """Sandbox cluster + ``elastic-jupyter-operator`` + one EG 3.3 with ``remote`` and ``local``.

    ``remote`` is our KubeflowProcessProxy (JupyterKernel → pod → in-pod launcher), ``local``
    EG's LocalProcessProxy running the same kernel venv's ipykernel as a child of the gateway.
    """

    def __init__(
        self,
        workdir: Path,
        pods: int,
        launch_timeout: float | None = None,
        gateway_args: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.gateway_args = gateway_args
        extra = ["--node-resource", f"pods={pods + 50}"]
        self.sandbox = SandboxCluster(
            apply_crds=True, node_cpu="256", node_memory="1Ti", dns=False, extra_args=extra
        )
        self.namespace = f"bench-{uuid.uuid4().hex[:6]}"
        self.port = 0
        self.base = ""
        self.launch_timeout = launch_timeout
        self.gateway: subprocess.Popen[bytes] | None = None
        self.operator: subprocess.Popen[bytes] | None = None
        self.gateway_log = workdir / "gateway.log"
        self.operator_log = workdir / "operator.log"

    # -- lifecycle --

    def __enter__(self) -> Stack:
        self.sandbox.start()
        try:
            self._start_operator()
            self.sandbox.create_namespace(self.namespace)
            self._start_gateway()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for proc in (self.gateway, self.operator):
            if proc is not None:
                stop(proc)
        self.sandbox.stop()

    def _start_operator(self) -> None:
        env = self.sandbox.env(KUBECONFIG=str(operator_kubeconfig(self.sandbox)))
        self.operator = start_operator(env, self.operator_log, *NO_PORTS)

    def _start_gateway(self) -> None:
        share = self.workdir / "share" / "jupyter"
        kernelspecs(share)
        self.port = self.port or free_port()  # a restarted gateway keeps its address
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in self.sandbox.env().items() if not k.startswith(("EG_", "EJ_"))}
        env = {k: v for k, v in env.items() if not k.startswith("KERNEL_")}
        env.update(
            {
                "JUPYTER_PATH": str(share),
                "JUPYTER_DATA_DIR": str(self.workdir / "data"),
                "JUPYTER_RUNTIME_DIR": str(self.workdir / "runtime"),
                "KUBECONFIG": str(gateway_kubeconfig(self.sandbox, self.namespace, "bench")),
                "EG_NAME": "bench",
                "EG_NAMESPACE": self.namespace,
                "EG_SHARED_NAMESPACE": "true",
                "EG_RESPONSE_IP": "127.0.0.1",
                "EG_RESPONSE_PORT": str(free_port()),
                "EG_LIST_KERNELS": "true",
                "KERNEL_USERNAME": "jovyan",
            }
        )
        if self.launch_timeout is not None:
            env["EG_KERNEL_LAUNCH_TIMEOUT"] = str(int(self.launch_timeout))
        with self.gateway_log.open("ab") as log:  # a restart appends
            self.gateway = subprocess.Popen(
                [
                    str(BIN / "jupyter-enterprisegateway"),
                    "--ip=127.0.0.1",
                    f"--port={self.port}",
                    *self.gateway_args,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        wait_gateway_ready(self.base, self.gateway, self.gateway_log, "gateway")

    # -- kernels --

    async def start_one(self, session: aiohttp.ClientSession, kind: str, timeout: float) -> Start:
        """POST /api/kernels, then one execute_request over the websocket; never raises."""
        rec = Start(kind=kind, posted_wall=time.time())
        started = time.perf_counter()
        body = {"name": kind, "env": {"KERNEL_USERNAME": "jovyan"}}
        try:
            client_timeout = aiohttp.ClientTimeout(total=timeout)
            url = self.base + "/api/kernels"
            async with session.post(url, json=body, timeout=client_timeout) as resp:
                text = await resp.text()
                if resp.status != 201:
                    rec.error = f"HTTP {resp.status}: {text[:300]}"
                    return rec
                rec.kernel_id = str(json.loads(text)["id"])
            rec.post_s = time.perf_counter() - started
        except Exception as err:  # a failed start is a result, not a crash
            rec.error = f"POST: {type(err).__name__}: {err}"[:300]
            return rec
        try:
            remaining = max(1.0, timeout - rec.post_s)
            opened = await first_execute(self.base, rec.kernel_id, remaining)
            rec.info_s = opened - started
            rec.ready_s = time.perf_counter() - started
            rec.ok = True
        except Exception as err:
            rec.error = f"websocket: {type(err).__name__}: {err}"[:300]
        return rec

    async def start_many(
        self,
        kind: str,
        count: int,
        concurrency: int | None = None,
        timeout: float = 300,
        pod_failures: list[dict[str, Any]] | None = None,
    ) -> list[Start]:
        """Start ``count`` kernels; all at once unless ``concurrency`` bounds the requests.

        With ``pod_failures``, a watch on the namespace's pods appends every container that
        terminated with a non-zero exit code meanwhile (its reason and the log tail the
        kubelet reports), so a failed start can be explained after its pod is gone.
        """
        gate = asyncio.Semaphore(concurrency or count or 1)
        connector = aiohttp.TCPConnector(limit=0)
        headers = {"User-Agent": "bench-client"}
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            watcher = None
            if pod_failures is not None:
                watcher = asyncio.create_task(self._watch_pod_failures(session, pod_failures))
                await asyncio.sleep(0.2)

            async def one() -> Start:
                async with gate:
                    return await self.start_one(session, kind, timeout)

            try:
                return list(await asyncio.gather(*(one() for _ in range(count))))
            finally:
                if watcher is not None:
                    watcher.cancel()

    async def _watch_pod_failures(
        self, session: aiohttp.ClientSession, found: list[dict[str, Any]]
    ) -> None:
        url = f"{self.sandbox.url}/api/v1/namespaces/{self.namespace}/pods"
        seen: set[tuple[str, str]] = set()
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        auth = self.sandbox.auth_headers
        async with session.get(url, params={"watch": "1"}, timeout=timeout, headers=auth) as resp:
            async for line in resp.content:
                if not line.strip():
                    continue
                pod = json.loads(line).get("object") or {}
                name = str((pod.get("metadata") or {}).get("name"))
                for status in (pod.get("status") or {}).get("containerStatuses") or []:
                    for state in (status.get("state") or {}, status.get("lastState") or {}):
                        ended = state.get("terminated") or {}
                        key = (name, str(ended.get("finishedAt")))
                        if ended.get("exitCode") and key not in seen:
                            seen.add(key)
                            log_tail = await self._log_tail(session, name)
                            found.append(
                                {
                                    "pod": name,
                                    "exitCode": ended.get("exitCode"),
                                    "reason": ended.get("reason", ""),
                                    "log_tail": log_tail,
                                }
                            )

    async def _log_tail(self, session: aiohttp.ClientSession, pod: str) -> str:
        """The last lines of a pod's log (``kubectl logs``), if the pod still exists."""
        url = f"{self.sandbox.url}/api/v1/namespaces/{self.namespace}/pods/{pod}/log"
        try:
            params = {"tailLines": "4"}
            async with session.get(url, params=params, headers=self.sandbox.auth_headers) as resp:
                return (await resp.text())[-600:] if resp.status == 200 else f"HTTP {resp.status}"
        except aiohttp.ClientError as err:
            return f"{type(err).__name__}: {err}"

    def delete_kernels(self, kernel_ids: list[str], concurrency: int = 10) -> list[str]:
        """DELETE /api/kernels/<id> for each; return the errors."""

        async def run() -> list[str]:
            gate = asyncio.Semaphore(concurrency)
            timeout = aiohttp.ClientTimeout(total=120)
            async with aiohttp.ClientSession(timeout=timeout) as session:

                async def one(kernel_id: str) -> str:
                    async with gate:
                        url = f"{self.base}/api/kernels/{kernel_id}"
                        try:
                            async with session.delete(url) as resp:
                                if resp.status == 204:
                                    return ""
                                return f"{kernel_id}: HTTP {resp.status} {await resp.text()}"
                        except Exception as err:
                            return f"{kernel_id}: {type(err).__name__}: {err}"

                results = await asyncio.gather(*(one(k) for k in kernel_ids))
            return [r for r in results if r]

        return asyncio.run(run())

    def leftovers(self) -> dict[str, int]:
        """JupyterKernels and pods still in the namespace, kernels the gateway still lists."""
        kernels = self.sandbox.request("GET", kernels_path(self.namespace))["items"]
        pods = self.sandbox.request("GET", f"/api/v1/namespaces/{self.namespace}/pods")["items"]
        status, listed = http(self.base + "/api/kernels")
        return {
            "jupyterkernels": len(kernels),
            "pods": len(pods),
            "gateway_kernels": len(listed) if status == 200 and isinstance(listed, list) else -1,
        }

    def wait_empty(self, timeout: float = 120) -> dict[str, int]:
        """Wait until no JupyterKernel, pod or gateway kernel remains; return what is left."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.leftovers()
            if not any(left.values()) or time.monotonic() > deadline:
                return left
            time.sleep(0.5)

    # -- measuring --

    def pids(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, proc in (
            ("gateway", self.gateway),
            ("operator", self.operator),
            ("sandbox", self.sandbox.process),
        ):
            if proc is not None:
                out[name] = proc.pid
        return out

    def sample(self) -> dict[str, ProcSample]:
        return {name: proc_sample(pid) for name, pid in self.pids().items()}

    def request_log(self, limit: int = 10000) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.sandbox.request(
            "GET", f"/sandbox/requests?limit={limit}"
        )["items"]
        return items

    def gateway_log_text(self) -> str:
        return self.gateway_log.read_text(encoding="utf-8", errors="replace")


def cpu_profile(
    before: dict[str, ProcSample], after: dict[str, ProcSample], busy: float, wall: float
) -> dict[str, float]:
    """CPU seconds per stack process over a phase, the rest (kernels, launchers, this client)."""
    out = {f"{k}_cpu_s": round(after[k].cpu_s - before[k].cpu_s, 2) for k in before if k in after}
    own = sum(out.values())
    out["machine_busy_cpu_s"] = round(busy, 2)
    out["rest_cpu_s"] = round(busy - own, 2)
    out["wall_s"] = round(wall, 2)
    cores = os.cpu_count() or 1
    out["machine_utilisation"] = round(busy / (wall * cores), 3) if wall > 0 else 0.0
    return out
