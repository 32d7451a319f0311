"""Shared machinery of the process/node/pod fault scenarios (``bench/faults_{operator,gateway,
node,pods}.py``): the reliability-table row (``/work``'s FAULTS_SCHEMA: one JSON file per row),
the elastic example on a private sandbox with the real operator, gateway Deployment and notebook
server, concurrent starts through the notebook server, and the leftovers count.

The user side is ``elastic_jupyter.harness`` (``NotebookClient``, ``KernelChannel``,
``UserPath``): the same client the e2e tests and ``make demo`` use.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import _faults_rows

from elastic_jupyter import crds, harness
from elastic_jupyter.sandbox.cluster import SandboxCluster

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
DEFAULT_OUT = _faults_rows.DEFAULT_OUT
STACK = "elastic-jupyter"


def demo() -> ModuleType:
    """The notebook user's client and steps (``elastic_jupyter.harness``), as ``make demo`` and
    the end-to-end tests use them."""
    return harness


def parse_args(script: str, argv: list[str] | None, doc: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"bench/{script}", description=doc)
    parser.add_argument("--size", choices=("small", "full"), default="full")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs here")
    args = parser.parse_args(argv)
    args.command = " ".join([".venv/bin/python", f"bench/{script}", "--size", args.size])
    return args


def finish(out: Path, row: dict[str, Any], workdir: Path) -> int:
    """Write the row (:func:`_faults_rows.write_row`), show it without its evidence, say where
    the logs are; return the script's exit status (0: the row is met)."""
    path = _faults_rows.write_row(out, row)
    print(json.dumps({k: v for k, v in row.items() if k != "details"}, indent=2))
    print(f"wrote {path}; logs in {workdir}")
    return 0 if row["met"] else 1


def make_row(
    *,
    row_id: str,
    scenario: str,
    load: str,
    fault: str,
    requested: int,
    started: int,
    usable_after: int,
    lost: int,
    orphans: dict[str, int],
    recover_seconds: float | None,
    met: bool,
    notes: str,
    size: str,
    command: str,
    issue: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A row exactly as the schema lists its keys (``details``: evidence, not rendered)."""
    row: dict[str, Any] = {
        "id": row_id,
        "scenario": scenario,
        "stack": STACK,
        "load": load,
        "fault": fault,
        "requested": requested,
        "started": started,
        "usable_after": usable_after,
        "lost": lost,
        "orphans": {k: int(orphans.get(k, 0)) for k in ORPHAN_KINDS},
        "recover_seconds": None if recover_seconds is None else round(recover_seconds, 1),
        "met": met,
        "notes": notes,
        "issue": issue,
        "size": size,
        "command": command,
    }
    if details is not None:
        row["details"] = details
    return row


ORPHAN_KINDS = ("jupyterkernels", "pods", "secrets", "roles")


def _owner_exists(kubectl: Any, ref: dict[str, Any], cache: dict[tuple[str, str], bool]) -> bool:
    key = (str(ref.get("kind")), str(ref.get("name")))
    if key not in cache:
        kind = {
            crds.JUPYTER_KERNEL.kind: crds.JUPYTER_KERNEL.plural,
            crds.JUPYTER_GATEWAY.kind: crds.JUPYTER_GATEWAY.plural,
            crds.JUPYTER_NOTEBOOK.kind: crds.JUPYTER_NOTEBOOK.plural,
        }.get(key[0], key[0].lower())
        obj = kubectl.get(kind, key[1])
        cache[key] = obj is not None and obj["metadata"].get("uid") == ref.get("uid")
    return cache[key]


def leftovers(kubectl: Any, live_kernel_ids: set[str]) -> dict[str, Any]:
    """What is left in the namespace that no live kernel accounts for.

    * JupyterKernels (not being deleted) whose kernel id is not a live kernel;
    * kernel pods (not being deleted) whose kernel id is not live or whose JupyterKernel is gone;
    * Secrets and Roles whose owner (by uid) no longer exists: garbage collection left them.
    """
    cache: dict[tuple[str, str], bool] = {}
    jks = [j for j in kubectl.items("jk") if not j["metadata"].get("deletionTimestamp")]
    stray_jks = [
        j["metadata"]["name"]
        for j in jks
        if j["metadata"].get("labels", {}).get(crds.LABEL_KERNEL_ID) not in live_kernel_ids
    ]
    selector = f"{crds.LABEL_COMPONENT}={crds.COMPONENT_KERNEL}"
    pods = [p for p in kubectl.items("pods", "-l", selector)]
    stray_pods = []
    for pod in pods:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        refs = meta.get("ownerReferences") or []
        kernel_id = meta.get("labels", {}).get(crds.LABEL_KERNEL_ID)
        if kernel_id not in live_kernel_ids or not all(
            _owner_exists(kubectl, r, cache) for r in refs
        ):
            stray_pods.append(meta["name"])
    stray: dict[str, list[str]] = {"secrets": [], "roles": []}
    for kind in ("secrets", "roles"):
        for obj in kubectl.items(kind):
            refs = obj["metadata"].get("ownerReferences") or []
            if refs and not all(_owner_exists(kubectl, r, cache) for r in refs):
                stray[kind].append(obj["metadata"]["name"])
    names = {
        "jupyterkernels": stray_jks,
        "pods": stray_pods,
        "secrets": stray["secrets"],
        "roles": stray["roles"],
    }
    return {"counts": {k: len(v) for k, v in names.items()}, "names": names}


@dataclass
class SessionStart:
    """One ``POST /api/sessions`` on the notebook server, as JupyterLab sends it."""

    path: str
    ok: bool = False
    kernel_id: str = ""
    session_id: str = ""
    status: int = 0
    error: str = ""
    seconds: float = 0.0


def start_one(client: Any, kernel_name: str, path: str) -> SessionStart:
    rec = SessionStart(path=path)
    began = time.monotonic()
    try:
        session = client.start_session(path, kernel_name)
        rec.ok = True
        rec.kernel_id = str(session["kernel"]["id"])
        rec.session_id = str(session["id"])
    except Exception as err:  # a failed start is a result
        rec.status = int(getattr(err, "status", 0) or 0)
        rec.error = str(getattr(err, "message", "") or f"{type(err).__name__}: {err}")[:600]
    rec.seconds = round(time.monotonic() - began, 2)
    return rec


def start_sessions(
    client: Any, kernel_name: str, count: int, prefix: str
) -> tuple[concurrent.futures.ThreadPoolExecutor, list[concurrent.futures.Future[SessionStart]]]:
    """Send ``count`` session starts at once; returns the pool and one future per start."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(count, 1))
    futures = [
        pool.submit(
            start_one, client, kernel_name, f"{prefix}-{i:03d}-{uuid.uuid4().hex[:4]}.ipynb"
        )
        for i in range(count)
    ]
    return pool, futures


def readable(error: str) -> bool:
    """Whether a failed start's message tells the user something: not empty, no traceback,
    not a bare status line."""
    text = error.strip()
    if not text or "Traceback" in text:
        return False
    bare = {"Internal Server Error", "HTTP 500: Internal Server Error", "Bad Gateway"}
    return text not in bare and len(text) >= 20


def execute_ok(client: Any, kernel_id: str, code: str, timeout_s: float = 30) -> str | None:
    """Run ``code`` through the notebook server's websocket; its stdout, or None if it failed."""
    with contextlib.suppress(Exception):
        with client.channel(kernel_id) as channel:
            result = channel.execute(code, timeout_s)
        if result.status == "ok":
            return str(result.stdout)
    return None


def wait_usable(
    client: Any, kernel_ids: list[str], timeout_s: float, code: str = "print(6 * 7)"
) -> dict[str, float | None]:
    """Per kernel: seconds until ``code`` ran through the notebook server (None: never)."""
    began = time.monotonic()
    deadline = began + timeout_s

    def one(kernel_id: str) -> float | None:
        while time.monotonic() < deadline:
            if execute_ok(client, kernel_id, code, timeout_s=20) is not None:
                return time.monotonic() - began
            time.sleep(0.5)
        return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(len(kernel_ids), 1)) as pool:
        return dict(zip(kernel_ids, pool.map(one, kernel_ids), strict=True))


def notebook_kernel_ids(client: Any) -> set[str]:
    """Kernel ids the notebook server's sessions point at (``GET /api/sessions``)."""
    sessions = client.request("GET", "/api/sessions") or []
    return {str(s["kernel"]["id"]) for s in sessions if s.get("kernel")}


@dataclass
class ExampleStack:
    """A private sandbox, the real operator (its own ServiceAccount), the elastic example
    applied (gateway Deployment + notebook server Deployment) in a fresh namespace.

    ``gateway_env`` is added to the JupyterGateway's ``spec.env`` before it starts.
    """

    workdir: Path
    node_cpu: str = "64"
    node_memory: str = "256Gi"
    gateway_env: dict[str, str] = field(default_factory=dict)
    namespace: str = field(default_factory=lambda: f"faults-{uuid.uuid4().hex[:6]}")
    cluster: Any = None
    kubectl: Any = None
    path: Any = None
    operator: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ExampleStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cluster = SandboxCluster(
            apply_crds=True, node_cpu=self.node_cpu, node_memory=self.node_memory, node_gpus=0
        )
        self.cluster.start()
        try:
            self._up()
        except BaseException:
            self.close()
            raise
        return self

    def _up(self) -> None:
        d = demo()
        self.cluster.create_namespace(self.namespace)
        self.kubectl = d.Kubectl(str(self.cluster.kubeconfig), self.namespace)
        self.start_operator()
        self.path = d.UserPath(self.kubectl, say=lambda _: None, timeout_s=180)
        if self.gateway_env:
            manifests = self.workdir / "example"
            manifests.mkdir(exist_ok=True)
            for src in (REPO / "examples" / "elastic").glob("*.yaml"):
                text = src.read_text()
                if "kind: JupyterGateway" in text:
                    env = "".join(
                        f"    - name: {k}\n      value: {json.dumps(v)}\n"
                        for k, v in self.gateway_env.items()
                    )
                    text = text.rstrip("\n") + "\n  env:\n" + env
                (manifests / src.name).write_text(text)
            self.path.apply_example(manifests)
        else:
            self.path.apply_example()

    @property
    def operator_log(self) -> Path:
        return self.workdir / "operator.log"

    def start_operator(self) -> None:
        d = demo()
        command = [str(BIN / "elastic-jupyter-operator"), "--namespace", self.namespace]
        command += ["--liveness", "none", "--metrics-port", "0"]
        with self.operator_log.open("ab") as log:
            self.operator = subprocess.Popen(
                command,
                env=d.operator_env(self.cluster),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill_operator(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            os.killpg(self.operator.pid, signal.SIGKILL)
            self.operator.wait()

    def close(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            os.killpg(self.operator.pid, signal.SIGTERM)
            try:
                self.operator.wait(20)
            except subprocess.TimeoutExpired:
                self.kill_operator()
        if self.cluster is not None:
            self.cluster.stop()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the parts a fault hits --

    @property
    def client(self) -> Any:
        return self.path.client

    @property
    def kernel_name(self) -> str:
        return str(self.path.kernel_name)

    def gateway_pods(self) -> list[dict[str, Any]]:
        selector = f"{crds.LABEL_COMPONENT}={crds.COMPONENT_GATEWAY}"
        pods: list[dict[str, Any]] = self.kubectl.items("pods", "-l", selector)
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def kernel_pods(self) -> list[dict[str, Any]]:
        selector = f"{crds.LABEL_COMPONENT}={crds.COMPONENT_KERNEL}"
        pods: list[dict[str, Any]] = self.kubectl.items("pods", "-l", selector)
        return pods

    def node_action(self, node: str, action: str) -> dict[str, Any]:
        """``POST /sandbox/nodes/<node>/<action>`` (crash, start): see sandbox/nodes.py."""
        result: dict[str, Any] = self.cluster.request("POST", f"/sandbox/nodes/{node}/{action}")
        return result


@dataclass
class Watched:
    """One kernel the user has open: its websocket and what it showed after the fault."""

    kernel_id: str
    channel: Any
    old_jk: str = ""
    restarting_s: float | None = None
    messages: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    jk_reason: str = ""


def open_kernels(stack: ExampleStack, count: int, prefix: str) -> tuple[list[Any], list[Watched]]:
    """Open ``count`` notebooks at once, set ``x`` in each, keep their websockets open."""
    pool, futures = start_sessions(stack.client, stack.kernel_name, count, prefix)
    starts = [f.result() for f in futures]
    pool.shutdown()
    watched = []
    for i, start in enumerate(s for s in starts if s.ok):
        channel = stack.client.channel(start.kernel_id)
        result = channel.execute(f"x = {i}", 120)
        if result.status != "ok":
            raise RuntimeError(f"kernel {start.kernel_id}: {result.ename} {result.evalue}")
        jks = stack.path.kernel_objects(start.kernel_id)
        watched.append(Watched(start.kernel_id, channel, jks[0]["metadata"]["name"] if jks else ""))
    return starts, watched


def wait_restarting(watched: list[Watched], began: float, timeout_s: float) -> None:
    """Read every websocket until it shows status ``restarting`` (records every message)."""

    def one(w: Watched) -> None:
        deadline = began + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                message = w.channel.receive(min(1.0, max(0.05, deadline - time.monotonic())))
                if message:
                    w.messages.append(json.dumps(message))
            if "restarting" in w.channel.states:
                w.restarting_s = time.monotonic() - began
                # what arrives right after the restart (a reason message would be here)
                end = time.monotonic() + 2
                while time.monotonic() < end:
                    with contextlib.suppress(Exception):
                        message = w.channel.receive(0.2)
                        if message:
                            w.messages.append(json.dumps(message))
                return

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(len(watched), 1)) as pool:
        list(pool.map(one, watched))


def jk_failure_reason(stack: ExampleStack, name: str) -> str:
    """``reason: message`` the operator recorded for a JupyterKernel (status or Warning Event)."""
    jk = stack.kubectl.get("jk", name)
    status = (jk or {}).get("status") or {}
    if status.get("phase") == crds.PHASE_FAILED and status.get("reason"):
        return f"{status.get('reason')}: {status.get('message', '')}".strip()
    events = stack.kubectl.items("events", "--field-selector", f"involvedObject.name={name}")
    warnings = [e for e in events if e.get("type") == "Warning"]
    if warnings:
        return f"{warnings[-1].get('reason')}: {warnings[-1].get('message', '')}".strip()
    return ""


def reason_shown(w: Watched, reason: str) -> bool:
    """Whether the notebook user could read ``reason`` (the JupyterKernel's failure reason,
    e.g. PodDeleted) through the notebook server: on the kernel's websocket or in its model."""
    token = reason.split(":", 1)[0].strip()
    if not token:
        return False
    texts = [*w.messages, json.dumps(w.model)]
    return any(token in text for text in texts)


def one_jk_each(stack: ExampleStack, kernel_ids: list[str]) -> dict[str, int]:
    """Kernel id -> how many live (not deleting) JupyterKernels it has."""
    counts = dict.fromkeys(kernel_ids, 0)
    for jk in stack.kubectl.items("jk"):
        if jk["metadata"].get("deletionTimestamp"):
            continue
        kid = jk["metadata"].get("labels", {}).get(crds.LABEL_KERNEL_ID)
        if kid in counts:
            counts[kid] += 1
    return counts


def after_restart_fault(
    stack: ExampleStack, watched: list[Watched], began: float, timeout_s: float
) -> dict[str, Any]:
    """After a fault that kills kernels: did each restart, show why, come back usable, alone?"""
    wait_restarting(watched, began, timeout_s)
    for w in watched:
        w.jk_reason = jk_failure_reason(stack, w.old_jk) if w.old_jk else ""
        with contextlib.suppress(Exception):
            w.model = stack.client.kernel(w.kernel_id) or {}
        with contextlib.suppress(Exception):
            w.channel.close()
    ids = [w.kernel_id for w in watched]
    usable_began = time.monotonic() - began
    usable = wait_usable(stack.client, ids, timeout_s)
    fresh = {
        kid: (execute_ok(stack.client, kid, "print(globals().get('x'))") or "").strip()
        for kid, t in usable.items()
        if t is not None
    }
    times = [t for t in usable.values() if t is not None]
    recover_s = usable_began + max(times) if times and len(times) == len(ids) else None
    time.sleep(5)  # let deletions of the replaced JupyterKernels and their pods settle
    counts = one_jk_each(stack, ids)
    left = leftovers(stack.kubectl, notebook_kernel_ids(stack.client))
    deadline = time.monotonic() + 60
    while any(left["counts"].values()) and time.monotonic() < deadline:
        time.sleep(2)
        left = leftovers(stack.kubectl, notebook_kernel_ids(stack.client))
    return {
        "restarting": sum(1 for w in watched if w.restarting_s is not None),
        "reason_recorded": sum(1 for w in watched if w.jk_reason),
        "reason_shown": sum(1 for w in watched if w.jk_reason and reason_shown(w, w.jk_reason)),
        "usable": len(times),
        "fresh": sum(1 for v in fresh.values() if v == "None"),
        "one_jk_each": all(c == 1 for c in counts.values()),
        "jk_counts": counts,
        "leftovers": left,
        "recover_s": recover_s,
        "restarting_s": [w.restarting_s for w in watched],
        "reasons": sorted(w.jk_reason for w in watched),
        "sample_messages": watched[0].messages[-6:] if watched else [],
        "sample_model": watched[0].model if watched else {},
    }
