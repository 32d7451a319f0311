"""Render ``docs/reliability.md`` from the rows in ``bench/results/faults/*.json``.

Every ``bench/faults_*.py`` script writes one JSON row per measured fault (the contract is in
``bench/_faults_rows.py``); ``make faults`` runs them all at full size and then this script. A
row measured at full size wins over the same row at small size; a row only measured small is
shown, marked as such. A file that is not a row, or a row missing fields, is not dropped
silently: it is listed under "Rows that could not be read" with what is wrong. Paragraphs other
scenarios keep in ``docs/reliability-*.md`` are appended under "Scenario notes".

Run: ``.venv/bin/python bench/faults_report.py [--rows DIR] [--out docs/reliability.md]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from _faults_rows import DEFAULT_OUT, ORPHAN_KINDS, problems

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DOC = REPO / "docs" / "reliability.md"

#: The issue's order; scenarios not listed here follow, alphabetically.
SCENARIO_ORDER = (
    "API faults",
    "Operator kill -9",
    "Gateway kill -9",
    "Node loss",
    "Pod deletion storm",
    "Hostile input",
)
STACK_ORDER = ("elastic-jupyter", "stock EG 3.3")

INTRO = """\
# Reliability: how elastic-jupyter fails, measured

Users trust a platform after seeing how it fails. Every row below is a fault injected into a
running stack (the sandbox cluster, the real operator, the real Enterprise Gateway with our
plugin, and kernels started through the notebook server as JupyterLab starts them), with what
happened to the kernels. A row that says **missed** is a loss we measured and did not fix: its
notes say why and where it is tracked. Nothing here is hand-edited: `make faults` reruns every
scenario at full size and rewrites this page (`bench/faults_report.py`, from the JSON rows in
`bench/results/faults/`).

## How to rerun

    make faults                      # every bench/faults_*.py --size full, then this report
    make faults FAULTS_SIZE=small    # the tiny sizes `make test` runs (tests/faults/)
    .venv/bin/python bench/faults_api.py --size full --only api-restart   # one row

Each row's own command is in its last column. The machine is shared (2 cores): times are what
they were on it, the load is in the notes where it mattered; counts (lost, orphans) do not
depend on load.

## What the columns mean

- **requested / started / usable after**: kernels the user asked for under the fault, how many
  started (the notebook opened and a cell ran), and how many kernels (those plus any held
  before the fault) still answered with their own state afterwards.
- **lost**: kernels that stopped answering or lost their state (restarted behind the user's
  back) - the number that must be 0.
- **orphans left**: objects of kernels that no longer exist, after the kernels were shut down
  or culled and a grace period: JupyterKernels, kernel pods, kernel Secrets, kernel Roles.
- **recover**: seconds from the end of an outage until the stack worked again, as each
  scenario defines it in its notes (API server restart: until the operator and the gateway
  each had a request answered again, the worst of the restarts; it includes the time neither
  needed the API); `-` when nothing went down.
- **met**: every claim of the scenario held; **missed** says which did not in the notes.
"""

FAULTS_TEXT = """\
## The faults

- **API faults** (`bench/faults_api.py`): the sandbox API server misbehaves for the product
  (operator, gateway, notebook server) through its fault switch (`sandbox/faults.py`,
  `POST /sandbox/faults`, `POST /sandbox/restart`): a share of requests answers 500 or 503; a
  share of updates answers 409 Conflict; every request waits 1 s longer; every watch is cut
  after 10 s; every watch resume answers 410 Gone (clients must list again); the API server
  restarts (every connection cut, refused for 5 s) with its state kept, as over etcd. Under
  each, kernels are started and others sit idle with open websockets for the window; then
  every kernel must still hold its `x` (not lost, not restarted after a false "dead" from
  `poll()`), each kernel id must have had exactly one pod, and after the websockets close the
  gateway's culler must still remove every kernel, the fault still on. The sandbox's own
  kubelet, scheduler and controllers are exempt from the faults: the row measures our code, and
  a real kubelet retries on its own. "409 on writes" hits updates (PUT, PATCH) only: a create
  answers 409 only when the name exists, which a fault cannot fake without lying. "410 on every
  resume" answers 410 to *every* watch naming a resourceVersion, the first watch after a fresh
  list included, which no real API server does: clients never hold a watch and list again in a
  loop (1947 answers of 410 in about 4 minutes at full size). It is harsher than a
  compaction; kernels survived it, but the loop's cost was not measured.

The API-fault rows of 2026-12-04 ran on 2 cores shared with other test runs (1-minute load
average 10 to 31): starts were slow (50 starts under 1 s latency took 3.5 min), which makes
the window longer, never the counts. The restart row's "recover" includes the time the operator
and the gateway simply had nothing to ask the API server.

## Found and fixed while building this table

- **A 500/503 during a kernel start failed the user's start.** The notebook showed
  `HTTP 500: cannot read JupyterKernelTemplate ...: Max retries exceeded` (25 % faults, small
  size: 1 of 3 starts failed). The gateway now retries its start-path API calls (template, gateway,
  JupyterKernel create, kernel Secret) through 5xx, 429 and refused connections for up to 20 s,
  off EG's loop; a create that landed before its answer was lost is recognised by its kernel id
  instead of failing on 409 (`gateway_plugin/api_retry.py`).
- **A 500/503 on the session write left a kernel that no restarted gateway would adopt.** The
  kernel ran, but its session annotation was missing (logged only). The write is now retried in
  the background until it lands (`gateway_plugin/session_store.py`).
- Not a product fault, but worth knowing for anyone scripting against the notebook server: a
  websocket client that never reads does not answer the server's pings; jupyter_server closes it
  after 90 s, the gateway then sees 0 connections and culls the kernel. The scenarios read every
  websocket as a browser does.
"""


def load_rows(rows_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows to show (full preferred over small per id) and the files that were not rows."""
    chosen: dict[str, dict[str, Any]] = {}
    unreadable: list[str] = []
    for path in sorted(rows_dir.glob("*.json")):
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            unreadable.append(f"`{path.name}`: not JSON ({err})")
            continue
        wrong = problems(row)
        if wrong:
            unreadable.append(f"`{path.name}`: " + "; ".join(wrong))
            if not isinstance(row, dict) or "id" not in row:
                continue
        key = str(row.get("id"))
        old = chosen.get(key)
        if old is None or (old.get("size") != "full" and row.get("size") == "full"):
            chosen[key] = row
    # A row may carry "order" (its place in its script); rows sharing its fault text (the same
    # fault on the stock stack) sort with it, so both stacks sit side by side.
    fault_rank: dict[str, int] = {}
    for row in chosen.values():
        order = row.get("order")
        if isinstance(order, int):
            fault = str(row.get("fault", ""))
            fault_rank[fault] = min(order, fault_rank.get(fault, order))
    rows = sorted(chosen.values(), key=lambda row: _order(row, fault_rank))
    return rows, unreadable


def _rank(value: str, order: tuple[str, ...]) -> tuple[int, str]:
    return (order.index(value), "") if value in order else (len(order), value)


def _order(row: dict[str, Any], fault_rank: dict[str, int]) -> tuple[Any, ...]:
    fault = str(row.get("fault", ""))
    return (
        _rank(str(row.get("scenario", "")), SCENARIO_ORDER),
        fault_rank.get(fault, 1000),
        fault,
        _rank(str(row.get("stack", "")), STACK_ORDER),
        str(row.get("id", "")),
    )


def cell(value: Any) -> str:
    """A table cell: no pipes or newlines, ``?`` for a missing value."""
    if value is None or value == "":
        return "?"
    return str(value).replace("|", "\\|").replace("\n", " ").strip()


def orphans_cell(orphans: Any) -> str:
    if not isinstance(orphans, dict) or not orphans:
        return "?"
    return " / ".join(str(orphans.get(kind, "?")) for kind in ORPHAN_KINDS)


def recover_cell(value: Any) -> str:
    if value is None:
        return "-"
    try:
        return f"{float(value):.1f} s"
    except (TypeError, ValueError):
        return cell(value)


def notes_cell(row: dict[str, Any]) -> str:
    parts = [str(row.get("notes") or "")]
    if row.get("issue"):
        parts.append(f"see {row['issue']}")
    if row.get("size") == "small":
        parts.insert(0, "(small size only)")
    return cell(" ".join(p for p in parts if p)) if any(parts) else ""


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| scenario | stack | load | fault | requested / started / usable after | lost "
        "| orphans left (JupyterKernels / pods / Secrets / Roles) | recover | met? "
        "| notes / issue | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        counts = " / ".join(cell(row.get(k)) for k in ("requested", "started", "usable_after"))
        met = row.get("met")
        verdict = "met" if met is True else "**missed**" if met is False else "?"
        lines.append(
            f"| {cell(row.get('scenario'))} | {cell(row.get('stack'))} | {cell(row.get('load'))} "
            f"| {cell(row.get('fault'))} | {counts} | {cell(row.get('lost'))} "
            f"| {orphans_cell(row.get('orphans'))} | {recover_cell(row.get('recover_seconds'))} "
            f"| {verdict} | {notes_cell(row)} | `{cell(row.get('command'))}` |"
        )
    return lines


def render(rows: list[dict[str, Any]], unreadable: list[str], fragments: list[Path]) -> str:
    met = sum(1 for r in rows if r.get("met") is True)
    missed = [r for r in rows if r.get("met") is not True]
    small = sum(1 for r in rows if r.get("size") != "full")
    lines = [INTRO, "## The table", ""]
    lines.append(
        f"{len(rows)} rows: {met} met, {len(missed)} missed"
        + (f"; {small} measured at small size only" if small else "")
        + "."
    )
    lines += ["", *table(rows), ""]
    if missed:
        lines += ["## Misses, honestly", ""]
        for row in missed:
            issue = f" (see {row['issue']})" if row.get("issue") else ""
            lines.append(
                f"- **{cell(row.get('id'))}** ({cell(row.get('stack'))}, "
                f"{cell(row.get('fault'))}): {cell(row.get('notes'))}{issue}"
            )
        lines.append("")
    lines.append(FAULTS_TEXT)
    if fragments:
        lines += ["## Scenario notes", ""]
        for fragment in fragments:
            text = fragment.read_text(encoding="utf-8").strip()
            lines += [f"<!-- from {fragment.name} -->", text, ""]
    if unreadable:
        lines += ["## Rows that could not be read", ""]
        lines += [f"- {u}" for u in unreadable]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--out", type=Path, default=DOC)
    args = parser.parse_args(argv)
    rows, unreadable = load_rows(args.rows)
    fragments = sorted(args.out.parent.glob("reliability-*.md"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(rows, unreadable, fragments), encoding="utf-8")
    print(f"{args.out}: {len(rows)} rows, {len(unreadable)} unreadable files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
