"""What every benchmark records beside its numbers: statistics, the machine, the API writes, logs.

Shared by the benchmark scripts; imports no benchmark script.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
OPERATOR_AGENTS = ("kopf", "elastic-jupyter-operator")  # the operator's User-Agents
WRITE_VERBS = ("create", "update", "patch", "delete")


def p95(values: list[float]) -> float:
    """95th percentile (nearest rank over n - 1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    """Median, p95, min and max, rounded to 2 places; empty for no values."""
    if not values:
        return {}
    return {
        "median": round(statistics.median(values), 2),
        "p95": round(p95(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = ""
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "uname": " ".join(platform.uname()),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def command_line(script: str, argv: list[str]) -> str:
    """The command that reproduces a run, as documented: ``.venv/bin/python bench/x.py ...``."""
    return " ".join([".venv/bin/python", f"bench/{script}", *argv])


def add_output_args(parser: argparse.ArgumentParser, render: str = "") -> None:
    """``--out-dir`` and ``--log-dir`` (and ``--render JSON`` when ``render`` names what it
    rewrites) for a script whose run keeps logs (see :func:`run_keeping_logs`)."""
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--log-dir", type=Path, help="keep the gateway and operator logs here")
    if render:
        parser.add_argument(
            "--render",
            type=Path,
            metavar="JSON",
            help=f"only rewrite the Markdown {render} from an earlier run's JSON",
        )


def run_keeping_logs(
    run: Callable[[argparse.Namespace, Path], dict[str, Any]],
    args: argparse.Namespace,
    prefix: str,
) -> dict[str, Any]:
    """``run(args, tmp)`` in a temporary directory; its ``*.log`` files go to ``--log-dir``."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        try:
            return run(args, Path(tmp))
        finally:
            if args.log_dir:
                args.log_dir.mkdir(parents=True, exist_ok=True)
                for log in Path(tmp).glob("*.log"):
                    (args.log_dir / log.name).write_bytes(log.read_bytes())


def operator_writes(stats: dict[str, Any]) -> dict[str, int]:
    """Writes made by the operator, by "verb resource[/subresource]" (sandbox counters)."""
    result: dict[str, int] = {}
    for row in stats.get("counts") or []:
        if row.get("userAgent") in OPERATOR_AGENTS and row.get("verb") in WRITE_VERBS:
            resource = row["resource"] + (
                f"/{row['subresource']}" if row.get("subresource") else ""
            )
            key = f"{row['verb']} {resource}"
            result[key] = result.get(key, 0) + int(row["count"])
    return result


def wait_quiet(sandbox: Any, settle: float = 1.5, limit: float = 30.0) -> dict[str, Any]:
    """Wait until the operator's write counters stop moving (it posts Events in the background)."""
    deadline = time.monotonic() + limit
    last = operator_writes(sandbox.stats())
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        stats = sandbox.stats()
        now = operator_writes(stats)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= settle:
            return stats
    final: dict[str, Any] = sandbox.stats()
    return final
