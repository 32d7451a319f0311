"""Assemble ``docs/benchmarks.md`` from the per-benchmark results in ``bench/results/``.

Each script in ``bench/`` writes ``bench/results/<name>.json`` (the numbers) and
``bench/results/<name>.md`` (its section: what was measured, the table, the machine and the
command that reproduces it). This script only stitches those sections together in a stable
order, so the document always shows the numbers of the last real run of each benchmark.

Run: ``.venv/bin/python bench/report.py``
"""

from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DOC = HERE.parent / "docs" / "benchmarks.md"

# Sections in reading order; anything else found in results/ follows alphabetically.
ORDER = [
    "gateway_start",
    "launcher_overhead",
    "operator_throughput",
    "gateway_api_load",
    "gpu_hours",
]

HEADER = """# Benchmarks

Measured on the project's sandbox cluster (in-memory API server + local kubelet, see
`docs/architecture.md`), on the machine named in each section. Every section names the command
that reproduces it; `.venv/bin/python bench/report.py` rebuilds this page from
`bench/results/`. Benchmarks do not gate CI; a smoke run of each (tiny sizes) runs in
`make test` so the scripts never rot. Where a goal is missed, the section says so.
"""


def section_names(results: Path) -> list[str]:
    """Return the result names present, in the documented order first."""
    present = {p.stem for p in results.glob("*.md")}
    ordered = [name for name in ORDER if name in present]
    return ordered + sorted(present - set(ordered))


def render(results: Path) -> str:
    """Return the whole benchmarks page built from the sections in ``results``."""
    parts = [HEADER]
    names = section_names(results)
    if not names:
        parts.append("\nNo benchmark has been run yet.\n")
    for name in names:
        parts.append("\n" + (results / f"{name}.md").read_text(encoding="utf-8").strip() + "\n")
    return "".join(parts)


def main() -> None:
    """Command-line entry: write docs/benchmarks.md (or another path given with --out)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=DOC)
    args = parser.parse_args()
    args.out.write_text(render(args.results), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
