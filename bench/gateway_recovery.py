"""Gateway killed → every kernel usable again: how long kernels are unreachable, in seconds.

For each size in ``--sizes`` (default 1, 20, 100) one run starts the sandbox cluster, the
operator and one Enterprise Gateway 3.3 process configured as the operator configures it (the
plugin's kernelspec manager, :class:`KubeflowKernelSessionManager` and
:class:`KubeflowMappingKernelManager`: sessions on the JupyterKernels), starts that many remote
kernels and sets ``x`` in each. Then it kills the gateway with SIGKILL (a crash, an OOM kill, a
lost node: no chance to clean up), starts a new gateway process at once (what the kubelet or
the Deployment does) and, as soon as it answers HTTP, reads ``x`` back from every kernel over
its websocket, all at once. Measured from the SIGKILL:

* **gateway back**: the new process answers HTTP (its boot, and the adoption of every kernel,
  which runs before the HTTP server exists);
* **kernel usable**: that kernel's ``print(x)`` came back with its value (per kernel: median,
  max; the max is "every kernel usable again").

It also checks that no JupyterKernel was deleted or replaced and that every ``x`` survived.
Writes ``gateway_recovery.{json,md}``.

Run: ``.venv/bin/python bench/gateway_recovery.py [--sizes 1,20,100]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from _measure import add_output_args, run_keeping_logs
from _stack import Stack, command_line, machine, summary

from elastic_jupyter.gateway_plugin.kube import kernels_path

HERE = Path(__file__).resolve().parent
GATEWAY_ARGS = (
    "--EnterpriseGatewayApp.kernel_spec_manager_class="
    "elastic_jupyter.gateway_plugin.kernelspec_sync.KubeflowKernelSpecManager",
    "--EnterpriseGatewayApp.kernel_session_manager_class="
    "elastic_jupyter.gateway_plugin.session_store.KubeflowKernelSessionManager",
    "--EnterpriseGatewayApp.kernel_manager_class="
    "elastic_jupyter.gateway_plugin.adoption.KubeflowMappingKernelManager",
)


def _execute_request(code: str) -> tuple[str, str]:
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "bench"}
    header.update({"session": uuid.uuid4().hex, "version": "5.3", "date": ""})
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}}
    content.update({"allow_stdin": False, "stop_on_error": True})
    message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
    message.update({"channel": "shell", "buffers": []})
    return msg_id, json.dumps(message)


async def execute(
    session: aiohttp.ClientSession, base: str, kernel_id: str, code: str, timeout: float
) -> str:
    """Run ``code`` in the kernel over its websocket; return its stdout (raise on failure)."""
    url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    msg_id, request = _execute_request(code)
    out = ""
    replied = idle = False
    async with session.ws_connect(url, timeout=timeout, max_msg_size=0) as ws:
        await ws.send_str(request)
        while not (replied and idle):  # the output (iopub) may come after the reply (shell)
            raw = await asyncio.wait_for(ws.receive(), timeout)
            if raw.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"websocket ended: {raw.type}")
            msg = json.loads(raw.data)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out += msg["content"].get("text", "")
            elif kind == "status":
                idle = msg["content"].get("execution_state") == "idle"
            elif kind == "execute_reply":
                if msg["content"].get("status") != "ok":
                    raise RuntimeError(f"execute failed: {msg['content'].get('ename')}")
                replied = True
    return out


async def until_usable(
    session: aiohttp.ClientSession, base: str, kernel_id: str, value: int, deadline: float
) -> tuple[float | None, str]:
    """Retry ``print(x)`` until it answers; return (monotonic time it did, error if never)."""
    error = ""
    while time.monotonic() < deadline:
        try:
            got = (await execute(session, base, kernel_id, "print(x)", 20)).strip()
            if got == str(value):
                return time.monotonic(), ""
            return None, f"x is {got!r}, not {value}"
        except Exception as err:
            error = f"{type(err).__name__}: {err}"[:200]
            await asyncio.sleep(0.2)
    return None, error or "timeout"


def kernel_objects(stack: Stack) -> dict[str, str]:
    """kernel id -> JupyterKernel name (with uid, so a replaced object counts as changed)."""
    listed = stack.sandbox.request("GET", kernels_path(stack.namespace))  # as the admin
    return {
        str(o["spec"]["kernelId"]): f"{o['metadata']['name']}/{o['metadata']['uid']}"
        for o in listed.get("items") or []
    }


def one_size(size: int, workdir: Path, timeout: float) -> dict[str, Any]:
    (workdir / f"n{size}").mkdir(parents=True, exist_ok=True)
    with Stack(workdir / f"n{size}", pods=size, gateway_args=GATEWAY_ARGS) as stack:
        starts = asyncio.run(stack.start_many("remote", size, concurrency=10, timeout=timeout))
        kernel_ids = [s.kernel_id for s in starts if s.ok]
        if len(kernel_ids) != size:
            errors = sorted({s.error for s in starts if not s.ok})
            raise RuntimeError(f"{size - len(kernel_ids)} kernels did not start: {errors[:3]}")
        values = {kid: 1000 + i for i, kid in enumerate(kernel_ids)}

        async def set_all() -> None:
            async with aiohttp.ClientSession() as session:
                await asyncio.gather(
                    *(
                        execute(session, stack.base, kid, f"x = {value}", timeout)
                        for kid, value in values.items()
                    )
                )

        asyncio.run(set_all())
        before = kernel_objects(stack)
        assert stack.gateway is not None
        killed = time.monotonic()
        stack.gateway.send_signal(signal.SIGKILL)
        stack.gateway.wait(10)
        stack._start_gateway()  # returns once the new process answers HTTP
        back = time.monotonic()

        async def read_all() -> list[tuple[float | None, str]]:
            deadline = time.monotonic() + timeout
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                return list(
                    await asyncio.gather(
                        *(
                            until_usable(session, stack.base, kid, value, deadline)
                            for kid, value in values.items()
                        )
                    )
                )

        results = asyncio.run(read_all())
        after = kernel_objects(stack)
        usable = [t - killed for t, _ in results if t is not None]
        failures = sorted({e for t, e in results if t is None})
        return {
            "kernels": size,
            "gateway_back_s": round(back - killed, 2),
            "usable": len(usable),
            "kernel_usable_s": summary(usable),
            "all_usable_s": round(max(usable), 2) if len(usable) == size else None,
            "failures": failures[:5],
            "jupyterkernels_deleted_or_replaced": sum(
                1 for kid, ref in before.items() if after.get(kid) != ref
            ),
        }


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rows = [one_size(size, workdir, args.timeout) for size in args.sizes]
    return {
        "rows": rows,
        "machine": machine(),
        "command": command_line("gateway_recovery.py", sys.argv[1:]),
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        "## Gateway killed → every kernel usable again",
        "",
        "The gateway process (configured as the operator configures it: sessions on the "
        "JupyterKernels) is killed with SIGKILL while N kernels hold state (`x`), and a new "
        "process is started at once, as the kubelet restarts a container. Seconds from the "
        "SIGKILL until the new gateway answers HTTP (it adopts every kernel before that) and "
        "until each kernel answers `print(x)` with its value over its websocket, all kernels "
        "asked at once.",
        "",
        "| kernels | gateway back (s) | every kernel usable (s) | per kernel median (s) "
        "| usable with its `x` | JupyterKernels deleted |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        median = (row["kernel_usable_s"] or {}).get("median", "-")
        lines.append(
            f"| {row['kernels']} | {row['gateway_back_s']} | {row['all_usable_s']} | {median} "
            f"| {row['usable']}/{row['kernels']} | {row['jupyterkernels_deleted_or_replaced']} |"
        )
    mach = result["machine"]
    rows = result["rows"]
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        extra = round(last["gateway_back_s"] - first["gateway_back_s"], 2)
        lines += [
            "",
            f"Adopting {last['kernels']} kernels instead of {first['kernels']} made the gateway "
            f"come back {extra} s later (one Secret read and one ZeroMQ reconnect per kernel, "
            'before the HTTP server); the rest of "gateway back" is the Enterprise Gateway '
            "process booting. After that, each kernel's first websocket waits for its "
            "`kernel_info` reply, all kernels at once on the same two cores.",
        ]
    lines += [
        "",
        "The machine was shared with other test runs: the load average below shows how busy; "
        "on an idle machine every figure is smaller.",
        "",
        f"Machine: {mach.get('cpu')} ({mach.get('cpu_count')} CPUs, load "
        f"{mach.get('load_average_1m')} at the end), Python {mach.get('python')}.",
        "",
        f"Command: `{result['command']}`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(p) for p in text.split(",") if p.strip()],
        default=[1, 20, 100],
        help="kernel counts, comma-separated",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="per step, seconds")
    add_output_args(parser)
    args = parser.parse_args(argv)
    result = run_keeping_logs(run, args, "ej-recovery-")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "gateway_recovery.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / "gateway_recovery.md").write_text(render(result))
    print(render(result))
    bad = [r for r in result["rows"] if r["usable"] != r["kernels"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
