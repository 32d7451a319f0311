"""Assemble ``docs/benchmarks.md`` from the per-benchmark results in ``bench/results/``.

Each script in ``bench/`` writes ``bench/results/<name>.json`` (the numbers) and
``bench/results/<name>.md`` (its section: what was measured, the table, the machine and the
command that reproduces it). This script only stitches those sections together in a stable
order, so the document always shows the numbers of the last real run of each benchmark.

Run: ``.venv/bin/python bench/report.py``
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DOC = HERE.parent / "docs" / "benchmarks.md"

# Sections in reading order; anything else found in results/ follows alphabetically.
ORDER = [
    "gateway_start",
    "launcher_overhead",
    "concurrency",
    "operator_throughput",
    "api_load",
    "memory",
    "gpu_hours",
    "gateway_recovery",
    "warm_pool",
    "direct_start",
]

HEADER = """# Benchmarks

Measured on the project's sandbox cluster (in-memory API server + local kubelet, see
`docs/architecture.md`), on the machine named in each section. Every section names the command
that reproduces it; `.venv/bin/python bench/report.py` rebuilds this page from
`bench/results/`. Benchmarks do not gate CI; a smoke run of each (tiny sizes) runs in
`make test` so the scripts never rot. Where a goal is missed, the section says so.
"""


# One row per goal of issue 8: (goal, result name, reader). A reader takes the result's JSON and
# returns the measured value as text and whether the goal is met (None: no goal, reported).
Reader = Callable[[dict[str, Any]], tuple[str, "bool | None"]]


def _start_ratio(r: dict[str, Any]) -> tuple[str, bool | None]:
    ratio = float(r["remote_local_ratio"])
    return f"{ratio} (medians, {r['runs']} starts each)", ratio <= 1.25


def _gateway_phase(r: dict[str, Any]) -> tuple[str, bool | None]:
    median = float(r["request_to_created_ms"]["median"])
    return f"{median} ms median (POST → JupyterKernel created)", median <= 20


def _launcher_phase(r: dict[str, Any]) -> tuple[str, bool | None]:
    median = float(r["stats"]["info_latency"]["median_ms"])
    return f"{median} ms median", median <= float(r.get("goal_ms", 150))


def _all_started(r: dict[str, Any]) -> tuple[str, bool | None]:
    remote, local = r["remote"], r["local"]
    text = (
        f"remote {remote['succeeded']}/{remote['requested']}, local "
        f"{local['succeeded']}/{local['requested']} ({r.get('rounds', 1)} round(s) of "
        f"{r['kernels']})"
    )
    return text, bool(r["goals"]["all_started"]["met"])


def _concurrent_ratio(r: dict[str, Any]) -> tuple[str, bool | None]:
    ratio = r["ratio_median"]
    rounds = ", ".join(str(x["ratio_median"]) for x in r.get("per_round", []))
    text = f"{ratio} (medians of {r['kernels']} at once; p95 ÷ p95 {r['ratio_p95']}"
    text += f"; per round {rounds})" if rounds else ")"
    return text, ratio is not None and float(ratio) <= 1.25


def _throughput(r: dict[str, Any]) -> tuple[str, bool | None]:
    rate = float(r["kernels_per_second"])
    return f"{rate} kernels/s ({r['kernels']} kernels)", rate >= 50


def _operator_rss(r: dict[str, Any]) -> tuple[str, bool | None]:
    op = r["operator"]
    growth = float(op["rss_mib_after"]) - float(op["rss_mib_idle"])
    per_1000 = round(growth * 1000 / int(r["kernels"]), 1)
    text = f"{op['rss_mib_idle']} → {op['rss_mib_after']} MiB with {r['kernels']} kernels"
    return f"{text} ({per_1000} MiB per 1000)", None


def _idle_load(r: dict[str, Any]) -> tuple[str, bool | None]:
    idle = r["idle"]
    value = idle["gateway_and_operator_per_kernel_minute"]
    groups = idle["by_group"]
    text = (
        f"{value} per kernel per minute with {r['kernels_running']} idle kernels (gateway "
        f"{groups['gateway']['per_minute']}/min, operator {groups['operator']['per_minute']}/min; "
        f"stock EG: {idle['stock_eg_per_minute']:g}/min)"
    )
    return text, bool(r["goals"]["idle_per_kernel_minute"]["met"])


def _writes(r: dict[str, Any]) -> tuple[str, bool | None]:
    start = r["start_phase"]
    text = (
        f"{start['operator_writes_per_kernel']} by the operator (+ "
        f"{start['gateway_writes_per_kernel']} by the gateway: "
        f"{start['control_plane_writes_per_kernel']})"
    )
    return text, bool(r["goals"]["writes_per_kernel_start"]["met"])


def _gateway_rss(r: dict[str, Any]) -> tuple[str, bool | None]:
    return f"{r['gateway_mib_per_kernel']} MiB per running kernel", None


def _operator_rss_1000(r: dict[str, Any]) -> tuple[str, bool | None]:
    return (
        f"{r['operator_mib_per_1000_kernels']} MiB per 1000 (slope over "
        f"{r['kernels_running']} real kernels; see also the operator RSS row)",
        None,
    )


def _warm_ratio(r: dict[str, Any]) -> tuple[str, bool | None]:
    warm, local = r["start_s"]["pool"], r["start_s"]["local"]
    text = (
        f"{r['warm_local_ratio']} (warm {warm['median']} s, p95 {warm['p95']} s; local "
        f"{local['median']} s; medians of {r['runs']})"
    )
    ok = r["goals"]["warm_over_local"]["met"] and r["goals"]["warm_p95_s"]["met"]
    return text, bool(ok)


def _refill(r: dict[str, Any]) -> tuple[str, bool | None]:
    idle = r["idle"]["requests_per_pooled_kernel"]
    text = f"{r['refill']['pooled_per_s']} kernels/s to Pooled; {idle} requests per idle kernel"
    ok = r["goals"]["refill_per_s"]["met"] and r["goals"]["idle_requests_per_pooled_kernel"]["met"]
    return text, bool(ok)


def _burst(r: dict[str, Any]) -> tuple[str, bool | None]:
    b = r["burst"]
    text = (
        f"{b['warm_from_waiting']} of {b['waiting_at_start']} waiting claimed ({b['warm']} warm "
        f"with refills, {b['cold']} cold), {b['double_claims']} double claims, "
        f"{b['started']}/{b['requested']} started"
    )
    return text, bool(r["goals"]["burst"]["met"])


def _direct_start(r: dict[str, Any]) -> tuple[str, bool | None]:
    output = {k: v["output_s"]["median"] for k, v in r["start_s"].items() if v["output_s"]}
    medians = ", ".join(f"{k} {v} s" for k, v in output.items())
    ratios = ", ".join(f"{k} {v}" for k, v in r["ratios_of_medians"].items())
    started = ", ".join(f"{k} {n}/{r['runs']}" for k, n in r["started"].items())
    return f"{medians} (medians; {ratios}; started {started})", None


GOALS: list[tuple[str, str, Reader]] = [
    ("Kernel start: remote ÷ local ≤ 1.25", "gateway_start", _start_ratio),
    ("Kernel start: gateway-side phase ≤ 20 ms", "gateway_start", _gateway_phase),
    ("Kernel start: launcher phase ≤ 150 ms", "launcher_overhead", _launcher_phase),
    ("Concurrency: 50 kernels at once, 50/50 start", "concurrency", _all_started),
    ("Concurrency: remote ÷ local ≤ 1.25", "concurrency", _concurrent_ratio),
    ("Operator throughput ≥ 50 kernels/s", "operator_throughput", _throughput),
    ("Operator RSS (reported)", "operator_throughput", _operator_rss),
    ("API load: ~0 requests per idle kernel", "api_load", _idle_load),
    ("API writes per kernel start ≤ 4 (floor 2)", "api_load", _writes),
    ("Memory: gateway RSS per running kernel (reported)", "memory", _gateway_rss),
    ("Memory: operator RSS per 1000 kernels (reported)", "memory", _operator_rss_1000),
    ("Warm pool: warm ≤ 0.4 x local, p95 ≤ 0.5 s", "warm_pool", _warm_ratio),
    ("Warm pool: refill ≥ 5/s, 0 requests per idle kernel", "warm_pool", _refill),
    ("Warm pool: 50 at once on 10: 10 warm, 0 double claims, 50/50", "warm_pool", _burst),
    ("Start → first output: direct, gateway, local (reported)", "direct_start", _direct_start),
]


def summary(results: Path) -> str:
    """The summary table: each goal of issue 8, its measured value and met/missed."""
    rows = []
    for goal, name, reader in GOALS:
        try:
            data = json.loads((results / f"{name}.json").read_text(encoding="utf-8"))
            value, met = reader(data)
            verdict = "reported" if met is None else ("met" if met else "**missed**")
        except (OSError, ValueError, KeyError, TypeError):
            value, verdict = "-", "not measured"
        rows.append(f"| {goal} | {value} | {verdict} | `{name}` |")
    return "\n".join(
        [
            "## Summary",
            "",
            "Each goal of issue 8 with the value of the last run, read from `bench/results/*.json`"
            " (the sections below say how each was measured and, where a goal is missed, why).",
            "",
            "| goal | measured | result | results |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )


def section_names(results: Path) -> list[str]:
    """Return the result names present, in the documented order first."""
    present = {p.stem for p in results.glob("*.md")}
    ordered = [name for name in ORDER if name in present]
    return ordered + sorted(present - set(ordered))


def render(results: Path) -> str:
    """Return the whole benchmarks page built from the sections in ``results``."""
    parts = [HEADER, "\n" + summary(results)]
    names = section_names(results)
    if not names:
        parts.append("\nNo benchmark has been run yet.\n")
    for name in names:
        parts.append("\n" + (results / f"{name}.md").read_text(encoding="utf-8").strip() + "\n")
    return "".join(parts)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: write docs/benchmarks.md (or another path given with --out)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=DOC)
    args = parser.parse_args(argv)
    args.out.write_text(render(args.results), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
