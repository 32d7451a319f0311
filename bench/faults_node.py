"""Fault: node loss - the kernels' node loses power, then comes back.

On a private sandbox: the real operator and the elastic example (gateway and notebook server
as Deployment pods on the first node, ``sandbox-node``). A second node, ``kernel-node``, joins
(``POST /sandbox/nodes/kernel-node/start``, sandbox/nodes.py) and the example's
JupyterKernelTemplate gets ``nodeSelector: {kubernetes.io/hostname: kernel-node}``, so the
kernels run there while the gateway and the notebook server do not. N notebooks are opened
through the notebook server, ``x`` set in each, their websockets kept open. Then
``POST /sandbox/nodes/kernel-node/crash``: that kubelet stops at once and every process of its
pods gets SIGKILL (the pods stay "Running" in the API, as on a cluster until the node controller
notices after 40 s). ``--outage`` seconds later (10 s: less than the node controller's grace,
which the sandbox does not emulate) the kubelet starts again, finds its kernel pods' containers
gone and fails them (``ContainerStatusUnknown``, exit code 137, as a kubelet after a reboot
does for ``restartPolicy: Never``). Checked per kernel, as in ``faults_pods.py``: restarting
shown on the websocket, the reason recorded and shown to the notebook user, usable again
(fresh), one JupyterKernel per kernel id, nothing left over; recover seconds: the node back →
the last kernel usable.

Sizes: ``small`` 2 kernels, ``full`` 10. Writes ``node-loss.json``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _faults_process import ExampleStack, after_restart_fault, finish, open_kernels, parse_args
from faults_pods import row_from

SIZES = {"small": 2, "full": 10}
NODE = "kernel-node"
OUTAGE_S = 10.0
TEMPLATE = "jupyterkerneltemplate-elastic"


def run(size: str, command: str, workdir: Path) -> dict[str, Any]:
    count = SIZES[size]
    with ExampleStack(workdir) as stack:
        stack.node_action(NODE, "start")
        patch = {"spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/hostname": NODE}}}}}
        stack.kubectl.run("patch", "jkt", TEMPLATE, "--type=merge", "-p", json.dumps(patch))
        _starts, watched = open_kernels(stack, count, "node")
        nodes = {p["spec"].get("nodeName") for p in stack.kernel_pods()}
        if nodes != {NODE}:
            raise RuntimeError(f"kernel pods run on {nodes}, not only on {NODE}")
        crashed = stack.node_action(NODE, "crash")
        time.sleep(OUTAGE_S)
        stack.node_action(NODE, "start")
        began = time.monotonic()
        result = after_restart_fault(stack, watched, began, 180 if size == "full" else 120)
    prefix = (
        f"{crashed.get('podsKilled')} pods killed with {NODE}; kubelet back after "
        f"{OUTAGE_S:g} s (gateway and notebook server on the other node). "
    )
    return row_from(
        result,
        count,
        len(watched),
        size,
        command,
        row_id="node-loss",
        scenario="Node loss",
        load=f"{count} kernels open in notebooks, all on one node",
        fault=(
            f"the kernels' node crashes (kubelet stopped, pods SIGKILLed), back {OUTAGE_S:g} s "
            "later"
        ),
        notes_prefix=prefix,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args("faults_node.py", argv, __doc__)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="faults-node-"))
    row = run(args.size, args.command, workdir)
    return finish(args.out, row, workdir)


if __name__ == "__main__":
    sys.exit(main())
