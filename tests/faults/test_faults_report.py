"""bench/faults_report.py: the reliability table renders whatever rows the scenarios wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "bench" / "faults_report.py"


def _row(row_id: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": row_id,
        "scenario": "API faults",
        "stack": "elastic-jupyter",
        "load": "3 starts + 3 idle kernels, 25 s",
        "fault": "5 % of API requests answer 500 or 503",
        "requested": 3,
        "started": 3,
        "usable_after": 6,
        "lost": 0,
        "orphans": {"jupyterkernels": 0, "pods": 0, "secrets": 0, "roles": 0},
        "recover_seconds": None,
        "met": True,
        "notes": "all fine",
        "issue": None,
        "size": "small",
        "command": ".venv/bin/python bench/faults_api.py --size small",
    }
    row.update(extra)
    return row


def _render(tmp_path: Path, rows: dict[str, Any], fragment: str = "") -> str:
    rows_dir = tmp_path / "rows"
    rows_dir.mkdir()
    for name, row in rows.items():
        text = row if isinstance(row, str) else json.dumps(row)
        (rows_dir / name).write_text(text)
    docs = tmp_path / "docs"
    docs.mkdir()
    if fragment:
        (docs / "reliability-nodes.md").write_text(fragment)
    out = docs / "reliability.md"
    subprocess.run(
        [sys.executable, str(REPORT), "--rows", str(rows_dir), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return out.read_text()


def test_full_rows_win_and_misses_are_listed(tmp_path: Path) -> None:
    doc = _render(
        tmp_path,
        {
            "a-small.json": _row("api-x", notes="small run"),
            "a-full.json": _row("api-x", size="full", notes="full run"),
            "b.json": _row(
                "gw-kill",
                scenario="Gateway kill -9",
                stack="stock EG 3.3",
                met=False,
                lost=2,
                notes="2 kernels | gone",
                issue="#99",
                orphans={"jupyterkernels": 1, "pods": 2},
            ),
        },
        fragment="## Node loss\n\nThe kubelet stops.",
    )
    assert "full run" in doc and "small run" not in doc
    assert "2 rows: 1 met, 1 missed; 1 measured at small size only." in doc
    assert "**missed**" in doc and "2 kernels \\| gone see #99" in doc  # pipes escaped
    assert "| 1 / 2 / ? / ? |" in doc  # orphan kinds not given are shown as unknown
    assert "## Misses, honestly" in doc and "**gw-kill**" in doc
    assert doc.index("API faults") < doc.index("Gateway kill -9 |")  # the issue's order
    assert "The kubelet stops." in doc  # other scenarios' fragments are folded in


def test_bad_files_are_shown_not_dropped(tmp_path: Path) -> None:
    partial = _row("api-y")
    del partial["orphans"]
    doc = _render(tmp_path, {"junk.json": "{not json", "partial.json": partial})
    assert "## Rows that could not be read" in doc
    assert "`junk.json`: not JSON" in doc
    assert "`partial.json`: missing field 'orphans'" in doc
    assert "(small size only)" in doc  # the partial row is still shown, marked small


def test_rows_keep_their_script_order_and_stacks_pair_up(tmp_path: Path) -> None:
    doc = _render(
        tmp_path,
        {
            "z.json": _row("api-z", fault="zeta fault", order=0),
            "a.json": _row("api-a", fault="alpha fault", order=1),
            "s.json": _row("api-z-stock", fault="zeta fault", stack="stock EG 3.3"),
        },
    )
    table = doc[doc.index("## The table") :]
    zeta_ours = table.index("| elastic-jupyter | 3 starts + 3 idle kernels, 25 s | zeta fault")
    zeta_stock = table.index("| stock EG 3.3 | 3 starts + 3 idle kernels, 25 s | zeta fault")
    alpha = table.index("| alpha fault")
    assert zeta_ours < zeta_stock < alpha


def test_a_small_rerun_never_replaces_a_full_row(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from _faults_rows import write_row
    finally:
        sys.path.remove(str(ROOT / "bench"))
    full = write_row(tmp_path, _row("api-x", size="full", notes="full run"))
    small = write_row(tmp_path, _row("api-x", notes="small run"))
    assert full.name == "api-x.json" and small.name == "api-x.small.json"
    assert json.loads(full.read_text())["notes"] == "full run"
    with pytest.raises(ValueError, match="missing field 'met'"):
        write_row(tmp_path, {k: v for k, v in _row("api-y").items() if k != "met"})
