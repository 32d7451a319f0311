"""Gateway-side kernel start: KubeflowProcessProxy cost, remote vs local start, idle API load.

One run starts the sandbox cluster, the operator and one Enterprise Gateway 3.3 process with two
kernelspecs - ``remote`` (our process proxy: JupyterKernel → pod → in-pod launcher) and ``local``
(EG's LocalProcessProxy: ipykernel as a child of the gateway) - and measures, alternating the
two kinds run by run so both see the same machine conditions:

* **gateway-side cost**: from the client's ``POST /api/kernels`` to the API server finishing the
  JupyterKernel create (the sandbox's request log, same clock), and the proxy's own share
  (``launch_process`` entry → create returned, from the gateway log);
* **kernel start**: ``POST /api/kernels`` until the kernel answers a first ``execute_request``
  over the gateway's websocket, for remote and local kernels; the ratio of the medians;
* **idle API load**: requests the gateway makes to the API server (by User-Agent, from the
  sandbox's counters) while ``--idle-kernels`` kernels sit idle for ``--idle-seconds``, per
  kernel per minute. EG's stock Kubernetes proxy lists the kernel's pod on every ``poll()``,
  which jupyter_client's restarter calls every 3 s: 20 requests per idle kernel per minute.

Run: ``.venv/bin/python bench/gateway_start.py`` (writes ``bench/results/gateway_start.{json,md}``)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from _gateway_client import (
    GATEWAY_AGENT,
    accepted_at,
    execute_request,
    http,
    is_execute_reply,
    kernelspecs,
)
from _measure import add_output_args, machine, run_keeping_logs, summary

from elastic_jupyter.harness.processes import NO_PORTS, free_port, start_operator
from elastic_jupyter.harness.processes import stop_process as stop

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
STOCK_REQUESTS_PER_KERNEL_MINUTE = 20.0  # one pod list per poll(), poll() every 3 s
CREATED = re.compile(r"created JupyterKernel \S+ for kernel (\S+) in ([0-9.]+) ms")
RUNNING = re.compile(r"kernel (\S+) is running in \S+ at \S+ \(([0-9.]+) s after launch\)")


async def first_reply(base: str, kernel_id: str, timeout: float = 60) -> None:
    """Send one execute_request over the websocket and wait for its execute_reply."""
    from tornado.websocket import websocket_connect

    url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    conn = await asyncio.wait_for(websocket_connect(url), timeout)
    msg_id = uuid.uuid4().hex
    await conn.write_message(execute_request(msg_id))
    deadline = time.monotonic() + timeout
    try:
        while True:
            raw = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
            if raw is None:
                raise RuntimeError("websocket closed")
            if is_execute_reply(raw, msg_id):
                return
    finally:
        conn.close()


def gateway_requests(sandbox: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in sandbox.stats().get("counts") or []:
        if row.get("userAgent") == GATEWAY_AGENT:
            key = f"{row['verb']} {row['resource']}"
            counts[key] = counts.get(key, 0) + int(row["count"])
    return counts


def create_finished_at(sandbox: Any, since: float) -> float | None:
    """When the API server finished the gateway's first JupyterKernel create after ``since``."""
    for rec in sandbox.request("GET", "/sandbox/requests?limit=300")["items"]:
        if (
            rec["userAgent"].startswith(GATEWAY_AGENT)
            and rec["verb"] == "create"
            and rec["resource"].startswith("jupyterkernels")
            and float(rec["time"]) >= since
        ):
            return float(rec["time"])
    return None


TIMELINE_STEPS = (
    ("jupyterkernel_created", GATEWAY_AGENT, "create", "jupyterkernels", ""),
    ("pod_created", "", "create", "pods", ""),
    ("pod_bound", "", "create", "pods", "binding"),
    ("pod_started", "sandbox-kubelet", "patch", "pods", "status"),
    ("kernel_status_written", "", "patch", "jupyterkernels", "status"),
)


def timeline(sandbox: Any, since: float, namespace: str) -> dict[str, float]:
    """Milliseconds after the POST at which each step of one remote start reached the API."""
    out: dict[str, float] = {}
    records = sandbox.request("GET", "/sandbox/requests?limit=400")["items"]
    for step, agent, verb, resource, sub in TIMELINE_STEPS:
        for rec in records:
            if (
                float(rec["time"]) >= since
                and rec["namespace"] == namespace
                and rec["verb"] == verb
                and rec["resource"] == resource
                and rec["subresource"] == sub
                and (not agent or rec["userAgent"] == agent)
            ):
                out[step] = round((float(rec["time"]) - since) * 1000, 1)
                break
    return out


def start_kernel(base: str, name: str) -> tuple[str, float, float, float]:
    """Start a kernel; return (id, wall time of the POST, s until 201, s until first reply)."""
    started_wall = time.time()
    started = time.perf_counter()
    body_in = {"name": name, "env": {"KERNEL_USERNAME": "jovyan"}}
    status, body = http(base + "/api/kernels", "POST", body_in)
    if status != 201:
        raise RuntimeError(f"starting a {name} kernel failed: {status} {body}")
    answered = time.perf_counter() - started
    asyncio.run(first_reply(base, body["id"]))
    return str(body["id"]), started_wall, answered, time.perf_counter() - started


def delete_kernel(base: str, kernel_id: str) -> None:
    status, body = http(f"{base}/api/kernels/{kernel_id}", "DELETE")
    if status != 204:
        raise RuntimeError(f"deleting kernel {kernel_id} failed: {status} {body}")


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from elastic_jupyter.operator.service_accounts import gateway_kubeconfig, operator_kubeconfig
    from elastic_jupyter.sandbox.cluster import SandboxCluster

    with SandboxCluster(apply_crds=True) as sandbox:
        env = sandbox.env()
        operator_env = {**env, "KUBECONFIG": str(operator_kubeconfig(sandbox))}
        operator = start_operator(operator_env, workdir / "operator.log", *NO_PORTS)
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        sandbox.create_namespace(namespace)
        share = workdir / "share" / "jupyter"
        kernelspecs(share)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        gw_env = {k: v for k, v in env.items() if not k.startswith(("EG_", "EJ_", "KERNEL_"))}
        gw_env.update(
            {
                "JUPYTER_PATH": str(share),
                "JUPYTER_DATA_DIR": str(workdir / "data"),
                "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
                "KUBECONFIG": str(gateway_kubeconfig(sandbox, namespace, "bench")),
                "EG_NAME": "bench",
                "EG_NAMESPACE": namespace,
                "EG_SHARED_NAMESPACE": "true",
                "EG_RESPONSE_IP": "127.0.0.1",
                "EG_RESPONSE_PORT": str(free_port()),
                "EG_LIST_KERNELS": "true",
                "KERNEL_USERNAME": "jovyan",
            }
        )
        log_path = workdir / "gateway.log"
        gateway = subprocess.Popen(
            [
                str(BIN / "jupyter-enterprisegateway"),
                "--ip=127.0.0.1",
                f"--port={port}",
                f"--log-level={args.gateway_log_level}",
            ],
            env=gw_env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http(base + "/api", timeout=2)[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or gateway.poll() is not None:
                    raise RuntimeError(f"gateway did not start; see {log_path}")
                time.sleep(0.1)
            for name in ("remote", "local"):  # warm-up: imports, first watch, first pod
                kid = start_kernel(base, name)[0]
                delete_kernel(base, kid)

            starts: dict[str, list[float]] = {"remote": [], "local": []}
            posts: dict[str, list[float]] = {"remote": [], "local": []}
            to_created: list[float] = []
            timelines: list[dict[str, float]] = []
            remote_ids: list[str] = []
            for i in range(args.runs):
                order = ("remote", "local") if i % 2 == 0 else ("local", "remote")
                for name in order:
                    kid, wall, answered, seconds = start_kernel(base, name)
                    starts[name].append(seconds * 1000)
                    posts[name].append(answered * 1000)
                    if name == "remote":
                        remote_ids.append(kid)
                        finished = create_finished_at(sandbox, wall)
                        if finished is not None:
                            to_created.append((finished - wall) * 1000)
                        steps = timeline(sandbox, wall, namespace)
                        log_text = log_path.read_text(encoding="utf-8", errors="replace")
                        accepted = accepted_at(log_text, kid)
                        if accepted is not None:
                            steps["connection_info_accepted"] = round((accepted - wall) * 1000, 1)
                        steps["post_answered"] = round(answered * 1000, 1)
                        timelines.append(steps)
                    delete_kernel(base, kid)
            log_text = log_path.read_text(encoding="utf-8", errors="replace")
            proxy_ms = [
                float(m.group(2)) for m in CREATED.finditer(log_text) if m.group(1) in remote_ids
            ]
            launch_ms = [
                float(m.group(2)) * 1000
                for m in RUNNING.finditer(log_text)
                if m.group(1) in remote_ids
            ]

            idle_ids = [start_kernel(base, "remote")[0] for _ in range(args.idle_kernels)]
            before = gateway_requests(sandbox)
            time.sleep(args.idle_seconds)
            after = gateway_requests(sandbox)
            for kid in idle_ids:
                delete_kernel(base, kid)
        finally:
            stop(gateway)
            stop(operator)
    window = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    window = {k: v for k, v in window.items() if v}
    total = sum(window.values())
    per_kernel_minute = total / max(1, args.idle_kernels) / (args.idle_seconds / 60.0)
    remote_median = statistics.median(starts["remote"])
    local_median = statistics.median(starts["local"])
    return {
        "runs": args.runs,
        "samples_ms": {
            "request_to_created": [round(v, 2) for v in to_created],
            "proxy_launch_to_created": proxy_ms,
            "proxy_launch_to_connection_info": launch_ms,
            "remote_start": [round(v, 1) for v in starts["remote"]],
            "local_start": [round(v, 1) for v in starts["local"]],
            "remote_post": [round(v, 1) for v in posts["remote"]],
            "local_post": [round(v, 1) for v in posts["local"]],
        },
        "request_to_created_ms": summary(to_created),
        "remote_timeline_median_ms": {
            step: round(statistics.median(t[step] for t in timelines if step in t), 1)
            for step in [s[0] for s in TIMELINE_STEPS]
            + ["connection_info_accepted", "post_answered"]
            if any(step in t for t in timelines)
        },
        "proxy_launch_to_created_ms": summary(proxy_ms),
        "proxy_launch_to_connection_info_ms": summary(launch_ms),
        "remote_start_ms": summary(starts["remote"]),
        "local_start_ms": summary(starts["local"]),
        "remote_post_ms": summary(posts["remote"]),
        "local_post_ms": summary(posts["local"]),
        "remote_local_ratio": round(remote_median / local_median, 3),
        "remote_local_ratio_paired_median": round(
            statistics.median(r / lo for r, lo in zip(starts["remote"], starts["local"])), 3
        ),
        "idle": {
            "kernels": args.idle_kernels,
            "seconds": args.idle_seconds,
            "gateway_requests": window,
            "requests_per_kernel_minute": round(per_kernel_minute, 3),
            "stock_eg_requests_per_kernel_minute": STOCK_REQUESTS_PER_KERNEL_MINUTE,
        },
        "machine": machine(),
        "command": " ".join(["bench/gateway_start.py", *args.argv]),
    }


def render_markdown(result: dict[str, Any]) -> str:
    created = result["request_to_created_ms"]
    proxy = result["proxy_launch_to_created_ms"]
    remote, local = result["remote_start_ms"], result["local_start_ms"]
    conn = result["proxy_launch_to_connection_info_ms"]
    rpost, lpost = result["remote_post_ms"], result["local_post_ms"]
    idle = result["idle"]
    m = result["machine"]
    goal_cost = "met" if created.get("median", 1e9) <= 20 else "**missed**"
    goal_ratio = "met" if result["remote_local_ratio"] <= 1.25 else "**missed**"
    goal_idle = "met" if idle["requests_per_kernel_minute"] == 0 else "**missed**"
    lines = [
        "## Gateway kernel start (KubeflowProcessProxy)",
        "",
        f"{result['runs']} starts of each kind, remote and local alternating, on one Enterprise "
        "Gateway 3.3 process; the sandbox cluster with the real operator and in-pod launcher.",
        "",
        "| measure | median | p95 | min | max | goal |",
        "|---|---|---|---|---|---|",
        f"| POST /api/kernels → JupyterKernel created (ms) | {created.get('median')} | "
        f"{created.get('p95')} | {created.get('min')} | {created.get('max')} | ≤ 20: {goal_cost} |",
        f"| of which in the proxy: launch_process → created (ms) | {proxy.get('median')} | "
        f"{proxy.get('p95')} | {proxy.get('min')} | {proxy.get('max')} | |",
        f"| in the proxy: launch_process → connection info from the pod (ms) | "
        f"{conn.get('median')} | {conn.get('p95')} | {conn.get('min')} | {conn.get('max')} | |",
        f"| remote kernel: POST → first execute_reply (ms) | {remote['median']} | "
        f"{remote['p95']} | {remote['min']} | {remote['max']} | |",
        f"| local kernel, same gateway (ms) | {local['median']} | {local['p95']} | "
        f"{local['min']} | {local['max']} | |",
        f"| remote kernel: POST → 201 (ms) | {rpost['median']} | {rpost['p95']} | "
        f"{rpost['min']} | {rpost['max']} | |",
        f"| local kernel: POST → 201 (ms) | {lpost['median']} | {lpost['p95']} | "
        f"{lpost['min']} | {lpost['max']} | |",
        f"| remote / local (medians) | {result['remote_local_ratio']} | | | | "
        f"≤ 1.25: {goal_ratio} |",
        f"| remote / local, median of the per-run pairs | "
        f"{result['remote_local_ratio_paired_median']} | | | | |",
        "",
        "Where a remote start spends its time (median ms after the POST, from the sandbox's "
        "request log and the gateway log): "
        + ", ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in result["remote_timeline_median_ms"].items()
        )
        + ".",
        "",
        f"Idle: {idle['kernels']} kernels for {idle['seconds']} s → "
        f"**{idle['requests_per_kernel_minute']} API requests per idle kernel per minute** "
        f"(goal 0: {goal_idle}; requests seen: {idle['gateway_requests'] or 'none'}). "
        f"EG's stock Kubernetes proxy: {idle['stock_eg_requests_per_kernel_minute']:g} "
        "(one pod list per `poll()`, which jupyter_client's restarter calls every 3 s).",
        "",
        "Both kinds run the same interpreter and ipykernel (the kernel venv); the remote one is "
        "started by `kubeflow-kernel-launcher` in a sandbox pod, the local one by EG directly.",
        "",
        f"Machine: `{m['uname']}`, {m['cpu']} ({m['cpu_count']} CPUs), Python {m['python']}; "
        f"1-minute load average {m['load_average_1m']} when the run started (the machine is "
        "shared, so absolute times vary between runs; compare the side-by-side rows).",
        "",
        f"Command: `.venv/bin/python {result['command']}`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="starts of each kind")
    parser.add_argument("--idle-kernels", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--gateway-log-level", default="INFO", help="e.g. DEBUG for profiling")
    add_output_args(parser)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    started_machine = machine()
    result = run_keeping_logs(run, args, "ej-bench-gw-")
    result["machine"] = started_machine
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "gateway_start.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / "gateway_start.md").write_text(render_markdown(result))
    print(render_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
