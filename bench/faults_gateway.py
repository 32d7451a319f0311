"""Fault: the gateway killed with SIGKILL while notebooks are starting kernels.

On a private sandbox: the real operator, the elastic example (JupyterGateway → EG 3.3 +
plugin as a Deployment pod, JupyterNotebook → jupyter_server 2 ``--gateway-url`` as a
Deployment pod, ipykernel in kernel pods). N notebooks are opened at once through the notebook
server (``POST /api/sessions``, as JupyterLab does). At a random moment of that burst - once the
gateway has created a random number k of JupyterKernels, 1 <= k <= N (seeded) - the gateway's
process gets SIGKILL; the kubelet restarts the container, as on a cluster. Then:

* every start either succeeded or failed with a readable reason (not empty, not a bare status
  line, no traceback) - the user knows which notebooks have a kernel;
* every kernel that started is usable through the notebook server (``print(6 * 7)``);
* after the orphan grace period (``EJ_ORPHAN_GRACE_SECONDS``, 15 s here instead of 60 s so the
  run is short) no JupyterKernel or kernel pod is left that no notebook session points at, and
  no kernel Secret outlived its JupyterKernel;
* the notebooks whose start failed, opened again once the gateway is back, get usable kernels;
* recover seconds: SIGKILL → the last started kernel usable (the gateway back when none did).

Sizes: ``small`` 4 starts, ``full`` 20 (the issue's). Writes ``gateway-kill9.json``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _faults_process import (
    ExampleStack,
    demo,
    finish,
    leftovers,
    make_row,
    notebook_kernel_ids,
    parse_args,
    readable,
    start_sessions,
    wait_usable,
)

from elastic_jupyter import crds

SIZES = {"small": 4, "full": 20}
ORPHAN_GRACE_S = 15


def _restarts(pod: dict[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return int(statuses[0].get("restartCount") or 0)


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def kill_gateway(stack: ExampleStack) -> dict[str, int]:
    """SIGKILL every gateway container process; pod name -> restart count before."""
    before = {}
    for pod in stack.gateway_pods():
        container_id = pod["status"]["containerStatuses"][0]["containerID"]
        os.kill(int(str(container_id).rpartition("://")[2]), signal.SIGKILL)
        before[pod["metadata"]["name"]] = _restarts(pod)
    return before


def gateway_back(stack: ExampleStack, before: dict[str, int]) -> bool:
    pods = stack.gateway_pods()
    return bool(pods) and all(
        _ready(p) and _restarts(p) > before.get(p["metadata"]["name"], -1) for p in pods
    )


def run(size: str, command: str, workdir: Path, seed: int) -> dict[str, Any]:
    count = SIZES[size]
    rng = random.Random(seed)
    kill_at_jks = rng.randint(1, count)
    env = {"EJ_ORPHAN_GRACE_SECONDS": str(ORPHAN_GRACE_S)}
    with ExampleStack(workdir, gateway_env=env) as stack:
        client = stack.client
        began = time.monotonic()
        pool, futures = start_sessions(client, stack.kernel_name, count, "kill9")
        # the random moment: once the gateway has created a random number of JupyterKernels
        jks = f"/apis/{crds.GROUP}/{crds.VERSION}/namespaces/{stack.namespace}/jupyterkernels"
        give_up = time.monotonic() + 180
        while time.monotonic() < give_up:
            if len(stack.cluster.request("GET", jks).get("items") or []) >= kill_at_jks:
                break
            time.sleep(0.05)
        in_flight = sum(1 for f in futures if not f.done())
        killed = time.monotonic()
        kill_after = killed - began
        before = kill_gateway(stack)
        starts = [f.result() for f in futures]
        pool.shutdown()
        demo().wait_until("the gateway back", lambda: gateway_back(stack, before), 180, 0.3)
        back_s = time.monotonic() - killed
        ok = [s for s in starts if s.ok]
        failed = [s for s in starts if not s.ok]
        unreadable = [s for s in failed if not readable(s.error)]
        usable_began = time.monotonic() - killed
        usable = wait_usable(client, [s.kernel_id for s in ok], 180)
        recovered = [t for t in usable.values() if t is not None]
        recover_s: float | None = back_s
        if recovered:
            recover_s = usable_began + max(recovered) if len(recovered) == len(ok) else None
        # after the grace period nothing may be left that no notebook session points at
        deadline = time.monotonic() + ORPHAN_GRACE_S + 90
        time.sleep(ORPHAN_GRACE_S)
        left = leftovers(stack.kubectl, notebook_kernel_ids(client))
        while any(left["counts"].values()) and time.monotonic() < deadline:
            time.sleep(2)
            left = leftovers(stack.kubectl, notebook_kernel_ids(client))
        listed = {k["id"] for k in client.kernels()}
        sessions = notebook_kernel_ids(client)
        # what the user does next: open the notebooks that failed again
        pool, futures = start_sessions(client, stack.kernel_name, len(failed), "retry")
        retries = [f.result() for f in futures]
        pool.shutdown()
        retried_ok = [r for r in retries if r.ok]
        retried_usable = wait_usable(client, [r.kernel_id for r in retried_ok], 180)
    lost = sum(1 for t in usable.values() if t is None)
    retry_usable = sum(1 for t in retried_usable.values() if t is not None)
    met = (
        not unreadable
        and lost == 0
        and not any(left["counts"].values())
        and retry_usable == len(failed)
    )
    errors = sorted({s.error for s in failed})
    notes = (
        f"SIGKILL {kill_after:.1f} s into the burst, once the gateway had created "
        f"{kill_at_jks} JupyterKernels (a random number, seed {seed}); {in_flight} of {count} "
        f"starts still in flight; gateway Ready again {back_s:.1f} s after the kill. "
        f"{len(ok)} started, {len(failed)} failed"
    )
    notes += f" ({len(failed) - len(unreadable)} with a readable reason)" if failed else ""
    notes += f"; {len(recovered)} of {len(ok)} started kernels usable through the notebook."
    if failed:
        notes += f" Opened again after the restart: {retry_usable}/{len(failed)} usable."
    if errors:
        notes += f" What the notebook user read: {errors[0][:240]!r}."
    if any(left["counts"].values()):
        notes += f" MISSED: left after the grace period: {json.dumps(left['names'])[:400]}."
    if unreadable:
        notes += f" MISSED: {len(unreadable)} failures without a readable reason."
    return make_row(
        row_id="gateway-kill9",
        scenario="Gateway kill -9",
        load=f"{count} concurrent notebook starts (POST /api/sessions on the notebook server)",
        fault="gateway process SIGKILL at a random moment of the burst; kubelet restarts it",
        requested=count,
        started=len(ok),
        usable_after=len(recovered),
        lost=lost,
        orphans=left["counts"],
        recover_seconds=recover_s,
        met=met,
        notes=notes,
        size=size,
        command=command,
        details={
            "starts": [s.__dict__ for s in starts],
            "unreadable": [s.error for s in unreadable],
            "leftovers": left["names"],
            "gateway_kernels": sorted(listed),
            "session_kernels": sorted(sessions),
            "retries": [r.__dict__ for r in retries],
            "retry_usable": retry_usable,
        },
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args("faults_gateway.py", argv, __doc__)
    seed = random.SystemRandom().randrange(1 << 30)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="faults-gateway-"))
    row = run(args.size, args.command, workdir, seed)
    return finish(args.out, row, workdir)


if __name__ == "__main__":
    sys.exit(main())
