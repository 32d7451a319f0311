"""Launcher overhead: how long ``kubeflow-kernel-launcher`` takes to tell the gateway where the
kernel is, and what it adds to the time until the kernel answers.

What is measured, per run (all on ``time.monotonic()``, one clock for every process on Linux):

* **info latency** — from just before the launcher process is spawned to the moment Enterprise
  Gateway 3.3's real ``ResponseManager`` (``tests/kernel_launcher/response_server.py``, in the
  gateway venv) has accepted and decrypted the connection info. The launcher sends the info as
  soon as the kernel *process* exists, without waiting for the kernel to be ready (as EG's own
  launchers do), so the kernel's start-up is not inside this interval at all — but it runs
  concurrently and competes for the 2 cores. This is the headline number; goal ≤ 150 ms median.
* **kernel spawned** — from the same start to the launcher's "kernel started" log line (wall
  clock, millisecond resolution): the part of the launcher's own start-up (interpreter, imports,
  validation, port reservation) that also delays the kernel.
* **ready via launcher** — from the same start to the first ``kernel_info_reply`` received with
  jupyter_client 6.1 (the gateway's) over the ports EG decrypted.
* **ready direct** — the kernel's own start-up: ``python -m ipykernel_launcher -f <file>``
  spawned directly (same interpreter, a connection file written by this script), to its first
  ``kernel_info_reply``.
* **ready overhead** — per run, ready via launcher minus ready direct (runs alternate, so the
  pairs share machine conditions). ZeroMQ reconnects every 100 ms, so single readiness values
  are quantised; medians are what to read.

Writes ``bench/results/launcher_overhead.json`` and ``.md`` (or ``--out-dir``). Run from the
repository root with the gateway venv::

    .venv/bin/python bench/launcher_overhead.py --runs 20
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from elastic_jupyter.harness.processes import stop_process

ROOT = Path(__file__).resolve().parents[1]
KERNEL_PYTHON = ROOT / ".venv-kernel" / "bin" / "python"
LAUNCHER = ROOT / ".venv-kernel" / "bin" / "kubeflow-kernel-launcher"
RESPONSE_SERVER = ROOT / "tests" / "kernel_launcher" / "response_server.py"
RESULTS = ROOT / "bench" / "results"
NAME = "launcher_overhead"
GOAL_MS = 150.0
CHANNELS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


class ResponseServer:
    """EG's ResponseManager in its own process (see response_server.py for the protocol)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(RESPONSE_SERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        hello = json.loads(self.proc.stdout.readline())
        self.public_key: str = hello["public_key"]
        self.response_address: str = hello["response_address"]
        self._messages: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            key = message.get("registered") or message["kernel_id"]
            with self._cond:
                self._messages.setdefault(key, {}).update(message)
                self._cond.notify_all()

    def register(self, kernel_id: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"register": kernel_id}) + "\n")
        self.proc.stdin.flush()
        self._wait(kernel_id, "registered")

    def _wait(self, kernel_id: str, field: str, timeout: float = 60.0) -> dict[str, Any]:
        with self._cond:
            ok = self._cond.wait_for(
                lambda: field in self._messages.get(kernel_id, {}), timeout=timeout
            )
            if not ok:
                raise TimeoutError(f"no {field} for {kernel_id}")
            return self._messages[kernel_id]

    def wait_info(self, kernel_id: str) -> dict[str, Any]:
        return self._wait(kernel_id, "connection_info")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


def time_to_kernel_info(info: dict[str, Any], started: float, timeout: float = 60.0) -> float:
    """Seconds from ``started`` until the kernel at ``info`` answers kernel_info.

    One request, sent at once: ZeroMQ queues it until the kernel's shell port accepts the
    connection, so the reply's arrival is when the kernel became ready (to within ZeroMQ's
    100 ms reconnect interval). jupyter_client's ``wait_for_ready`` is not used: it adds
    0.2 s of IOPub flushing and, without a kernel manager, its heartbeat check declares a
    kernel that takes over a second to start dead.
    """
    from jupyter_client.blocking import BlockingKernelClient

    client = BlockingKernelClient()
    client.load_connection_info(
        {
            **{name: info[name] for name in CHANNELS},
            "ip": "127.0.0.1",
            "key": info["key"],
            "transport": "tcp",
            "signature_scheme": info["signature_scheme"],
        }
    )
    client.start_channels(hb=False)
    try:
        msg_id = client.kernel_info()
        deadline = time.monotonic() + timeout
        while True:
            msg = client.get_shell_msg(timeout=max(0.01, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") == msg_id:
                return time.monotonic() - started
    finally:
        client.stop_channels()


def free_ports(count: int) -> list[int]:
    """Ports free right now (for the direct kernel's connection file)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [int(sock.getsockname()[1]) for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def run_direct(workdir: Path) -> float:
    """The kernel alone: spawn ipykernel on a connection file, time to kernel_info."""
    info: dict[str, Any] = dict(zip(CHANNELS, free_ports(5)))
    info.update(ip="127.0.0.1", key=str(uuid.uuid4()), transport="tcp")
    info.update(signature_scheme="hmac-sha256", kernel_name="")
    path = workdir / f"direct-{uuid.uuid4()}.json"
    path.write_text(json.dumps(info))
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(KERNEL_PYTHON), "-m", "ipykernel_launcher", "-f", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=workdir,
    )
    try:
        return time_to_kernel_info(info, started)
    finally:
        stop_process(proc, grace_s=15)


def spawn_offset(log_text: str, started_wall: float) -> float:
    """Seconds from ``started_wall`` to the launcher's "kernel started" log line."""
    for line in log_text.splitlines():
        if "kernel started, pid" in line:
            stamp = datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%f")
            return stamp.timestamp() - started_wall  # logging stamps local time, as here
    raise RuntimeError(f"no 'kernel started' line in the launcher's log:\n{log_text}")


def run_launcher(server: ResponseServer, workdir: Path) -> tuple[float, float, float]:
    """The launcher with ipykernel: (info latency, kernel spawned, ready) in seconds."""
    kernel_id = str(uuid.uuid4())
    server.register(kernel_id)
    env = {
        **os.environ,
        "KERNEL_ID": kernel_id,
        "RESPONSE_ADDRESS": server.response_address,
        "PUBLIC_KEY": server.public_key,
        "KERNEL_LAUNCHER_LOG_LEVEL": "INFO",
    }
    log_path = workdir / f"launcher-{kernel_id}.log"
    with log_path.open("wb") as log_file:
        started_wall = time.time()
        started = time.monotonic()
        proc = subprocess.Popen(
            [str(LAUNCHER)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,
            cwd=workdir,
        )
    try:
        message = server.wait_info(kernel_id)
        info_latency = float(message["received_at"]) - started
        ready = time_to_kernel_info(message["connection_info"], started)
    finally:
        stop_process(proc, grace_s=15)
    spawned = spawn_offset(log_path.read_text(errors="replace"), started_wall)
    return info_latency, spawned, ready


def p95(values: list[float]) -> float:
    """95th percentile, nearest-rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    """Median and p95 in milliseconds."""
    return {
        "median_ms": round(statistics.median(values) * 1000, 1),
        "p95_ms": round(p95(values) * 1000, 1),
        "min_ms": round(min(values) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    kernel_version = subprocess.run(
        [str(KERNEL_PYTHON), "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return {
        "uname": " ".join(platform.uname()),
        "cpu_count": os.cpu_count(),
        "python_gateway": platform.python_version(),
        "python_kernel": kernel_version,
    }


def render_markdown(result: dict[str, Any]) -> str:
    """The section for docs/benchmarks.md."""
    stats = result["stats"]
    info = stats["info_latency"]
    verdict = (
        f"**met** ({info['median_ms']} ms ≤ {GOAL_MS:g} ms)"
        if info["median_ms"] <= GOAL_MS
        else f"**missed** ({info['median_ms']} ms > {GOAL_MS:g} ms)"
    )
    rows = [
        ("info latency: launcher start → EG accepted connection info", "info_latency"),
        ("kernel spawned: launcher start → kernel process started", "kernel_spawned"),
        ("ready via launcher: launcher start → first kernel_info_reply", "ready_via_launcher"),
        ("ready direct: ipykernel alone → first kernel_info_reply", "ready_direct"),
        ("ready overhead: via launcher - direct (per run pair)", "ready_overhead"),
    ]
    lines = [
        "## Launcher overhead",
        "",
        "How long `kubeflow-kernel-launcher` (with the default IPython kernel) takes to get its",
        "encrypted connection info accepted by Enterprise Gateway 3.3's real `ResponseManager`,",
        "measured from the moment the launcher process is spawned. The launcher reports as soon",
        "as the kernel process exists (before the kernel is ready, as EG's own launchers do), so",
        "the kernel's start-up is not part of the info latency; it runs concurrently on the",
        "other core. The readiness rows show what the launcher adds to the time until the",
        "kernel answers (ZeroMQ reconnects every 100 ms, so those are coarser).",
        "",
        f"Goal: info latency ≤ {GOAL_MS:g} ms median — {verdict}.",
        "",
        f"| measure ({result['runs']} runs) | median | p95 | min | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, key in rows:
        s = stats[key]
        lines.append(
            f"| {label} | {s['median_ms']} ms | {s['p95_ms']} ms | {s['min_ms']} ms "
            f"| {s['max_ms']} ms |"
        )
    m = result["machine"]
    lines += [
        "",
        "Where the launcher's time goes (profiled with `python -X importtime` and the",
        "launcher's log timestamps): almost all of it is before the kernel is spawned —",
        "interpreter start-up, the standard-library imports and loading pycryptodomex (forced",
        "onto its ctypes binding: the cffi one costs about 30 ms more per launch). Reserving",
        "ports, spawning the kernel, forking the comm listener, encrypting, sending and the",
        "gateway's decryption take about 10 ms together (the 'kernel spawned' row against the",
        "first). This work tree's editable install adds setuptools' import finder",
        "(about 10 ms) that a wheel installed in a kernel image does not have. On a shared",
        "machine the kernel's own start-up competes for the same cores, which is what widens",
        "the p95.",
        "",
        f"Machine: `{m['uname']}`, {m['cpu_count']} CPUs, Python {m['python_gateway']} "
        f"(gateway side), {m['python_kernel']} (launcher and kernel); measured {result['date']}, "
        f"1-minute load average {result['load_average'][0]} before and "
        f"{result['load_average'][1]} after (the benchmark itself adds about 1).",
        "",
        f"Command: `{result['command']}`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="measured runs (default 20)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where results go")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    load_before = os.getloadavg()[0]
    server = ResponseServer()
    samples: dict[str, list[float]] = {
        "info_latency": [],
        "kernel_spawned": [],
        "ready_via_launcher": [],
        "ready_direct": [],
        "ready_overhead": [],
    }
    try:
        with tempfile.TemporaryDirectory(prefix="launcher-bench-") as tmp:
            workdir = Path(tmp)
            run_launcher(server, workdir)  # warm-up: page cache, .pyc files
            run_direct(workdir)
            for i in range(args.runs):
                direct = run_direct(workdir)
                info_latency, spawned, ready = run_launcher(server, workdir)
                samples["info_latency"].append(info_latency)
                samples["kernel_spawned"].append(spawned)
                samples["ready_via_launcher"].append(ready)
                samples["ready_direct"].append(direct)
                samples["ready_overhead"].append(ready - direct)
                print(
                    f"run {i + 1}/{args.runs}: info {info_latency * 1000:.1f} ms, ready "
                    f"{ready * 1000:.1f} ms (direct {direct * 1000:.1f} ms)",
                    flush=True,
                )
    finally:
        server.close()
    command = "make venv && .venv/bin/python bench/launcher_overhead.py"
    if args.runs != 20:
        command += f" --runs {args.runs}"
    result = {
        "name": NAME,
        "runs": args.runs,
        "goal_ms": GOAL_MS,
        "stats": {key: summary(values) for key, values in samples.items()},
        "samples_ms": {k: [round(v * 1000, 1) for v in vs] for k, vs in samples.items()},
        "machine": machine(),
        # The 1-minute load average before and after: other work on the machine skews numbers.
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": command,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{NAME}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / f"{NAME}.md").write_text(render_markdown(result))
    print(render_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
