"""One row of the reliability table (``FAULTS_SCHEMA.md``): build it, write it, and check it.

Shared by ``bench/faults_hostile.py`` and ``bench/faults_stock_eg.py``; imports no other bench
module, so the tests under ``tests/faults/`` may read the rows without starting anything.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "faults"
ORPHAN_KINDS = ("jupyterkernels", "pods", "secrets", "roles")
FIELDS = (
    "id",
    "scenario",
    "stack",
    "load",
    "fault",
    "requested",
    "started",
    "usable_after",
    "lost",
    "orphans",
    "recover_seconds",
    "met",
    "notes",
    "issue",
    "size",
    "command",
)


def command_of(script: str, size: str) -> str:
    """The command that reproduces a row, as ``FAULTS_SCHEMA.md`` writes it."""
    return f".venv/bin/python bench/{script} --size {size}"


def row(**fields: Any) -> dict[str, Any]:
    """A row with every schema field, in the schema's order (missing ones are an error)."""
    missing = [name for name in FIELDS if name not in fields]
    extra = [name for name in fields if name not in FIELDS and not name.startswith("x_")]
    if missing or extra:
        raise ValueError(f"row {fields.get('id')}: missing {missing}, unexpected {extra}")
    orphans = fields["orphans"]
    if set(orphans) != set(ORPHAN_KINDS):
        raise ValueError(f"row {fields['id']}: orphans must count exactly {ORPHAN_KINDS}")
    ordered = {name: fields[name] for name in FIELDS}
    ordered.update({k: v for k, v in fields.items() if k.startswith("x_")})  # details
    return ordered


def write_rows(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """``out/<row-id>.json`` for each row; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in rows:
        path = out / f"{item['id']}.json"
        path.write_text(json.dumps(item, indent=2) + "\n", encoding="utf-8")
        paths.append(path)
        print(
            f"{path}: met={item['met']} lost={item['lost']} {item['notes'][:200]}", file=sys.stderr
        )
    return paths


def read_row(out: Path, row_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / f"{row_id}.json").read_text(encoding="utf-8"))
    return data
