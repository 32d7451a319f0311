"""API load and memory with many idle kernels: what the gateway and the operator cost the cluster.

One run starts the sandbox cluster, the operator and one Enterprise Gateway 3.3 process (the
stack of ``bench/concurrency.py``), warms it up with one kernel, then:

1. **start phase**: zeroes the sandbox's request counters and starts ``--kernels`` remote kernels
   through the gateway, ``--step`` at a time (``--start-concurrency`` requests in flight), each
   answering one ``execute_request`` over its websocket; after each step the RSS of the gateway
   and operator processes is sampled. Once the operator's write counters stop moving, the API
   writes made for these starts are read per user agent: the operator's (kopf's and ours,
   the measure ``bench/operator_throughput.py`` uses) and the gateway's own;
2. **idle window**: zeroes the counters again and lets the kernels sit idle for ``--window``
   seconds; the requests the gateway (``elastic-jupyter-gateway``) and the operator (``kopf``,
   ``elastic-jupyter-operator``) make meanwhile, per minute and per kernel per minute, beside
   what EG's stock Kubernetes process proxy would make for the same kernels: one pod list per
   ``poll()``, which jupyter_client's restarter calls every 3 s, 20 per kernel per minute;
3. **memory**: gateway RSS per running kernel and operator RSS per 1000 kernels, as the
   least-squares slope of RSS over the kernel count sampled in step 1;
4. shuts every kernel down and checks that no JupyterKernel or pod remains.

Goals (issue 8): ~0 API requests per idle kernel (judged here as below 1 % of stock EG's 20 per
kernel per minute); ≤ 4 API writes per kernel start (floor 2). Memory has no goal; it is
reported. Writes ``api_load.{json,md}`` and ``memory.{json,md}``.

Run: ``.venv/bin/python bench/api_load.py [--kernels 100] [--window 60]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from _measure import add_output_args, operator_writes, run_keeping_logs, wait_quiet
from _stack import Stack, Start, command_line, machine, requests_by_group

HERE = Path(__file__).resolve().parent
STOCK_PER_KERNEL_MINUTE = 20.0  # EG's stock proxy: a pod list per poll(), poll() every 3 s
IDLE_GOAL_PER_KERNEL_MINUTE = 0.2  # "~0": below 1 % of the stock poll
WRITES_GOAL = 4.0
WRITES_FLOOR = 2.0


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def per_minute(counts: dict[str, int], seconds: float) -> float:
    return round(sum(counts.values()) * 60.0 / seconds, 2) if seconds > 0 else 0.0


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    with Stack(workdir, pods=args.kernels) as stack:
        warm = asyncio.run(stack.start_many("remote", 1, timeout=args.timeout))
        if not warm[0].ok:
            raise RuntimeError(f"warm-up start failed: {warm[0].error}")
        stack.delete_kernels([warm[0].kernel_id])
        stack.wait_empty()
        wait_quiet(stack.sandbox)
        sample = stack.sample()
        gateway_points = [(0.0, sample["gateway"].rss_mib)]
        operator_points = [(0.0, sample["operator"].rss_mib)]

        stack.sandbox.reset_stats()
        started = time.perf_counter()
        starts: list[Start] = []
        pod_failures: list[dict[str, Any]] = []
        while len(starts) < args.kernels:
            count = min(args.step, args.kernels - len(starts))
            starts += asyncio.run(
                stack.start_many(
                    "remote",
                    count,
                    concurrency=args.start_concurrency,
                    timeout=args.timeout,
                    pod_failures=pod_failures,
                )
            )
            time.sleep(1.0)
            sample = stack.sample()
            running = float(sum(1 for s in starts if s.ok))
            gateway_points.append((running, sample["gateway"].rss_mib))
            operator_points.append((running, sample["operator"].rss_mib))
        start_seconds = time.perf_counter() - started
        start_stats = wait_quiet(stack.sandbox)
        ok = [s for s in starts if s.ok]

        stack.sandbox.reset_stats()
        window_started = time.perf_counter()
        time.sleep(args.window)
        idle_stats = stack.sandbox.stats()
        window = time.perf_counter() - window_started
        idle_sample = stack.sample()
        left_running = stack.leftovers()

        delete_errors = stack.delete_kernels([s.kernel_id for s in starts if s.kernel_id])
        left = stack.wait_empty(timeout=max(120.0, args.kernels * 1.5))

    idle = requests_by_group(idle_stats)
    writes = requests_by_group(start_stats, writes_only=True)
    op_writes = operator_writes(start_stats)
    # Per kernel start: every JupyterKernel the gateway created, a start that failed later too.
    created = sum(v for k, v in writes["gateway"].items() if k.startswith("create jupyterkernels"))
    n_started = max(1, created)
    op_per_kernel = round(sum(op_writes.values()) / n_started, 2)
    gw_per_kernel = round(sum(writes["gateway"].values()) / n_started, 2)
    idle_rates: dict[str, Any] = {}
    for group in ("gateway", "operator", "other"):
        rate = per_minute(idle[group], window)
        idle_rates[group] = {
            "requests": idle[group],
            "per_minute": rate,
            "per_kernel_minute": round(rate / max(1, len(ok)), 4),
        }
    product = (
        idle_rates["gateway"]["per_kernel_minute"] + idle_rates["operator"]["per_kernel_minute"]
    )
    gw_slope = slope(gateway_points)
    op_slope = slope(operator_points)
    errors: dict[str, int] = {}
    for s in starts:
        if not s.ok:
            errors[s.error] = errors.get(s.error, 0) + 1
    return {
        "benchmark": "api_load",
        "kernels": args.kernels,
        "kernels_running": len(ok),
        "start_errors": errors,
        "pod_failures": pod_failures,
        "start_phase": {
            "seconds": round(start_seconds, 1),
            "step": args.step,
            "concurrency": args.start_concurrency,
            "operator_writes": op_writes,
            "gateway_writes": writes["gateway"],
            "other_writes": writes["other"],
            "jupyterkernels_created": created,
            "operator_writes_per_kernel": op_per_kernel,
            "gateway_writes_per_kernel": gw_per_kernel,
            "control_plane_writes_per_kernel": round(op_per_kernel + gw_per_kernel, 2),
        },
        "idle": {
            "window_seconds": round(window, 1),
            "watches_open": idle_stats.get("watchesOpen"),
            "by_group": idle_rates,
            "gateway_and_operator_per_kernel_minute": round(product, 4),
            "stock_eg_per_kernel_minute": STOCK_PER_KERNEL_MINUTE,
            "stock_eg_per_minute": STOCK_PER_KERNEL_MINUTE * len(ok),
        },
        "memory": {
            "gateway_points": gateway_points,
            "operator_points": operator_points,
            "gateway_mib_per_kernel": round(gw_slope, 3) if gw_slope is not None else None,
            "operator_mib_per_1000_kernels": round(op_slope * 1000, 1)
            if op_slope is not None
            else None,
            "gateway_rss_mib_after_window": idle_sample["gateway"].rss_mib,
            "operator_rss_mib_after_window": idle_sample["operator"].rss_mib,
        },
        "before_shutdown": left_running,
        "delete_errors": delete_errors[:5],
        "left_after_shutdown": left,
        "goals": {
            "idle_per_kernel_minute": {
                "value": round(product, 4),
                "goal": IDLE_GOAL_PER_KERNEL_MINUTE,
                "met": product < IDLE_GOAL_PER_KERNEL_MINUTE,
            },
            "writes_per_kernel_start": {
                "value": op_per_kernel,
                "goal": WRITES_GOAL,
                "floor": WRITES_FLOOR,
                "met": op_per_kernel <= WRITES_GOAL,
            },
        },
        "machine": machine(),
        "command": command_line("api_load.py", args.argv),
    }


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def listing(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"


def render_api_load(result: dict[str, Any]) -> str:
    n = result["kernels_running"]
    idle, start = result["idle"], result["start_phase"]
    groups = idle["by_group"]
    goals = result["goals"]
    m = result["machine"]
    idle_value = idle["gateway_and_operator_per_kernel_minute"]
    lines = [
        f"## API load with {n} idle kernels",
        "",
        f"{result['kernels']} remote kernels started through one Enterprise Gateway 3.3 process "
        f"({start['step']} at a time, {start['concurrency']} requests in flight; {n} running, "
        f"each answered one `execute_request`), then left idle for {idle['window_seconds']} s. "
        "The sandbox counts every request by User-Agent: the gateway is "
        "`elastic-jupyter-gateway`, the operator `kopf` and `elastic-jupyter-operator`. A watch "
        "is one request, counted when it is opened: the gateway's one watch and the operator's "
        f"watches opened before the window stream events without new requests "
        f"({idle['watches_open']} watches open at the end of the window, all clients).",
        "",
        f"Goals: ~0 API requests per idle kernel (below {IDLE_GOAL_PER_KERNEL_MINUTE} per kernel "
        f"per minute, 1 % of stock EG) — {verdict(goals['idle_per_kernel_minute']['met'])} "
        f"({idle_value} from gateway and operator together); ≤ {WRITES_GOAL:g} API writes per "
        f"kernel start (floor {WRITES_FLOOR:g}) — "
        f"{verdict(goals['writes_per_kernel_start']['met'])} "
        f"({start['operator_writes_per_kernel']} by the operator, the measure of the operator "
        "throughput section; the gateway adds "
        f"{start['gateway_writes_per_kernel']}, its JupyterKernel and the kernel's Secret, for "
        f"{start['control_plane_writes_per_kernel']} in all).",
        "",
        "| idle window | gateway | operator | EG stock (pod list every 3 s per kernel) |",
        "|---|---|---|---|",
        f"| API requests per minute | {groups['gateway']['per_minute']} | "
        f"{groups['operator']['per_minute']} | {idle['stock_eg_per_minute']:g} |",
        f"| per idle kernel per minute | {groups['gateway']['per_kernel_minute']} | "
        f"{groups['operator']['per_kernel_minute']} | {idle['stock_eg_per_kernel_minute']:g} |",
        f"| requests seen in the window | {listing(groups['gateway']['requests'])} | "
        f"{listing(groups['operator']['requests'])} | |",
        "",
        "The sandbox's own components (kubelet, scheduler; they stand in for the cluster's and "
        f"are not part of this product) made {groups['other']['per_minute']} requests per minute "
        f"meanwhile: {listing(groups['other']['requests'])}.",
        "",
        f"| start phase ({n} kernels, {start['seconds']} s) | API writes | per kernel start |",
        "|---|---|---|",
        f"| operator | {listing(start['operator_writes'])} | "
        f"{start['operator_writes_per_kernel']} |",
        f"| gateway | {listing(start['gateway_writes'])} | {start['gateway_writes_per_kernel']} |",
        f"| both | | {start['control_plane_writes_per_kernel']} |",
        "",
    ]
    if result["start_errors"]:
        shown = "; ".join(f"{c} x `{e}`" for e, c in list(result["start_errors"].items())[:5])
        lines += [
            f"Failed starts: {shown} (writes per kernel start count every JupyterKernel "
            f"created: {start['jupyterkernels_created']}).",
            "",
        ]
    if any("Address already in use" in str(f["log_tail"]) for f in result["pod_failures"]):
        lines += [
            "The failed starts' kernels died binding a ZeroMQ port another process had taken: "
            "the sandbox's pods share the host's network namespace, where ports reserved and "
            "released by one launcher can be taken before its kernel binds them (a real pod "
            "has its own network namespace); see the concurrency section.",
            "",
        ]
    for failure in result["pod_failures"][:3]:
        tail = " ".join(str(failure["log_tail"]).split())[-300:].replace("`", "'")
        lines += [
            f"Kernel pod `{failure['pod']}` exited with code {failure['exitCode']} "
            f"({failure['reason']}); its log ends: `{tail}`",
            "",
        ]
    left = result["left_after_shutdown"]
    lines += [
        f"After shutdown: {left['jupyterkernels']} JupyterKernels, {left['pods']} pods and "
        f"{left['gateway_kernels']} gateway kernels left.",
        "",
        f"Machine: `{m['uname']}`, {m['cpu']} ({m['cpu_count']} CPUs), Python {m['python']}; "
        f"1-minute load average {m['load_average_1m']} at the end of the run (the machine is "
        "shared with other work).",
        "",
        f"Command: `{result['command']}`",
        "",
    ]
    return "\n".join(lines)


def render_memory(result: dict[str, Any]) -> str:
    mem = result["memory"]
    m = result["machine"]
    points = ", ".join(
        f"{int(k)}: {g} / {o}"
        for (k, g), (_, o) in zip(mem["gateway_points"], mem["operator_points"])
    )
    lines = [
        "## Memory: gateway per running kernel, operator per 1000 kernels",
        "",
        f"From the run of the API load section: RSS of the Enterprise Gateway process and of "
        f"the operator process sampled at 0 running kernels and after each step of "
        f"{result['start_phase']['step']} kernel starts, up to {result['kernels_running']}; the "
        "per-kernel cost is the least-squares slope. The kernels themselves run in their own "
        "pods; what grows in the gateway is its per-kernel state (kernel manager, ZeroMQ "
        "sockets, session), in the operator kopf's cached object and per-object state (not "
        "profiled further).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| gateway RSS per running kernel (MiB) | {mem['gateway_mib_per_kernel']} |",
        f"| operator RSS per 1000 kernels (MiB), slope over this run | "
        f"{mem['operator_mib_per_1000_kernels']} |",
    ]
    lines += [
        f"| RSS after the idle window, gateway / operator (MiB) | "
        f"{mem['gateway_rss_mib_after_window']} / {mem['operator_rss_mib_after_window']} |",
        f"| samples, kernels: gateway / operator RSS (MiB) | {points} |",
        "",
        "No goal is set for memory; the numbers are reported. The operator's per-1000 figure "
        f"from this run extrapolates {result['kernels_running']} kernels tenfold; the operator "
        "throughput section measures the operator's RSS with 1000 kernels directly (busybox "
        "pods, its own run), and the summary at the top shows both.",
        "",
        f"Machine: `{m['uname']}`, {m['cpu']} ({m['cpu_count']} CPUs), Python {m['python']}.",
        "",
        f"Command: `{result['command']}`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", type=int, default=100, help="idle kernels")
    parser.add_argument("--window", type=float, default=60.0, help="idle window, seconds")
    parser.add_argument("--step", type=int, default=25, help="kernels started per step")
    parser.add_argument("--start-concurrency", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=300.0, help="per start, seconds")
    add_output_args(parser, render="sections")
    args = parser.parse_args(argv)
    if args.render:
        result = json.loads(args.render.read_text(encoding="utf-8"))
        (args.render.parent / "api_load.md").write_text(render_api_load(result))
        (args.render.parent / "memory.md").write_text(render_memory(result))
        return 0
    raw = list(sys.argv[1:] if argv is None else argv)
    skip = {"--out-dir", "--log-dir"}
    args.argv = [
        a
        for i, a in enumerate(raw)
        if a.split("=", 1)[0] not in skip and (i == 0 or raw[i - 1] not in skip)
    ]
    result = run_keeping_logs(run, args, "ej-bench-load-")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "api_load.json").write_text(json.dumps(result, indent=2) + "\n")
    memory = {
        "benchmark": "memory",
        "kernels_running": result["kernels_running"],
        **result["memory"],
        "machine": result["machine"],
        "command": result["command"],
    }
    (args.out_dir / "memory.json").write_text(json.dumps(memory, indent=2) + "\n")
    (args.out_dir / "api_load.md").write_text(render_api_load(result))
    (args.out_dir / "memory.md").write_text(render_memory(result))
    print(render_api_load(result))
    print(render_memory(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
