"""Fault: a pod deletion storm - every kernel pod deleted at once behind the product's back.

On a private sandbox: the real operator, the elastic example (gateway and notebook server as
Deployment pods), N notebooks opened through the notebook server, ``x`` set in each, their
websockets kept open as JupyterLab keeps them. Then one ``kubectl delete pods -l
component=kernel`` deletes every kernel pod at once. Checked per kernel:

* the operator records why on the JupyterKernel (``Failed``/``PodDeleted`` + a Warning Event);
* the notebook's websocket shows status ``restarting`` (EG's restarter starts a new kernel);
* the reason reaches the notebook user through the notebook server (websocket or kernel model);
* the kernel is usable again through the notebook server, a fresh kernel (``x`` is gone);
* exactly one JupyterKernel per kernel id afterwards, and nothing left over (old JupyterKernels,
  pods, Secrets, Roles);
* recover seconds: the delete → the last kernel usable.

Sizes: ``small`` 3 kernels, ``full`` 20 (the issue's). Writes ``pod-deletion-storm.json``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _faults_process import (
    ExampleStack,
    after_restart_fault,
    finish,
    make_row,
    open_kernels,
    parse_args,
)

from elastic_jupyter import crds

SIZES = {"small": 3, "full": 20}


def run(size: str, command: str, workdir: Path) -> dict[str, Any]:
    count = SIZES[size]
    with ExampleStack(workdir) as stack:
        _starts, watched = open_kernels(stack, count, "storm")
        began = time.monotonic()
        stack.kubectl.run(
            "delete",
            "pods",
            "-l",
            f"{crds.LABEL_COMPONENT}={crds.COMPONENT_KERNEL}",
            "--wait=false",
        )
        result = after_restart_fault(stack, watched, began, 180 if size == "full" else 120)
    return row_from(
        result,
        count,
        len(watched),
        size,
        command,
        row_id="pod-deletion-storm",
        scenario="Pod deletion storm",
        load=f"{count} kernels open in notebooks (websockets connected)",
        fault=f"all {count} kernel pods deleted at once (kubectl delete pods -l component=kernel)",
    )


def reason_summary(reasons: list[str]) -> str:
    """``PodDeleted x20, e.g. 'pod ... was deleted; ...'``: one entry per reason."""
    by_reason: dict[str, list[str]] = {}
    for text in reasons:
        reason, _, message = text.partition(":")
        by_reason.setdefault(reason.strip(), []).append(message.strip())
    return "; ".join(
        f"{reason} x{len(messages)}, e.g. {messages[0][:160]!r}"
        for reason, messages in sorted(by_reason.items())
    )


def row_from(
    result: dict[str, Any],
    count: int,
    started: int,
    size: str,
    command: str,
    *,
    row_id: str,
    scenario: str,
    load: str,
    fault: str,
    notes_prefix: str = "",
) -> dict[str, Any]:
    """The row of a scenario that kills kernels (also used by ``faults_node.py``)."""
    left = result["leftovers"]
    lost = started - result["usable"]
    met = (
        started == count
        and result["restarting"] == started
        and result["reason_shown"] == started
        and lost == 0
        and result["one_jk_each"]
        and not any(left["counts"].values())
    )
    notes = notes_prefix + (
        f"{result['restarting']}/{started} notebooks saw 'restarting'; the operator recorded a "
        f"reason on {result['reason_recorded']}/{started} JupyterKernels "
        f"({reason_summary(result['reasons'])}); the reason reached "
        f"{result['reason_shown']}/{started} notebook users through the notebook server; "
        f"{result['usable']}/{started} usable again ({result['fresh']} fresh kernels, x gone)."
    )
    if not result["one_jk_each"]:
        notes += f" MISSED: JupyterKernels per kernel id: {json.dumps(result['jk_counts'])}."
    if any(left["counts"].values()):
        notes += f" MISSED: left over: {json.dumps(left['names'])[:300]}."
    return make_row(
        row_id=row_id,
        scenario=scenario,
        load=load,
        fault=fault,
        requested=count,
        started=started,
        usable_after=result["usable"],
        lost=lost,
        orphans=left["counts"],
        recover_seconds=result["recover_s"],
        met=met,
        notes=notes,
        size=size,
        command=command,
        details={k: v for k, v in result.items() if k != "leftovers"} | {"leftovers": left},
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args("faults_pods.py", argv, __doc__)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="faults-pods-"))
    row = run(args.size, args.command, workdir)
    return finish(args.out, row, workdir)


if __name__ == "__main__":
    sys.exit(main())
