"""Warm kernel pools through the notebook server: warm remote vs local cold, refill, idle, burst.

One run starts the sandbox, the operator, one Enterprise Gateway with three kernelspecs -
``pool`` (our proxy; its JupyterKernelSpec has ``warmPool.size = --pool-size``), ``remote``
(our proxy, no pool: a cold pod) and ``local`` (EG's LocalProcessProxy, ipykernel as the
gateway's child) - and a jupyter_server 2 with ``--gateway-url`` in front of it. Every start is
what JupyterLab does: ``POST /api/sessions`` on the notebook server, the kernel's websocket, one
``execute_request`` printing a marker, read until its output arrives. Measured:

* **start latency**: ``--runs`` starts of each kind, alternated so that each sees the same
  machine; a warm start waits for a full pool first (the pool refills in the background
  between user starts); whether each was claimed from the pool is read from the gateway's log;
* **refill rate**: every waiting pool kernel deleted at once; seconds until the pool is full
  again (``Pooled``), and until the replacement JupyterKernels exist;
* **idle API requests**: requests to the API server from the gateway and the operator while a
  full pool sits idle for ``--idle-seconds``, per pooled kernel;
* **burst**: ``--burst`` sessions at once on a full pool: how many were warm and cold, whether
  any pool kernel was claimed twice, how many started.

Run: ``.venv/bin/python bench/warm_pool.py`` (writes ``bench/results/warm_pool.{json,md}``;
``bench/report.py`` puts the section into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from _measure import machine, summary
from _stack import GATEWAY_AGENT, Stack, command_line, requests_by_group

from elastic_jupyter import crds
from elastic_jupyter.crds import warm_pool
from elastic_jupyter.gateway_plugin.kube import kernels_path
from elastic_jupyter.harness.processes import free_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
KERNEL_PYTHON = REPO / ".venv-kernel" / "bin" / "python"
IMAGE = "elastic-jupyter/kernel-py:dev"
TOKEN = uuid.uuid4().hex
CLAIMED = re.compile(r"claimed pool kernel (\S+) for kernel (\S+) in")
GOAL_RATIO, GOAL_P95_S, GOAL_REFILL, GOAL_IDLE = 0.4, 0.5, 5.0, 0.0


def pool_kernelspec(namespace: str) -> dict[str, Any]:
    """kernel.json of ``pool``, as the operator renders it for the JupyterKernelSpec."""
    return {
        "display_name": "pool (warm)",
        "language": "python",
        "argv": [
            "kubeflow-launcher",
            *("--RemoteProcessProxy.kernel-id", "{kernel_id}"),
            *("--RemoteProcessProxy.port-range", "{port_range}"),
            *("--RemoteProcessProxy.response-address", "{response_address}"),
            *("--RemoteProcessProxy.public-key", "{public_key}"),
        ],
        "metadata": {
            "process_proxy": {
                "class_name": "elastic_jupyter.gateway_plugin.KubeflowProcessProxy",
                "config": {
                    "image_name": IMAGE,
                    warm_pool.CONFIG_WARM_POOL: {"namespace": namespace},
                },
            }
        },
    }


class Bench:
    def __init__(self, stack: Stack, workdir: Path, pool_size: int) -> None:
        self.stack = stack
        self.workdir = workdir
        self.pool_size = pool_size
        self.server: subprocess.Popen[bytes] | None = None
        self.base = ""

    # -- setup --

    def create_pool(self) -> None:
        body = {
            "apiVersion": crds.API_VERSION,
            "kind": crds.JUPYTER_KERNEL_SPEC.kind,
            "metadata": {"name": "pool", "namespace": self.stack.namespace},
            "spec": {"language": "python", "image": IMAGE, "warmPool": {"size": self.pool_size}},
        }
        plural = crds.JUPYTER_KERNEL_SPEC.plural
        path = f"/apis/{crds.API_VERSION}/namespaces/{self.stack.namespace}/{plural}"
        self.stack.sandbox.request("POST", path, body)

    def pool(self) -> list[dict[str, Any]]:
        selector = f"{warm_pool.LABEL_POOL}=pool"
        path = kernels_path(self.stack.namespace) + f"?labelSelector={selector}"
        items: list[dict[str, Any]] = self.stack.sandbox.request("GET", path)["items"]
        return items

    def waiting(self) -> list[str]:
        return [
            o["metadata"]["name"]
            for o in self.pool()
            if o["metadata"]["labels"].get(warm_pool.LABEL_POOL_STATE) == "pooled"
            and (o.get("status") or {}).get("phase") == crds.PHASE_POOLED
            and not o["metadata"].get("deletionTimestamp")
        ]

    def wait_full(self, timeout: float = 180) -> float:
        started = time.monotonic()
        while len(self.waiting()) < self.pool_size:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"pool not full after {timeout}s: {len(self.waiting())}")
            time.sleep(0.05)
        return time.monotonic() - started

    def start_server(self) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = {
            "PATH": str(KERNEL_PYTHON.parent) + os.pathsep + os.environ.get("PATH", ""),
            "HOME": str(self.workdir),
            "KERNEL_USERNAME": "alice",
            "JUPYTER_CONFIG_DIR": str(self.workdir / "nb-config"),
            "JUPYTER_DATA_DIR": str(self.workdir / "nb-data"),
            "JUPYTER_RUNTIME_DIR": str(self.workdir / "nb-runtime"),
        }
        args = [
            str(KERNEL_PYTHON), "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1",
            f"--port={port}", f"--IdentityProvider.token={TOKEN}",
            f"--gateway-url={self.stack.base}", "--allow-root",
            "--GatewayClient.request_timeout=120", "--GatewayClient.connect_timeout=120",
        ]  # fmt: skip
        log = (self.workdir / "notebook.log").open("wb")
        self.server = subprocess.Popen(args, env=env, cwd=self.workdir, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                import urllib.request

                req = urllib.request.Request(f"{self.base}/api/status?token={TOKEN}")
                with urllib.request.urlopen(req, timeout=2):
                    return
            time.sleep(0.2)
        raise RuntimeError("the notebook server did not start; see notebook.log")

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.server.wait(20)

    # -- one start, as JupyterLab does it --

    async def start(
        self, session: aiohttp.ClientSession, kind: str, timeout: float = 120
    ) -> dict[str, Any]:
        """POST /api/sessions, websocket, execute; returns kernel id, seconds, error."""
        headers = {"Authorization": f"token {TOKEN}"}
        body = {
            "path": f"bench-{uuid.uuid4().hex[:8]}.ipynb",
            "type": "notebook",
            "name": "",
            "kernel": {"name": kind},
        }
        started = time.perf_counter()
        out: dict[str, Any] = {"kind": kind, "ok": False}
        try:
            async with session.post(
                f"{self.base}/api/sessions", json=body, headers=headers
            ) as resp:
                reply = await resp.json(content_type=None)
                if resp.status != 201:
                    out["error"] = f"HTTP {resp.status}: {reply}"
                    return out
            out["session"], out["kernel_id"] = reply["id"], reply["kernel"]["id"]
            url = self.base.replace("http", "ws", 1) + f"/api/kernels/{out['kernel_id']}/channels"
            marker = uuid.uuid4().hex
            async with session.ws_connect(url, headers=headers, timeout=timeout) as ws:
                msg_id = uuid.uuid4().hex
                await ws.send_str(json.dumps(_execute(msg_id, f"print('{marker}')")))
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    msg = await ws.receive(timeout=deadline - time.monotonic())
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        raise RuntimeError(f"websocket {msg.type.name}")
                    data = json.loads(msg.data)
                    if (data.get("parent_header") or {}).get("msg_id") != msg_id:
                        continue
                    if data["msg_type"] == "stream" and marker in data["content"]["text"]:
                        out["seconds"] = time.perf_counter() - started
                        out["ok"] = True
                        return out
        except Exception as err:  # a failed start is a result, not a crash of the benchmark
            out["error"] = f"{type(err).__name__}: {err}"
        return out

    async def end(self, session: aiohttp.ClientSession, record: dict[str, Any]) -> None:
        if record.get("session"):
            headers = {"Authorization": f"token {TOKEN}"}
            async with session.delete(
                f"{self.base}/api/sessions/{record['session']}", headers=headers
            ):
                pass

    def claims(self) -> dict[str, str]:
        """Kernel id → pool kernel it claimed, from the gateway's log."""
        return {m.group(2): m.group(1) for m in CLAIMED.finditer(self.stack.gateway_log_text())}


def _execute(msg_id: str, code: str) -> dict[str, Any]:
    header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "alice"}
    header.update({"session": uuid.uuid4().hex, "version": "5.3", "date": ""})
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}}
    content.update({"allow_stdin": False, "stop_on_error": True})
    return {
        "header": header,
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": "shell",
        "buffers": [],
    }


async def latency(bench: Bench, runs: int, kinds: list[str]) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for i in range(runs + 1):  # the first round warms caches and is dropped
            for kind in kinds if i % 2 == 0 else list(reversed(kinds)):
                if kind == "pool":
                    await asyncio.to_thread(bench.wait_full)
                record = await bench.start(session, kind)
                await bench.end(session, record)
                if i > 0:
                    results[kind].append(record)
                await asyncio.sleep(0.3)  # let the stopped kernel go before the next start
    claims = bench.claims()
    for record in results.get("pool", []):
        record["warm"] = record.get("kernel_id") in claims
    return results


def idle_requests(bench: Bench, seconds: float) -> dict[str, Any]:
    bench.wait_full()
    time.sleep(2)  # let the last refill's status writes land
    before = requests_by_group(bench.stack.sandbox.request("GET", "/sandbox/stats"))
    time.sleep(seconds)
    after = requests_by_group(bench.stack.sandbox.request("GET", "/sandbox/stats"))
    diff: dict[str, int] = {}
    for group in ("gateway", "operator"):
        for key, count in after[group].items():
            delta = count - before[group].get(key, 0)
            if delta:
                diff[f"{group}: {key}"] = delta
    total = sum(diff.values())
    return {
        "seconds": seconds,
        "pooled_kernels": bench.pool_size,
        "requests": diff,
        "requests_per_pooled_kernel": round(total / bench.pool_size, 3),
    }


def refill(bench: Bench) -> dict[str, Any]:
    bench.wait_full()
    old = set(bench.waiting())
    started = time.monotonic()
    for name in old:
        bench.stack.sandbox.request("DELETE", kernels_path(bench.stack.namespace, name))
    created_s = None
    while True:
        fresh = [o for o in bench.pool() if o["metadata"]["name"] not in old]
        if created_s is None and len(fresh) >= bench.pool_size:
            created_s = time.monotonic() - started
        ready = [n for n in bench.waiting() if n not in old]
        if len(ready) >= bench.pool_size:
            pooled_s = time.monotonic() - started
            break
        if time.monotonic() - started > 300:
            raise RuntimeError("the pool did not refill within 300 s")
        time.sleep(0.02)
    return {
        "kernels": bench.pool_size,
        "created_s": round(created_s or pooled_s, 3),
        "pooled_s": round(pooled_s, 3),
        "created_per_s": round(bench.pool_size / (created_s or pooled_s), 2),
        "pooled_per_s": round(bench.pool_size / pooled_s, 2),
    }


async def burst(bench: Bench, count: int) -> dict[str, Any]:
    await asyncio.to_thread(bench.wait_full)
    waiting = set(await asyncio.to_thread(bench.waiting))
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        records = await asyncio.gather(*(bench.start(session, "pool", 300) for _ in range(count)))
        claims = bench.claims()
        ids = {r["kernel_id"] for r in records if r.get("kernel_id")}
        warm = [k for k in ids if k in claims]
        used = Counter(claims[k] for k in warm)
        await asyncio.gather(*(bench.end(session, r) for r in records))
    return {
        "requested": count,
        "started": sum(1 for r in records if r["ok"]),
        "warm": len(warm),
        # Claims of the kernels that waited when the burst began; the others are kernels the
        # pool refilled while the burst was still arriving (a slow machine spreads it out).
        "warm_from_waiting": sum(1 for k in warm if claims[k].split("/")[-1] in waiting),
        "waiting_at_start": len(waiting),
        "cold": len(ids) - len(warm),
        "double_claims": sum(1 for n in used.values() if n > 1),
        "errors": sorted({r["error"][:200] for r in records if r.get("error")}),
        "seconds": summary([r["seconds"] for r in records if r["ok"]]),
    }


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    stack = Stack(workdir, pods=args.burst + 3 * args.pool_size + 10)
    folder = workdir / "share" / "jupyter" / "kernels" / "pool"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps(pool_kernelspec(stack.namespace)), "utf-8")
    with stack:
        bench = Bench(stack, workdir, args.pool_size)
        bench.create_pool()
        first_fill_s = bench.wait_full(300)
        bench.start_server()
        try:
            kinds = ["pool", "local"] + (["remote"] if args.with_cold else [])
            samples = asyncio.run(latency(bench, args.runs, kinds))
            refill_result = refill(bench)
            idle = idle_requests(bench, args.idle_seconds)
            burst_result = asyncio.run(burst(bench, args.burst)) if args.burst else None
        finally:
            bench.stop_server()
            for log in ("notebook.log",):
                src = workdir / log
                if src.exists() and args.log_dir:
                    args.log_dir.mkdir(parents=True, exist_ok=True)
                    (args.log_dir / log).write_bytes(src.read_bytes())
    seconds = {k: [r["seconds"] for r in v if r["ok"]] for k, v in samples.items()}
    warm = [r["seconds"] for r in samples["pool"] if r["ok"] and r.get("warm")]
    ratio = (
        round(statistics.median(warm) / statistics.median(seconds["local"]), 3)
        if warm and seconds["local"]
        else None
    )
    return {
        "benchmark": "warm_pool",
        "runs": args.runs,
        "pool_size": args.pool_size,
        "first_fill_s": round(first_fill_s, 2),
        "start_s": {k: summary(v) for k, v in seconds.items()},
        "samples_s": {k: [round(x, 3) for x in v] for k, v in seconds.items()},
        "warm_starts": len(warm),
        "warm_local_ratio": ratio,
        "refill": refill_result,
        "idle": idle,
        "burst": burst_result,
        "failures": {k: [r.get("error") for r in v if not r["ok"]] for k, v in samples.items()},
        "machine": machine(),
        "command": command_line("warm_pool.py", sys.argv[1:] if args.argv is None else args.argv),
        "gateway_agent": GATEWAY_AGENT,
        "goals": {
            "warm_over_local": {"goal": GOAL_RATIO, "met": ratio is not None and ratio <= 0.4},
            "warm_p95_s": {
                "goal": GOAL_P95_S,
                "met": bool(warm) and summary(warm)["p95"] <= GOAL_P95_S,
            },
            "refill_per_s": {
                "goal": GOAL_REFILL,
                "met": refill_result["pooled_per_s"] >= GOAL_REFILL,
            },
            "idle_requests_per_pooled_kernel": {
                "goal": GOAL_IDLE,
                "met": idle["requests_per_pooled_kernel"] == 0,
            },
            "burst": {
                "goal": "pool-size warm, the rest cold, 0 double claims, all started",
                "met": bool(
                    burst_result
                    and burst_result["started"] == burst_result["requested"]
                    and burst_result["warm_from_waiting"] == args.pool_size
                    and burst_result["double_claims"] == 0
                ),
            },
        },
    }


def render_markdown(r: dict[str, Any]) -> str:
    s = r["start_s"]
    goals = r["goals"]

    def met(name: str) -> str:
        return "met" if goals[name]["met"] else "**missed**"

    def row(kind: str, label: str) -> str:
        v = s.get(kind) or {}
        if not v:
            return f"| {label} | - | - | - | - |"
        return f"| {label} | {v['median']} | {v['p95']} | {v['min']} | {v['max']} |"

    warm_p95 = s.get("pool", {}).get("p95", "-")
    lines = [
        "## Warm kernel pools (POST /api/sessions → first cell output)",
        "",
        "Through a jupyter_server 2 (`--gateway-url`) in front of one Enterprise Gateway, as"
        " JupyterLab starts a kernel: `POST /api/sessions`, the kernel's websocket, one"
        " `execute_request`, until its output arrives. `pool`: a kernelspec with"
        f" `warmPool.size: {r['pool_size']}` (each warm start waits for a full pool first: the"
        " pool refills between user starts); `local`: EG's LocalProcessProxy on the same"
        " gateway (ipykernel as the gateway's child, a cold start);"
        " `remote`: the same kernel cold in a new pod. Runs alternate kinds; the first round"
        " is dropped.",
        "",
        "| start (seconds) | median | p95 | min | max |",
        "|---|---:|---:|---:|---:|",
        row("pool", f"warm remote (pool; {r['warm_starts']}/{r['runs']} claimed)"),
        row("local", "local cold (same gateway)"),
        row("remote", "remote cold (new pod)"),
        "",
        "| goal | measured | result |",
        "|---|---|---|",
        f"| warm ≤ 0.4 x local (medians of {r['runs']}) | {r['warm_local_ratio']} |"
        f" {met('warm_over_local')} |",
        f"| warm p95 ≤ 0.5 s | {warm_p95} s | {met('warm_p95_s')} |",
        f"| refill ≥ 5 kernels/s | {r['refill']['pooled_per_s']} kernels/s to `Pooled`"
        f" ({r['refill']['kernels']} in {r['refill']['pooled_s']} s; JupyterKernels created at"
        f" {r['refill']['created_per_s']}/s) | {met('refill_per_s')} |",
        f"| 0 API requests per idle pooled kernel | {r['idle']['requests_per_pooled_kernel']}"
        f" ({r['idle']['pooled_kernels']} pooled kernels, {r['idle']['seconds']:g} s) |"
        f" {met('idle_requests_per_pooled_kernel')} |",
    ]
    b = r.get("burst")
    if b:
        lines.append(
            f"| {b['requested']} at once on a pool of {r['pool_size']}: {r['pool_size']} warm,"
            f" rest cold, 0 double claims, all started | {b['warm_from_waiting']} of the"
            f" {b['waiting_at_start']} waiting kernels claimed, each once; {b['cold']} cold and"
            f" {b['warm'] - b['warm_from_waiting']} warm from kernels refilled during the burst;"
            f" {b['double_claims']} double claims, {b['started']}/{b['requested']} started"
            f" (median {b['seconds'].get('median', '-')} s, p95 {b['seconds'].get('p95', '-')}"
            f" s) | {met('burst')} |"
        )
    m = r["machine"]
    lines += [
        "",
        f"First fill of the pool: {r['first_fill_s']} s. Machine: {m['cpu']} x"
        f" {m['cpu_count']}, Python {m['python']}, load {m['load_average_1m']} at the end.",
        "",
        f"Command: `{r['command']}`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--with-cold", action="store_true", help="also time cold remote starts")
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    parser.add_argument("--log-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    args.argv = argv
    import tempfile

    with tempfile.TemporaryDirectory(prefix="warm-pool-") as tmp:
        try:
            result = run(args, Path(tmp))
        finally:
            if args.log_dir:
                args.log_dir.mkdir(parents=True, exist_ok=True)
                for log in Path(tmp).glob("*.log"):
                    (args.log_dir / log.name).write_bytes(log.read_bytes())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "warm_pool.json").write_text(json.dumps(result, indent=1) + "\n", "utf-8")
    text = render_markdown(result)
    (args.out_dir / "warm_pool.md").write_text(text, "utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
