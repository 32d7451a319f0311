"""bench/report.py: the page is stitched from results/ in order, with a summary of the goals."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench.smoke import load_bench

report = load_bench("report.py")


def _write(results: Path, name: str, data: dict[str, object], section: str) -> None:
    (results / f"{name}.json").write_text(json.dumps(data))
    (results / f"{name}.md").write_text(section)


def test_summary_reads_goals_from_the_json_results(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "concurrency",
        {
            "kernels": 50,
            "remote": {"succeeded": 50, "requested": 50},
            "local": {"succeeded": 49, "requested": 50},
            "goals": {"all_started": {"met": False}},
            "ratio_median": 1.1,
            "ratio_p95": 1.3,
        },
        "## Concurrent kernel starts\n",
    )
    _write(
        tmp_path,
        "operator_throughput",
        {"kernels_per_second": 61.0, "kernels": 1000, "operator": {}},
        "## Operator throughput\n",
    )
    page = report.render(tmp_path)
    rows = {line.split(" | ")[0]: line for line in page.splitlines() if line.startswith("| ")}
    started = rows["| Concurrency: 50 kernels at once, 50/50 start"]
    assert "remote 50/50, local 49/50" in started and "**missed**" in started
    ratio = rows["| Concurrency: remote ÷ local ≤ 1.25"]
    assert "1.1" in ratio and "| met |" in ratio
    assert "| met |" in rows["| Operator throughput ≥ 50 kernels/s"]
    # A result that lacks the fields a row needs, or is absent, is not measured, never "met".
    assert "not measured" in rows["| Operator RSS (reported)"]
    assert "not measured" in rows["| API load: ~0 requests per idle kernel"]


def test_sections_follow_the_documented_order_then_the_rest(tmp_path: Path) -> None:
    for name in ("zeta", "memory", "concurrency", "gateway_start"):
        (tmp_path / f"{name}.md").write_text(f"## {name}\n")
    assert report.section_names(tmp_path) == ["gateway_start", "concurrency", "memory", "zeta"]
    page = report.render(tmp_path)
    assert page.index("## Summary") < page.index("## gateway_start") < page.index("## zeta")


def test_main_writes_the_page_where_asked(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    out = tmp_path / "benchmarks.md"
    report.main(["--results", str(results), "--out", str(out)])
    text = out.read_text()
    assert text.startswith("# Benchmarks")
    assert "No benchmark has been run yet." in text
