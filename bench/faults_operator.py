"""Fault: the operator killed with SIGKILL during a burst of JupyterKernel creations.

On a private sandbox with the real operator (``elastic-jupyter-operator --namespace``, its own
ServiceAccount), N JupyterKernels (``busybox`` ``sleep``: cheap pods, the operator's work is
the same as for ipykernel) are created all at once. At a random moment of the burst - once the
operator has created a random number k of the N pods, 0 < k < N (seeded; the seed is in the
row's notes) - the operator gets SIGKILL - no chance to finish a write
or a handler - and a new operator process starts 2 s later. Then, measured from the restart:

* exactly N kernel pods, one per JupyterKernel, named after it and owned by it (no duplicate, no
  missing one), all ``Running``;
* every JupyterKernel's status right: ``phase: Running``, ``podName`` and ``podIP`` those of its
  pod, condition ``Ready`` True;
* recover seconds: restart → the last JupyterKernel status right.

Sizes: ``small`` 20 kernels, ``full`` 200 (the issue's). Writes ``operator-kill9.json``.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from _faults_process import BIN, demo, finish, make_row, parse_args

from elastic_jupyter import crds
from elastic_jupyter.sandbox.cluster import SandboxCluster

SIZES = {"small": 20, "full": 200}
RESTART_AFTER_S = 2.0
NAMESPACE = "faults-operator"
FLAGS = ("--liveness", "none", "--metrics-port", "0")


def kernel(index: int) -> dict[str, Any]:
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL.kind,
        "metadata": {
            "name": f"k9-{index:04d}",
            "labels": {crds.LABEL_KERNEL_ID: f"00000000-0000-0000-0000-{index:012d}"},
        },
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "kernel", "image": "busybox", "command": ["sleep", "3600"]}
                    ]
                }
            }
        },
    }


async def create_all(url: str, auth: dict[str, str], count: int) -> list[int]:
    """POST every JupyterKernel at once; their HTTP statuses."""
    base = f"{url}/apis/{crds.GROUP}/{crds.VERSION}/namespaces/{NAMESPACE}/jupyterkernels"
    connector = aiohttp.TCPConnector(limit=0)
    headers = {"User-Agent": "bench-client", **auth}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(i: int) -> int:
            async with session.post(base, json=kernel(i)) as resp:
                await resp.read()
                return resp.status

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def check(cluster: SandboxCluster, count: int) -> dict[str, Any]:
    """Compare JupyterKernels and pods: what is right, what is not."""
    jks = cluster.request(
        "GET", f"/apis/{crds.GROUP}/{crds.VERSION}/namespaces/{NAMESPACE}/jupyterkernels"
    )["items"]
    pods = cluster.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
    by_owner: dict[str, list[dict[str, Any]]] = {}
    unowned = []
    for pod in pods:
        refs = pod["metadata"].get("ownerReferences") or []
        if not refs:
            unowned.append(pod["metadata"]["name"])
        for ref in refs:
            by_owner.setdefault(ref["uid"], []).append(pod)
    right, wrong = [], {}
    jk_uids = set()
    for jk in jks:
        meta, status = jk["metadata"], jk.get("status") or {}
        jk_uids.add(meta["uid"])
        mine = by_owner.get(meta["uid"], [])
        if len(mine) != 1:
            wrong[meta["name"]] = f"{len(mine)} pods"
            continue
        pod = mine[0]
        pstatus = pod.get("status") or {}
        ready = any(
            c.get("type") == crds.CONDITION_READY and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        problems = []
        if pstatus.get("phase") != "Running":
            problems.append(f"pod {pstatus.get('phase')}")
        if status.get("phase") != crds.PHASE_RUNNING:
            problems.append(f"phase {status.get('phase')}")
        if status.get("podName") != pod["metadata"]["name"]:
            problems.append(f"podName {status.get('podName')}")
        if not pstatus.get("podIP") or status.get("podIP") != pstatus.get("podIP"):
            problems.append(f"podIP {status.get('podIP')} vs {pstatus.get('podIP')}")
        if not ready:
            problems.append("Ready not True")
        if problems:
            wrong[meta["name"]] = ", ".join(problems)
        else:
            right.append(meta["name"])
    orphan_pods = [
        p["metadata"]["name"]
        for p in pods
        if not any(r["uid"] in jk_uids for r in p["metadata"].get("ownerReferences") or [])
    ]
    return {
        "jupyterkernels": len(jks),
        "pods": len(pods),
        "pods_running": sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running"),
        "right": len(right),
        "wrong": wrong,
        "orphan_pods": orphan_pods + [n for n in unowned if n not in orphan_pods],
        "count": count,
    }


def run(size: str, command: str, workdir: Path, seed: int) -> dict[str, Any]:
    count = SIZES[size]
    rng = random.Random(seed)
    kill_at_pods = rng.randrange(1, count)
    extra = ["--node-resource", f"pods={count + 50}"]
    with SandboxCluster(
        apply_crds=True, node_cpu="256", node_memory="1Ti", dns=False, extra_args=extra
    ) as cluster:
        cluster.create_namespace(NAMESPACE)
        env = demo().operator_env(cluster)
        log_path = workdir / "operator.log"

        def start_operator() -> subprocess.Popen[bytes]:
            with log_path.open("ab") as log:
                return subprocess.Popen(
                    [str(BIN / "elastic-jupyter-operator"), "--namespace", NAMESPACE, *FLAGS],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )

        operator = start_operator()
        time.sleep(3)  # the operator lists and watches before the burst
        auth = cluster.auth_headers
        began = time.monotonic()

        async def burst() -> tuple[list[int], dict[str, Any]]:
            creating = asyncio.create_task(create_all(cluster.url, auth, count))
            # the random moment: once the operator has created a random number of the pods
            pods_url = f"{cluster.url}/api/v1/namespaces/{NAMESPACE}/pods"
            async with aiohttp.ClientSession(headers=auth) as session:
                give_up = time.monotonic() + 60
                while time.monotonic() < give_up:
                    async with session.get(pods_url) as resp:
                        if len((await resp.json()).get("items") or []) >= kill_at_pods:
                            break
                    await asyncio.sleep(0.02)
            operator.kill()  # SIGKILL
            operator.wait()
            at_kill = await asyncio.to_thread(check, cluster, count)
            return await creating, at_kill

        statuses, at_kill = asyncio.run(burst())
        killed_at = time.monotonic() - began
        time.sleep(RESTART_AFTER_S)
        operator = start_operator()
        restarted = time.monotonic()
        deadline = restarted + (300 if size == "full" else 120)
        state = check(cluster, count)
        recovered: float | None = None
        while time.monotonic() < deadline:
            state = check(cluster, count)
            if state["right"] == count and state["pods"] == count:
                recovered = time.monotonic() - restarted
                break
            time.sleep(0.5)
        time.sleep(3)  # anything extra (a duplicate pod) would show by now
        final = check(cluster, count)
        operator.terminate()
        operator.wait(20)
    created = sum(1 for s in statuses if s == 201)
    extra_pods = max(0, final["pods"] - final["jupyterkernels"])
    lost = count - final["right"]
    met = (
        created == count
        and final["pods"] == count
        and final["right"] == count
        and not final["orphan_pods"]
    )
    notes = (
        f"SIGKILL {killed_at:.1f} s into the burst, once {kill_at_pods} pods existed "
        f"(a random number, seed {seed}); at that moment "
        f"{at_kill['jupyterkernels']} JupyterKernels existed, {at_kill['pods']} pods, "
        f"{at_kill['right']} statuses complete; new operator 2 s later. "
    )
    if met:
        notes += (
            f"Afterwards exactly {count} pods, one per JupyterKernel, all Running, every status "
            "right (phase, podName, podIP, Ready): the level-based handler needs no progress "
            "record, a restart re-lists and finishes the rest."
        )
    else:
        notes += f"MISSED: {final['pods']} pods for {count} kernels, {final['right']} statuses "
        notes += f"right; wrong: {json.dumps(dict(list(final['wrong'].items())[:5]))}"
    return make_row(
        row_id="operator-kill9",
        scenario="Operator kill -9",
        load=f"{count} concurrent JupyterKernel creations",
        fault="operator SIGKILL at a random moment of the burst, restarted 2 s later",
        requested=count,
        started=final["pods_running"],
        usable_after=final["right"],
        lost=lost,
        orphans={"jupyterkernels": 0, "pods": len(final["orphan_pods"]) + extra_pods},
        recover_seconds=recovered,
        met=met,
        notes=notes,
        size=size,
        command=command,
        details={"at_kill": at_kill, "final": final, "create_statuses": sorted(set(statuses))},
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args("faults_operator.py", argv, __doc__)
    seed = random.SystemRandom().randrange(1 << 30)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="faults-operator-"))
    workdir.mkdir(parents=True, exist_ok=True)
    row = run(args.size, args.command, workdir, seed)
    return finish(args.out, row, workdir)


if __name__ == "__main__":
    sys.exit(main())
