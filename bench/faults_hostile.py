"""Hostile input: fuzz what a tenant or a neighbouring pod can reach, then check nothing broke.

One stack (sandbox, ``elastic-jupyter-operator``, one Enterprise Gateway 3.3 configured as the
operator configures it) and one real kernel holding state (``x``), then three attacks, each a
row of the reliability table (``FAULTS_SCHEMA.md``):

* ``hostile-comm-port``: the kernel's comm port gets every case of ``_fuzz_wire.comm_cases``
  and a burst of connections held open at once. Afterwards the kernel pod must still run, the
  kernel still hold ``x``, and an interrupt from the gateway (a signed request on that same port)
  must still stop a running cell.
* ``hostile-response-address``: the gateway's response address gets every case of
  ``_fuzz_wire.response_cases`` and a burst; while idle connections are held open there, a new
  kernel is started through the gateway. Afterwards the gateway must answer, the first kernel
  still hold ``x`` and the new one compute.
* ``hostile-crds``: ``_fuzz_crds`` breaks every field of the five CRDs, sent by a tenant through
  the API (and a sample with ``kubectl apply`` as that tenant). Every case must be answered
  naming the field; afterwards the operator must still turn a new kernel into a pod.

"Lost" counts components (sandbox, operator, gateway, kernel launcher) that crashed or hung.
``--seed`` fixes every random choice, so a failure reproduces.

Run: ``.venv/bin/python bench/faults_hostile.py --size small|full [--out DIR] [--seed N]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import random
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _fuzz_crds
import _fuzz_wire
import aiohttp
from _faults_rows import DEFAULT_OUT, command_of, row, write_rows
from _gateway_client import http
from _report_utils import run_keeping_logs
from _stack import Stack
from gateway_recovery import GATEWAY_ARGS, execute

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin.kube import kernels_path

SIZES: dict[str, dict[str, int]] = {
    # per_kind: cases of each kind; burst: connections held open at once
    "small": {"comm_per_kind": 2, "comm_burst": 200, "resp_per_kind": 2, "resp_burst": 100,
              "oversized": 1_000_000, "idle": 10, "crd_limit": 150, "huge": 64_000,
              "kubectl": 4, "crd_wait": 15},
    "full": {"comm_per_kind": 25, "comm_burst": 1000, "resp_per_kind": 25, "resp_burst": 1000,
             "oversized": 32_000_000, "idle": 100, "crd_limit": 0, "huge": 1_000_000,
             "kubectl": 20, "crd_wait": 40},
}  # fmt: skip
SCRIPT = "faults_hostile.py"


# --- what "still works" means -------------------------------------------------------------------


async def _interrupt_works(base: str, kernel_id: str, timeout: float = 20) -> str:
    """Run a long sleep, interrupt it through the gateway (EG signs a SIGINT for the comm port):
    "" when the cell stopped with KeyboardInterrupt, else what happened."""
    url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "fuzz"}
    header.update({"session": uuid.uuid4().hex, "version": "5.3", "date": ""})
    content = {"code": "import time\ntime.sleep(60)", "silent": False, "store_history": False}
    content.update({"user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
    message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
    message.update({"channel": "shell", "buffers": []})
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, timeout=timeout, max_msg_size=0) as ws,
    ):
        await ws.send_str(json.dumps(message))
        deadline = time.monotonic() + timeout
        interrupted = False
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(ws.receive(), deadline - time.monotonic())
            if raw.type != aiohttp.WSMsgType.TEXT:
                return f"websocket ended: {raw.type}"
            msg = json.loads(raw.data)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            busy = kind == "status" and msg["content"].get("execution_state") == "busy"
            if busy and not interrupted:
                await asyncio.sleep(0.5)
                async with session.post(f"{base}/api/kernels/{kernel_id}/interrupt") as resp:
                    if resp.status != 204:
                        return f"interrupt: HTTP {resp.status}"
                interrupted = True
            if kind == "execute_reply":
                ename = msg["content"].get("ename")
                return "" if ename == "KeyboardInterrupt" else f"reply {ename!r}"
    return "no reply within the timeout"


def kernel_holds(stack: Stack, kernel_id: str, value: int) -> str:
    """ "" when ``print(x)`` in the kernel answers ``value`` through the gateway."""

    async def run() -> str:
        async with aiohttp.ClientSession() as session:
            return await execute(session, stack.base, kernel_id, "print(x)", 30)

    try:
        got = asyncio.run(run()).strip()
    except Exception as err:
        return f"{type(err).__name__}: {err}"[:200]
    return "" if got == str(value) else f"x is {got!r}"


def start_kernel(stack: Stack, value: int, timeout: float = 120) -> tuple[str, str]:
    """Start a kernel through the gateway and set ``x``; (kernel id, error)."""

    async def run() -> tuple[str, str]:
        async with aiohttp.ClientSession() as session:
            rec = await stack.start_one(session, "remote", timeout)
            if not rec.ok:
                return rec.kernel_id, rec.error
            await execute(session, stack.base, rec.kernel_id, f"x = {value}", 30)
            return rec.kernel_id, ""

    try:
        return asyncio.run(run())
    except Exception as err:
        return "", f"{type(err).__name__}: {err}"[:200]


def components(stack: Stack) -> dict[str, str]:
    """Each control-plane process: "" when alive and answering, else why not."""
    out: dict[str, str] = {}
    for name, proc in (("gateway", stack.gateway), ("operator", stack.operator)):
        out[name] = "" if proc is not None and proc.poll() is None else "exited"
    sandbox = stack.sandbox.process
    out["sandbox"] = "" if sandbox is not None and sandbox.poll() is None else "exited"
    with contextlib.suppress(Exception):
        if not out["gateway"] and http(stack.base + "/api", timeout=5)[0] != 200:
            out["gateway"] = "does not answer /api"
    try:
        stack.sandbox.request("GET", "/api/v1/namespaces")
    except Exception as err:
        out["sandbox"] = out["sandbox"] or f"does not answer: {type(err).__name__}"
    return out


def kernel_object(stack: Stack, kernel_id: str) -> dict[str, Any]:
    for obj in stack.sandbox.request("GET", kernels_path(stack.namespace))["items"]:
        if obj["spec"].get("kernelId") == kernel_id:
            return dict(obj)
    raise LookupError(f"no JupyterKernel for kernel {kernel_id}")


def comm_target(stack: Stack, kernel_id: str) -> tuple[tuple[str, int], str, str]:
    """The kernel's comm port address, its connection key, and its pod's name."""
    obj = kernel_object(stack, kernel_id)
    session = json.loads(obj["metadata"]["annotations"][crds.ANNOTATION_KERNEL_SESSION])
    info = {**session["connection_info"], **session.get("process_info", {})}  # EG keeps comm_*
    name = obj["metadata"]["name"]
    secret = stack.sandbox.request("GET", f"/api/v1/namespaces/{stack.namespace}/secrets/{name}")
    key = base64.b64decode(secret["data"][crds.SESSION_SECRET_CONNECTION_KEY]).decode()
    return (str(info.get("comm_ip") or info["ip"]), int(info["comm_port"])), key, name


def pod_running(stack: Stack, name: str) -> bool:
    try:
        pod = stack.sandbox.request("GET", f"/api/v1/namespaces/{stack.namespace}/pods/{name}")
    except Exception:
        return False
    return bool((pod.get("status") or {}).get("phase") == "Running")


def response_target(stack: Stack, kernel_id: str) -> tuple[tuple[str, int], str]:
    """The gateway's response address and public key, as every kernel pod's env shows them."""
    env = kernel_object(stack, kernel_id)["spec"]["template"]["spec"]["containers"][0]["env"]
    values = {e["name"]: e.get("value", "") for e in env}
    host, _, port = values["RESPONSE_ADDRESS"].rpartition(":")
    return (host, int(port)), values["PUBLIC_KEY"]


def orphans(stack: Stack, namespace: str, keep_roles: tuple[str, ...] = ()) -> dict[str, int]:
    """Our objects left in ``namespace`` (the tenant's own Role excluded)."""
    core = f"/api/v1/namespaces/{namespace}"
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    secrets = stack.sandbox.request("GET", f"{core}/secrets")["items"]
    roles = stack.sandbox.request("GET", f"{rbac}/roles")["items"]
    return {
        "jupyterkernels": len(stack.sandbox.request("GET", kernels_path(namespace))["items"]),
        "pods": len(stack.sandbox.request("GET", f"{core}/pods")["items"]),
        "secrets": sum(
            1 for s in secrets if s.get("type") != "kubernetes.io/service-account-token"
        ),
        "roles": sum(1 for r in roles if r["metadata"]["name"] not in keep_roles),
    }


def wait_orphans(
    stack: Stack, namespace: str, keep_roles: tuple[str, ...] = (), timeout: float = 60
) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        left = orphans(stack, namespace, keep_roles)
        if not any(left.values()) or time.monotonic() > deadline:
            return left
        time.sleep(1.0)


def _broken(status: dict[str, str]) -> list[str]:
    return [f"{name} {why}" for name, why in status.items() if why]


# --- the three attacks --------------------------------------------------------------------------


def comm_port_row(stack: Stack, sizes: dict[str, int], rng: random.Random, base: dict[str, Any]):
    kernel_id, value = base["kernel_id"], base["value"]
    address, key, pod = comm_target(stack, kernel_id)
    tally = _fuzz_wire.fuzz_comm_port(
        address, key, rng, sizes["comm_per_kind"], sizes["comm_burst"]
    )
    time.sleep(2.5)  # the listener drops connections that sent no EOF after 2 s
    problems = []
    if tally.refused:
        problems.append(f"{tally.refused} connections refused (listener gone?)")
    if not pod_running(stack, pod):
        problems.append("kernel pod no longer Running")
    held = kernel_holds(stack, kernel_id, value)
    if held:
        problems.append(f"kernel lost its state: {held}")
    interrupt = asyncio.run(_interrupt_works(stack.base, kernel_id))
    if interrupt:
        problems.append(f"interrupt through the comm port failed: {interrupt}")
    broken = _broken(components(stack))
    lost = len(broken) + (1 if (tally.refused or interrupt or not pod_running(stack, pod)) else 0)
    usable = 0 if held else 1
    notes = (
        f"{tally.sent} hostile connections to one kernel's comm port "
        f"({', '.join(f'{k} {v}' for k, v in sorted(tally.labels.items()))}); afterwards the "
        "kernel kept x, and an interrupt from the gateway still stopped a running cell"
        if not problems and not broken
        else "; ".join(problems + broken)
    )
    return row(
        id="hostile-comm-port",
        scenario="Hostile input",
        stack="elastic-jupyter",
        load="1 kernel holding state (x)",
        fault=(
            "comm port fuzzed: random bytes, non-UTF-8, truncated/huge JSON, deep nesting, "
            "out-of-range and wrongly typed signals, unsigned/badly signed/stale/replayed "
            "requests, "
            f"no-EOF connections, {sizes['comm_burst']} connections at once"
        ),
        requested=tally.sent,
        started=1,
        usable_after=usable,
        lost=lost,
        orphans={k: 0 for k in ("jupyterkernels", "pods", "secrets", "roles")},  # set at the end
        recover_seconds=None,
        met=not problems and not broken,
        notes=notes,
        issue=None,
        size=base["size"],
        command=command_of(SCRIPT, base["size"]),
        x_seed=base["seed"],
        x_connections=tally.labels,
        x_other_errors=tally.other_errors,
    )


def response_row(stack: Stack, sizes: dict[str, int], rng: random.Random, base: dict[str, Any]):
    kernel_id, value = base["kernel_id"], base["value"]
    address, public_key = response_target(stack, kernel_id)
    holders = _fuzz_wire.IdleHolders(address, sizes["idle"])
    try:
        new_id, new_error = start_kernel(stack, value + 1, timeout=120)
    finally:
        idle = len(holders.socks)
        holders.close()
    tally = _fuzz_wire.fuzz_response_address(
        address,
        public_key,
        kernel_id,
        rng,
        sizes["resp_per_kind"],
        sizes["resp_burst"],
        sizes["oversized"],
    )
    problems = []
    if new_error:
        problems.append(f"a kernel started while {idle} idle connections were held failed: "
                        f"{new_error}")  # fmt: skip
    if tally.refused:
        problems.append(f"{tally.refused} connections refused (response address gone?)")
    broken = _broken(components(stack))
    third_id, third_error = start_kernel(stack, value + 2, timeout=120)
    if third_error:
        problems.append(f"a kernel started after the fuzzing failed: {third_error}")
    checks = [kernel_holds(stack, kernel_id, value)]
    if new_id and not new_error:
        checks.append(kernel_holds(stack, new_id, value + 1))
    if third_id and not third_error:
        checks.append(kernel_holds(stack, third_id, value + 2))
    problems += [f"kernel not usable: {c}" for c in checks if c]
    base["more_kernels"] = [k for k in (new_id, third_id) if k]
    return row(
        id="hostile-response-address",
        scenario="Hostile input",
        stack="elastic-jupyter",
        load=f"1 kernel holding state, 1 started while {idle} idle connections held, 1 after",
        fault=(
            "gateway response address fuzzed: random bytes, base64 garbage, plaintext info, "
            "encrypted payloads for a wrong and a running kernel id, replays, truncated, "
            f"{sizes['oversized'] // 1_000_000} MB payload, deep nesting, "
            f"{sizes['resp_burst']} connections at once"
        ),
        requested=tally.sent,
        started=1 + sum(1 for e in (new_error, third_error) if not e),
        usable_after=sum(1 for c in checks if not c),
        lost=len(broken),
        orphans={k: 0 for k in ("jupyterkernels", "pods", "secrets", "roles")},
        recover_seconds=None,
        met=not problems and not broken,
        notes=(
            f"{tally.sent} hostile connections "
            f"({', '.join(f'{k} {v}' for k, v in sorted(tally.labels.items()))}): none accepted, "
            "the gateway kept serving; kernels started during and after all usable"
            if not problems and not broken
            else "; ".join(problems + broken)
        ),
        issue=None,
        size=base["size"],
        command=command_of(SCRIPT, base["size"]),
        x_seed=base["seed"],
        x_connections=tally.labels,
        x_other_errors=tally.other_errors,
    )


def crd_row(stack: Stack, sizes: dict[str, int], rng: random.Random, base: dict[str, Any]):
    namespace = f"fuzz-{uuid.uuid4().hex[:6]}"
    stack.sandbox.create_namespace(namespace)
    user = "fuzz-tenant"
    token = _fuzz_crds.make_tenant(stack.sandbox, namespace, user)
    cases = _fuzz_crds.build_cases(rng, sizes["huge"], sizes["crd_limit"] or None)
    for case in cases:
        _fuzz_crds.send(stack.sandbox, token, namespace, case)
    _fuzz_crds.judge(stack.sandbox, namespace, cases, sizes["crd_wait"])
    kubectl = _fuzz_crds.kubectl_sample(
        stack.sandbox, namespace, user, cases, rng, sizes["kubectl"]
    )
    outcomes: dict[str, int] = {}
    for case in cases:
        outcomes[case.outcome] = outcomes.get(case.outcome, 0) + 1
    misses = [c.summary() for c in cases if c.outcome.startswith("miss")]
    kubectl_misses = [k for k in kubectl if not (k["refused"] and k["named"])]
    broken = _broken(components(stack))
    new_id, new_error = start_kernel(stack, 7, timeout=120)
    held = kernel_holds(stack, base["kernel_id"], base["value"])
    if new_id:
        base["more_kernels"].append(new_id)
    _fuzz_crds.clean_up(stack.sandbox, namespace)
    left = wait_orphans(stack, namespace, keep_roles=("crd-author",))
    problems = []
    if misses:
        shown = ", ".join(f"{m['kind']} {m['path']} ({m['mutation']}: {m['outcome']})"
                          for m in misses[:8])  # fmt: skip
        problems.append(f"{len(misses)} cases not answered naming the field: {shown}")
    if kubectl_misses:
        problems.append(f"kubectl: {len(kubectl_misses)} of {len(kubectl)} not refused naming "
                        f"the field: {kubectl_misses[:2]}")  # fmt: skip
    if new_error:
        problems.append(f"a kernel started after the fuzzing failed: {new_error}")
    if held:
        problems.append(f"the first kernel lost its state: {held}")
    accepted = sum(1 for c in cases if 200 <= c.http_status < 300)
    unbounded = outcomes.get("accepted-unbounded", 0)
    return row(
        id="hostile-crds",
        scenario="Hostile input",
        stack="elastic-jupyter",
        load="every field of the 5 CRDs, one bad value per object, by a tenant",
        fault=(
            "wrong types, values past minimum/maximum/maxLength/minLength/pattern/enum, int64 "
            f"overflow, unknown fields, {sizes['huge'] // 1000} kB strings; "
            f"{len(kubectl)} also with kubectl apply"
        ),
        requested=len(cases),
        started=accepted,
        usable_after=(0 if held else 1) + (0 if new_error else 1),
        lost=len(broken),
        orphans=left,
        recover_seconds=None,
        met=not problems and not broken and not any(left.values()),
        notes=(
            "; ".join(problems + broken)
            if problems or broken
            else (
                f"{outcomes.get('refused-named', 0)} refused by the API naming the field, "
                f"{outcomes.get('pruned-warned', 0)} unknown fields dropped with a warning "
                f"naming them, {outcomes.get('reported', 0)} accepted then reported in status "
                f"naming the field, {unbounded} huge strings accepted where the schema sets no "
                "bound (their kernels and notebooks stay unscheduled here, so a later failure "
                f"is untested); kubectl: {len(kubectl)} of {len(kubectl)} refused naming the "
                "field; operator still started a kernel"
            )
        ),
        issue=None,
        size=base["size"],
        command=command_of(SCRIPT, base["size"]),
        x_seed=base["seed"],
        x_outcomes=outcomes,
        x_misses=misses[:50],
        x_kubectl=kubectl,
        x_unbounded=sorted(
            {f"{c.kind} {c.path}" for c in cases if c.outcome == "accepted-unbounded"}
        ),
    )


@contextlib.contextmanager
def started_stack(workdir: Path) -> Iterator[Stack]:
    """A running stack; on a crowded machine EG may miss ``Stack``'s 60 s boot once: retry."""
    for attempt in range(3):
        try:
            stack = Stack(workdir, pods=20, gateway_args=GATEWAY_ARGS).__enter__()
            break
        except RuntimeError as err:
            if "did not start" not in str(err) or attempt == 2:
                raise
            print(f"retrying the stack: {err}", file=sys.stderr)
    try:
        yield stack
    finally:
        stack.close()


def run(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    sizes = SIZES[args.size]
    rng = random.Random(args.seed)
    with started_stack(workdir) as stack:
        rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{stack.namespace}/roles"
        # the gateway's own Role (made with its kubeconfig) is no kernel's orphan
        own_roles = tuple(
            r["metadata"]["name"] for r in stack.sandbox.request("GET", rbac)["items"]
        )
        value = 4242
        kernel_id, error = start_kernel(stack, value)
        if error:
            raise RuntimeError(f"the first kernel did not start: {error}")
        base: dict[str, Any] = {"kernel_id": kernel_id, "value": value, "size": args.size}
        base.update(seed=args.seed, more_kernels=[])
        rows = [comm_port_row(stack, sizes, rng, base)]
        rows.append(response_row(stack, sizes, rng, base))
        rows.append(crd_row(stack, sizes, rng, base))
        # Shut every kernel down through the gateway: nothing may stay behind.
        errors = stack.delete_kernels([kernel_id, *base["more_kernels"]])
        left = wait_orphans(stack, stack.namespace, keep_roles=own_roles)
        for item in rows[:2]:
            item["orphans"] = left
            if any(left.values()) or errors:
                item["met"] = False
                item["notes"] += f"; left behind after shutdown: {left} {errors[:2]}"
        return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--log-dir", type=Path, help="keep the gateway and operator logs here")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []

    def go(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
        rows.extend(run(a, tmp))
        return {}

    run_keeping_logs(go, args, "ej-hostile-")
    write_rows(rows, args.out)
    return 0 if all(r["met"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
