"""Concurrent kernel starts: N kernels requested at once through one Enterprise Gateway.

One run starts the sandbox cluster, the operator and one Enterprise Gateway 3.3 process with the
``remote`` (KubeflowProcessProxy) and ``local`` (EG's LocalProcessProxy, same kernel venv)
kernelspecs of ``bench/gateway_start.py``, warms both up with one start each, then, for each of
``--rounds`` rounds (the order of the two kinds alternating from round to round):

1. sends N ``POST /api/kernels`` for ``remote`` at once (asyncio + aiohttp, no limit on open
   connections) and, for each, one ``execute_request`` over the kernel's websocket as soon as
   its POST answered; a start counts as a success when its ``execute_reply`` arrived;
2. shuts every kernel down through the gateway and checks that no JupyterKernel, pod or gateway
   kernel remains;
3. does the same with N ``local`` kernels on the same gateway, the baseline.

Distributions pool the rounds; the ratio is also given per round.

Reported per kind: successes, the start-time distribution (POST → first ``execute_reply``:
median, p95, max), POST → 201, the batch's wall time and who used the CPU (gateway, sandbox,
operator, the rest: kernels and launchers); for remote kernels, where the time goes (each
step's time after its POST, from the gateway log and the sandbox's request log).
Goal (issue 8): N/N started, remote ÷ local ≤ 1.25 (EG once failed at 30 concurrent starts,
jupyter/enterprise_gateway#732).

Run: ``.venv/bin/python bench/concurrency.py [--kernels 50] [--rounds 2]``
(writes ``bench/results/concurrency.{json,md}``, or into ``--out-dir``)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _measure import add_output_args, run_keeping_logs
from _stack import (
    GATEWAY_AGENT,
    OPERATOR_AGENTS,
    Stack,
    Start,
    accepted_at,
    command_line,
    cpu_profile,
    created_at,
    machine,
    summary,
    system_busy_s,
)

HERE = Path(__file__).resolve().parent
GOAL_RATIO = 1.25
STEPS = (
    "jupyterkernel_created",
    "pod_bound",
    "pod_status_first",
    "kernel_status_last",
    "connection_info_accepted",
    "post_answered",
    "kernel_info",
    "first_reply",
)


def remote_timeline(stack: Stack, starts: list[Start]) -> dict[str, list[float]]:
    """Per step, each started kernel's time (ms after its POST) at which it was reached."""
    records = stack.request_log()
    log_text = stack.gateway_log_text()
    per_step: dict[str, list[float]] = {step: [] for step in STEPS}
    for start in starts:
        if not start.kernel_id:
            continue
        kid, since = start.kernel_id, start.posted_wall
        accepted = accepted_at(log_text, kid)
        mine = [r for r in records if kid in r["name"] and float(r["time"]) >= since]
        steps: dict[str, float | None] = {
            "jupyterkernel_created": created_at(log_text, kid),
            "connection_info_accepted": accepted,
        }
        for rec in mine:
            t = float(rec["time"])
            if rec["resource"] == "pods" and rec["subresource"] == "binding":
                steps.setdefault("pod_bound", t)
            elif (
                rec["resource"] == "pods"
                and rec["subresource"] == "status"
                and rec["userAgent"] == "sandbox-kubelet"
            ):
                steps.setdefault("pod_status_first", t)
            elif (
                rec["resource"] == "jupyterkernels"
                and rec["subresource"] == "status"
                and rec["userAgent"] in OPERATOR_AGENTS
                and (accepted is None or t <= accepted)
            ):
                steps["kernel_status_last"] = t
        for step, at in steps.items():
            if at is not None:
                per_step[step].append((at - since) * 1000)
        if start.post_s is not None:
            per_step["post_answered"].append(start.post_s * 1000)
        if start.info_s is not None:
            per_step["kernel_info"].append(start.info_s * 1000)
        if start.ready_s is not None:
            per_step["first_reply"].append(start.ready_s * 1000)
    return {step: [round(v, 1) for v in values] for step, values in per_step.items() if values}


LOG_MARKERS = {
    "address_in_use": "Address already in use",
    "restarter_gave_up": "will not be automatically restarted",
    "died_removed": "died, removing from map",
    "kernel_info_timeout": "Timeout waiting for kernel_info reply",
}


def log_markers(text: str) -> dict[str, int]:
    """How often the gateway log shows each known failure marker."""
    return {key: text.count(marker) for key, marker in LOG_MARKERS.items()}


def dist_s(values: list[float]) -> dict[str, float]:
    """Median, p95, min, max in seconds (3 decimals) of values in seconds."""
    return {k: round(v, 3) for k, v in summary(values).items()}


def batch(stack: Stack, kind: str, count: int, timeout: float) -> dict[str, Any]:
    """Start ``count`` kernels of ``kind`` at once, measure, shut them down, check leftovers."""
    stack.sandbox.reset_stats()
    markers_before = log_markers(stack.gateway_log_text())
    before, busy_before = stack.sample(), system_busy_s()
    started = time.perf_counter()
    pod_failures: list[dict[str, Any]] = []
    starts = asyncio.run(stack.start_many(kind, count, timeout=timeout, pod_failures=pod_failures))
    wall = time.perf_counter() - started
    after, busy_after = stack.sample(), system_busy_s()
    timeline = remote_timeline(stack, starts) if kind == "remote" else {}
    markers = log_markers(stack.gateway_log_text())
    markers = {k: v - markers_before[k] for k, v in markers.items()}
    gateway_writes = sum(
        int(row["count"])
        for row in stack.sandbox.stats().get("counts") or []
        if row.get("userAgent") == GATEWAY_AGENT
        and row.get("verb") == "create"
        and str(row.get("resource")).startswith("jupyterkernels")  # not the kernels' Secrets
    )
    delete_errors = stack.delete_kernels([s.kernel_id for s in starts if s.kernel_id])
    left = stack.wait_empty()
    ok = [s for s in starts if s.ok]
    errors: dict[str, int] = {}
    for s in starts:
        if not s.ok:
            errors[s.error] = errors.get(s.error, 0) + 1
    return {
        "kind": kind,
        "requested": count,
        "succeeded": len(ok),
        "errors": errors,
        "pod_failures": pod_failures,
        "gateway_log_markers": markers,
        "ready_s": dist_s([s.ready_s for s in ok if s.ready_s is not None]),
        "post_s": dist_s([s.post_s for s in starts if s.post_s is not None]),
        "info_s": dist_s([s.info_s for s in starts if s.info_s is not None]),
        "batch_wall_s": round(wall, 2),
        "cpu": cpu_profile(before, after, busy_after - busy_before, wall),
        "gateway_rss_mib_after": after["gateway"].rss_mib,
        "jupyterkernel_creates_by_gateway": gateway_writes,
        "timeline_samples_ms": timeline,
        "delete_errors": delete_errors[:5],
        "left_after_shutdown": left,
        "starts": [s.to_json() for s in starts],
    }


def pooled(batches: list[dict[str, Any]]) -> dict[str, Any]:
    """One kind's batches (one per round) as one: sums, pooled distributions, worst leftovers."""
    starts = [st for b in batches for st in b["starts"]]
    ok = [st for st in starts if st["ok"]]
    errors: dict[str, int] = {}
    markers: dict[str, int] = {}
    cpu: dict[str, float] = {}
    samples: dict[str, list[float]] = {}
    for b in batches:
        for err, n in b["errors"].items():
            errors[err] = errors.get(err, 0) + n
        for key, n in b["gateway_log_markers"].items():
            markers[key] = markers.get(key, 0) + n
        for key, value in b["cpu"].items():
            cpu[key] = round(cpu.get(key, 0.0) + value, 2)
        for step, values in b["timeline_samples_ms"].items():
            samples.setdefault(step, []).extend(values)
    cores = os.cpu_count() or 1
    if cpu.get("wall_s"):
        cpu["machine_utilisation"] = round(cpu["machine_busy_cpu_s"] / (cpu["wall_s"] * cores), 3)
    return {
        "kind": batches[0]["kind"],
        "requested": sum(b["requested"] for b in batches),
        "succeeded": len(ok),
        "errors": errors,
        "pod_failures": [f for b in batches for f in b["pod_failures"]],
        "gateway_log_markers": markers,
        "ready_s": dist_s([st["ready_s"] for st in ok]),
        "post_s": dist_s([st["post_s"] for st in starts if st["post_s"] is not None]),
        "info_s": dist_s([st["info_s"] for st in starts if st["info_s"] is not None]),
        "batch_wall_s": [b["batch_wall_s"] for b in batches],
        "cpu": cpu,
        "gateway_rss_mib_after": batches[-1]["gateway_rss_mib_after"],
        "jupyterkernel_creates_by_gateway": sum(
            b["jupyterkernel_creates_by_gateway"] for b in batches
        ),
        "timeline_ms": {step: summary(values) for step, values in samples.items()},
        "delete_errors": [e for b in batches for e in b["delete_errors"]][:5],
        "left_after_shutdown": {
            key: max(b["left_after_shutdown"][key] for b in batches)
            for key in batches[0]["left_after_shutdown"]
        },
    }


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rounds: list[dict[str, Any]] = []
    with Stack(workdir, pods=args.kernels) as stack:
        for kind in ("remote", "local"):  # warm-up: imports, the first watch, the first pod
            warm = asyncio.run(stack.start_many(kind, 1, timeout=args.timeout))
            if not warm[0].ok:
                raise RuntimeError(f"warm-up {kind} start failed: {warm[0].error}")
            stack.delete_kernels([warm[0].kernel_id])
        stack.wait_empty()
        for index in range(args.rounds):
            order = args.order if index % 2 == 0 else tuple(reversed(args.order))
            done = {kind: batch(stack, kind, args.kernels, args.timeout) for kind in order}
            rounds.append({"order": list(order), **done})
    for r in rounds:
        r["ratio_median"] = None
        if r["remote"]["ready_s"] and r["local"]["ready_s"]:
            r["ratio_median"] = round(
                r["remote"]["ready_s"]["median"] / r["local"]["ready_s"]["median"], 3
            )
    remote = pooled([r["remote"] for r in rounds])
    local = pooled([r["local"] for r in rounds])
    n = args.kernels * args.rounds
    ratio = None
    if remote["ready_s"] and local["ready_s"]:
        ratio = round(remote["ready_s"]["median"] / local["ready_s"]["median"], 3)
    ratio_p95 = None
    if remote["ready_s"] and local["ready_s"]:
        ratio_p95 = round(remote["ready_s"]["p95"] / local["ready_s"]["p95"], 3)
    clean = not any(remote["left_after_shutdown"].values()) and not any(
        local["left_after_shutdown"].values()
    )
    all_ok = remote["succeeded"] == n  # the goal is ours; local is the baseline
    return {
        "benchmark": "concurrency",
        "kernels": args.kernels,
        "rounds": args.rounds,
        "order": list(args.order),
        "remote": remote,
        "local": local,
        "per_round": [
            {
                "order": r["order"],
                "ratio_median": r["ratio_median"],
                **{
                    kind: {
                        "succeeded": r[kind]["succeeded"],
                        "ready_s": r[kind]["ready_s"],
                        "batch_wall_s": r[kind]["batch_wall_s"],
                        "starts": r[kind]["starts"],
                    }
                    for kind in ("remote", "local")
                },
            }
            for r in rounds
        ],
        "ratio_median": ratio,
        "ratio_p95": ratio_p95,
        "goals": {
            "all_started": {"value": f"{remote['succeeded']}/{n}", "met": all_ok},
            "ratio_median": {
                "value": ratio,
                "goal": GOAL_RATIO,
                "met": ratio is not None and ratio <= GOAL_RATIO,
            },
            "nothing_left": {"met": clean},
        },
        "machine": args.machine,
        "command": command_line("concurrency.py", args.argv),
    }


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def fmt(d: dict[str, float], key: str) -> str:
    return str(d.get(key, "-"))


STEP_LABELS = {
    "jupyterkernel_created": "JupyterKernel created (gateway log)",
    "pod_bound": "pod bound by the scheduler",
    "pod_status_first": "pod status first written by the kubelet",
    "kernel_status_last": "kernel status written by the operator (last before accepted)",
    "connection_info_accepted": "connection info accepted by the proxy (gateway log)",
    "post_answered": "POST answered 201",
    "kernel_info": "websocket open: kernel_info answered",
    "first_reply": "first execute_reply",
}


def render_markdown(result: dict[str, Any]) -> str:
    n = result["kernels"]
    remote, local = result["remote"], result["local"]
    goals = result["goals"]
    m = result["machine"]
    rounds = result["rounds"]
    total = n * rounds
    rows = [
        (
            "started / requested",
            f"{remote['succeeded']}/{remote['requested']}",
            f"{local['succeeded']}/{local['requested']}",
        ),
    ]
    for label, key in (
        ("POST → first execute_reply, successful starts (s)", "ready_s"),
        ("POST → 201 (s)", "post_s"),
        ("POST → websocket open: kernel_info answered (s)", "info_s"),
    ):
        for stat in ("median", "p95", "max"):
            rows.append(
                (f"{label}, {stat}", fmt(remote[key], stat), fmt(local[key], stat)),
            )
    rows.append(
        (
            "batch wall time per round: first POST → last start settled (s)",
            " / ".join(str(w) for w in remote["batch_wall_s"]),
            " / ".join(str(w) for w in local["batch_wall_s"]),
        )
    )
    cpu_r, cpu_l = remote["cpu"], local["cpu"]
    for key, label in (
        ("gateway_cpu_s", "CPU, all rounds: gateway process (s)"),
        ("sandbox_cpu_s", "CPU: sandbox API server + kubelet (s)"),
        ("operator_cpu_s", "CPU: operator (s)"),
        ("rest_cpu_s", "CPU: the rest: kernels, launchers, this client (s)"),
        ("machine_utilisation", "machine CPU utilisation during the batches"),
    ):
        rows.append((label, cpu_r.get(key, "-"), cpu_l.get(key, "-")))
    rows.append(
        (
            "gateway RSS after the last batch (MiB)",
            remote["gateway_rss_mib_after"],
            local["gateway_rss_mib_after"],
        )
    )
    left_r, left_l = remote["left_after_shutdown"], local["left_after_shutdown"]
    rows.append(
        (
            "left after shutdown: JupyterKernels / pods / gateway kernels",
            f"{left_r['jupyterkernels']} / {left_r['pods']} / {left_r['gateway_kernels']}",
            f"- / - / {left_l['gateway_kernels']}",
        )
    )
    lines = [
        f"## Concurrent kernel starts ({n} at once through one gateway)",
        "",
        f"{n} `POST /api/kernels` sent at once to one Enterprise Gateway 3.3 process "
        "(asyncio + aiohttp, no connection limit); each start counts when the kernel answered "
        "a first `execute_request` over its websocket. Beside it, in the same run and on the "
        f"same gateway, {n} local kernels at once (EG's LocalProcessProxy, the same kernel "
        f"venv's ipykernel). {rounds} round(s), the order alternating (first round: "
        f"{', '.join(result['order'])}), after one warm-up start of each kind; every kernel "
        "is shut down through the gateway after its batch. Distributions pool the rounds.",
        "",
        f"Goals: {n}/{n} remote kernels started — {verdict(goals['all_started']['met'])} "
        f"({remote['succeeded']}/{total} over {rounds} round(s); the local baseline "
        f"{local['succeeded']}/{total}); remote ÷ local (medians) ≤ {GOAL_RATIO} — "
        f"{verdict(goals['ratio_median']['met'])} ({result['ratio_median']}; per round: "
        + ", ".join(str(r["ratio_median"]) for r in result["per_round"])
        + f"; p95 ÷ p95: {result['ratio_p95']}); nothing left after shutdown — "
        f"{verdict(goals['nothing_left']['met'])}.",
        "",
        "| measure | remote (KubeflowProcessProxy) | local (same gateway) |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
    ]
    for kind, b in (("remote", remote), ("local", local)):
        if b["errors"]:
            shown = "; ".join(f"{count} x `{err}`" for err, count in list(b["errors"].items())[:5])
            seen = ", ".join(
                f"{LOG_MARKERS[k]!r} {v}x" for k, v in b["gateway_log_markers"].items() if v
            )
            lines += [
                f"Failed {kind} starts: {shown}. Gateway log during this batch: {seen or '-'}.",
                "",
            ]
        for failure in b["pod_failures"][:3]:
            tail = " ".join(str(failure["log_tail"]).split())[-300:].replace("`", "'")
            lines += [
                f"Kernel pod `{failure['pod']}` exited with code {failure['exitCode']} "
                f"({failure['reason']}); its log ends: `{tail}`",
                "",
            ]
    if remote["timeline_ms"]:
        lines += [
            "Where a remote start spends its time under this load (ms after each kernel's POST, "
            "over the kernels; from the gateway log and the sandbox's request log):",
            "",
            "| step | median | p95 | max |",
            "|---|---|---|---|",
        ]
        for step in STEPS:
            s = remote["timeline_ms"].get(step)
            if s:
                lines.append(f"| {STEP_LABELS[step]} | {s['median']} | {s['p95']} | {s['max']} |")
        lines.append("")
    lines += [
        *reading(result),
        f"Machine: `{m['uname']}`, {m['cpu']} ({m['cpu_count']} CPUs), Python {m['python']}; "
        f"1-minute load average {m['load_average_1m']} when the run started (the machine is "
        "shared with other work).",
        "",
        f"Command: `{result['command']}`",
        "",
    ]
    return "\n".join(lines)


def reading(result: dict[str, Any]) -> list[str]:
    """A plain reading of the profile: what bounds a batch, where the remote start waits."""
    remote, local = result["remote"], result["local"]
    if not remote["ready_s"] or not local["ready_s"]:
        return []
    cpu_r, cpu_l = remote["cpu"], local["cpu"]
    timeline = remote["timeline_ms"]
    parts = [
        f"Reading: over the batches (each until its last start succeeded or failed) the machine's "
        f"{result['machine']['cpu_count']} CPUs were {round(cpu_r['machine_utilisation'] * 100)} "
        f"% busy for the remote batch and {round(cpu_l['machine_utilisation'] * 100)} % for the "
        f"local one. Of that CPU time the gateway process used {cpu_r['gateway_cpu_s']} s "
        f"(local batch: {cpu_l['gateway_cpu_s']} s), the sandbox process (API server, "
        f"scheduler, kubelet) {cpu_r['sandbox_cpu_s']} s, the operator "
        f"{cpu_r['operator_cpu_s']} s; the rest, {cpu_r['rest_cpu_s']} s "
        f"(local: {cpu_l['rest_cpu_s']} s), is the kernels and launchers starting, plus "
        "anything else running on the shared machine."
    ]
    steps = [
        timeline.get(k, {}).get("median")
        for k in ("jupyterkernel_created", "pod_bound", "pod_status_first")
    ]
    accepted = timeline.get("connection_info_accepted", {}).get("median")
    if None not in (*steps, accepted):
        created, bound, pod_started = steps
        parts.append(
            f" The median remote kernel's JupyterKernel existed {created} ms after its POST, "
            f"but the sandbox scheduler bound its pod only after {bound} ms and the kubelet "
            f"first reported it after {pod_started} ms: the scheduler and kubelet run in one "
            "sandbox process that waits for CPU behind the kernels already starting (it used "
            "little CPU itself, see above), while EG answered a local kernel's POST after "
            f"{local['post_s'].get('median')} s (median). From the kubelet's "
            f"first report to the connection info accepted by the proxy ({accepted} ms) the "
            "launcher and kernel start inside the pod, competing for the same two cores. So "
            "the remote path's extra time under a burst is queueing for CPU in the sandbox's "
            "scheduler and kubelet (one process on the same 2 cores as every kernel), not work "
            "in the gateway, proxy or operator (their CPU above); a real cluster spreads the "
            "pods over nodes and kubelets, which this machine cannot show."
        )
    failures = [
        b["kind"]
        for b in (remote, local)
        if b["gateway_log_markers"].get("address_in_use")
        or any("Address already in use" in str(f["log_tail"]) for f in b["pod_failures"])
    ]
    if failures:
        parts.append(
            f" Failed starts ({len(remote['errors']) and sum(remote['errors'].values())} "
            f"remote, {len(local['errors']) and sum(local['errors'].values())} local): the "
            + " and ".join(failures)
            + " logs show ZeroMQ's 'Address already in use' at kernel start-up ("
            f"{len(remote['pod_failures'])} remote kernel pod(s) exited with an error; the "
            "local kernels' tracebacks are in the gateway log), and a client whose kernel died "
            "waits for jupyter_server's 60 s kernel_info timeout before its websocket closes. "
            "The kernel's ports are picked by "
            "binding and releasing them, then bound again by the kernel; with dozens of "
            "kernels starting on one host network another process can take a port in between. "
            "EG's local kernels always share the gateway host's network; the sandbox's "
            "kernel pods bind only their own 127.x pod address (KERNEL_BIND_IP), as each pod's "
            "own network namespace keeps them apart on a real cluster."
        )
    return ["".join(parts), ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", type=int, default=50, help="kernels started at once")
    parser.add_argument("--timeout", type=float, default=180.0, help="per start, seconds")
    parser.add_argument(
        "--rounds", type=int, default=2, help="batches of each kind; the order alternates"
    )
    parser.add_argument(
        "--order",
        default="remote,local",
        type=lambda s: tuple(s.split(",")),
        help="batch order, e.g. local,remote",
    )
    add_output_args(parser, render="section")
    args = parser.parse_args(argv)
    if args.render:
        result = json.loads(args.render.read_text(encoding="utf-8"))
        (args.render.parent / "concurrency.md").write_text(render_markdown(result))
        return 0
    if sorted(args.order) != ["local", "remote"]:
        parser.error("--order must name remote and local once each")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.argv = [a for i, a in enumerate(args.argv) if not _is_out_option(args.argv, i)]
    args.machine = machine()
    result = run_keeping_logs(run, args, "ej-bench-conc-")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "concurrency.json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = render_markdown(result)
    (args.out_dir / "concurrency.md").write_text(markdown)
    print(markdown)
    return 0


def _is_out_option(argv: list[str], i: int) -> bool:
    """Leave ``--out-dir``/``--log-dir`` and their values out of the documented command."""
    if argv[i].startswith(("--out-dir", "--log-dir")):
        return True
    return i > 0 and argv[i - 1] in ("--out-dir", "--log-dir")


if __name__ == "__main__":
    sys.exit(main())
