"""One row of the reliability table (``docs/reliability.md``): the shared JSON contract.

Every ``bench/faults_*.py`` script writes one JSON file per row into ``bench/results/faults/``
(see ``/work/wt/FAULTS_SCHEMA.md`` as agreed for issue #14; ``bench/faults_report.py`` renders
them). This module holds the row's fields and the writer so the scripts agree on them.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "faults"
ORPHAN_KINDS = ("jupyterkernels", "pods", "secrets", "roles")
REQUIRED = (
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
ROW_ID = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


def problems(row: Any) -> list[str]:
    """What is wrong with a row (empty: it follows the contract)."""
    if not isinstance(row, dict):
        return ["a row must be a JSON object"]
    found = [f"missing field {key!r}" for key in REQUIRED if key not in row]
    if "id" in row and not ROW_ID.match(str(row["id"])):
        found.append(f"id {row['id']!r} must be lowercase letters, digits, dots and dashes")
    if row.get("size") not in (None, "small", "full"):
        found.append(f"size {row.get('size')!r} must be 'small' or 'full'")
    orphans = row.get("orphans")
    if "orphans" in row and not isinstance(orphans, dict):
        found.append("orphans must be an object")
    if "met" in row and not isinstance(row["met"], bool):
        found.append("met must be true or false")
    return found


def _size_of(path: Path) -> str | None:
    try:
        size = json.loads(path.read_text(encoding="utf-8")).get("size")
    except (OSError, ValueError, AttributeError):
        return None
    return str(size) if size else None


def write_row(out_dir: Path, row: dict[str, Any]) -> Path:
    """Write ``<out_dir>/<id>.json`` (raises ``ValueError`` for a row off the contract); a
    small row next to a full one of the same id goes to ``<id>.small.json``."""
    wrong = problems(row)
    if wrong:
        raise ValueError(f"row {row.get('id')!r}: " + "; ".join(wrong))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{row['id']}.json"
    if row.get("size") == "small" and _size_of(path) == "full":
        # a small rerun (make faults FAULTS_SIZE=small) never replaces a measured full row
        path = out_dir / f"{row['id']}.small.json"
    path.write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")
    return path


def command_of(script: str, size: str) -> str:
    """The command that reproduces a row."""
    return f".venv/bin/python bench/{script} --size {size}"


def row(**fields: Any) -> dict[str, Any]:
    """A row with every field, in the contract's order (a missing or unknown one is an error;
    extra evidence goes in fields named ``x_*``)."""
    missing = [name for name in REQUIRED if name not in fields]
    extra = [name for name in fields if name not in REQUIRED and not name.startswith("x_")]
    if missing or extra:
        raise ValueError(f"row {fields.get('id')}: missing {missing}, unexpected {extra}")
    if set(fields["orphans"]) != set(ORPHAN_KINDS):
        raise ValueError(f"row {fields['id']}: orphans must count exactly {ORPHAN_KINDS}")
    ordered = {name: fields[name] for name in REQUIRED}
    ordered.update({k: v for k, v in fields.items() if k.startswith("x_")})
    return ordered


def write_rows(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """:func:`write_row` for each row, saying on stderr what each one found; return the paths."""
    paths = []
    for item in rows:
        path = write_row(out, item)
        paths.append(path)
        print(
            f"{path}: met={item['met']} lost={item['lost']} {item['notes'][:200]}", file=sys.stderr
        )
    return paths
