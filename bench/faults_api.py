"""API faults: the reliability table's rows for a misbehaving Kubernetes API server.

For each fault (``--only`` picks some) one fresh stack: the sandbox cluster, the real operator
(``elastic-jupyter-operator``), and the elastic example applied with kubectl, so the operator
runs the Enterprise Gateway and the notebook server (jupyter_server 2, ``--gateway-url``) as
pods. Everything a user does goes through the notebook server, as JupyterLab calls it:
``POST /api/sessions``, the kernel's websocket, ``execute_request``, reading iopub until idle.

1. ``idle`` kernels are started and each sets ``x``; their websockets stay open (open notebook
   tabs: the gateway culls no connected kernel), and they do nothing more.
2. The fault is switched on (``POST /sandbox/faults`` or ``POST /sandbox/restart``, see
   ``sandbox/faults.py``) for the product: operator, gateway, notebook server. The sandbox's own
   kubelet, scheduler and controllers and this script's observer are exempt, so the row
   measures our code, not the sandbox's.
3. Under it, ``starts`` kernels are started at once (10 at a time) and each sets ``x``, while
   the window (``window`` seconds) runs.
4. With the fault still on, every kernel is asked ``print(x)``: a kernel whose ``x`` is gone was
   lost or restarted behind the user's back; all the while a watch records every pod of every
   kernel id (two pods for one kernel id: a duplicate, or a restart after a false "dead").
5. The websockets close and, the fault still on, the gateway must cull every kernel (idle
   timeout ``cull`` seconds); then the fault goes off and what is left is counted as orphans:
   JupyterKernels, kernel pods, kernel Secrets, kernel Roles.

Writes one row per fault to ``--out`` (``bench/results/faults/<id>.json``, the contract of
``bench/_faults_rows.py``). Run: ``.venv/bin/python bench/faults_api.py --size full``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import shutil
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from _faults_rows import DEFAULT_OUT, write_row

from elastic_jupyter import crds, harness

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
EXAMPLE = REPO / "examples" / "elastic"
OBSERVER = "faults-observer"
#: Never faulted: the sandbox's own components (a real kubelet retries; the sandbox's is not the
#: product under test), kubectl (setup only) and this script's observer.
EXEMPT = [
    "sandbox-kubelet",
    "sandbox-scheduler",
    "sandbox-controller-manager",
    "sandbox-service-controller",
    "sandbox-apply",
    "kubectl",
    OBSERVER,
]


@dataclass(frozen=True)
class Fault:
    """One row's fault: what the table says, and the sandbox switch that makes it."""

    id: str
    text: str
    faults: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0  # API server restarts during the window (state kept)
    down_seconds: float = 5.0
    #: At small size a few kernels make few requests: a 5 % fault might never fire. These
    #: rates replace the full ones there, and the row's fault text says so.
    small: dict[str, Any] = field(default_factory=dict)
    small_text: str = ""

    def switch(self, size: str) -> dict[str, Any]:
        """The ``POST /sandbox/faults`` body at this size."""
        return self.faults | (self.small if size == "small" else {})

    def described(self, size: str) -> str:
        return self.small_text if size == "small" and self.small_text else self.text


FAULTS = [
    Fault(
        "api-5pct-5xx",
        "5 % of API requests answer 500 or 503",
        {"errorRate": 0.05, "errorCodes": [500, 503]},
        small={"errorRate": 0.25},
        small_text="25 % of API requests answer 500 or 503 (5 % at full size)",
    ),
    Fault(
        "api-409-writes",
        "20 % of updates (PUT, PATCH) answer 409 Conflict",
        {"conflictRate": 0.2},
        small={"conflictRate": 0.5},
        small_text="50 % of updates (PUT, PATCH) answer 409 Conflict (20 % at full size)",
    ),
    Fault("api-latency-1s", "1 s added to every API request", {"latencySeconds": 1.0}),
    Fault("api-watch-drop-10s", "every watch dropped after 10 s", {"dropWatchesAfterSeconds": 10}),
    Fault(
        "api-410-resume",
        "410 Gone on every watch resume (watches dropped every 10 s)",
        {"goneOnResume": True, "dropWatchesAfterSeconds": 10},
    ),
    Fault("api-restart", "API server restarted twice, state kept (down 5 s each)", restarts=2),
]
SIZES = {
    "small": {"starts": 3, "idle": 3, "window": 25.0, "cull": 15, "cull_interval": 5},
    "full": {"starts": 50, "idle": 50, "window": 120.0, "cull": 30, "cull_interval": 10},
}


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def demo_module() -> Any:
    """The notebook client and the user's steps (``elastic_jupyter.harness``, shared with
    ``make demo`` and the end-to-end tests)."""
    return harness


class Observer:
    """The on-call engineer's view: admin requests never faulted, and a pod watch that records
    every pod uid of every kernel id for the whole run."""

    def __init__(self, cluster: Any, namespace: str) -> None:
        self.url = cluster.url
        self.headers = dict(cluster.auth_headers) | {"User-Agent": f"{OBSERVER}/1"}
        self.namespace = namespace
        self.pods: dict[str, set[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = self.headers | ({"Content-Type": "application/json"} if data else {})
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw.strip() else None

    def request_retrying(self, method: str, path: str, body: Any = None) -> Any:
        """The same, through an API server restart (connection refused for a while)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                return self.request(method, path, body)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def healthy(self) -> bool:
        """``GET /healthz`` answers 200 (the API server is listening)."""
        req = urllib.request.Request(self.url + "/healthz", headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _note(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        kernel_id = (meta.get("labels") or {}).get(crds.LABEL_KERNEL_ID)
        if kernel_id:
            self.pods.setdefault(str(kernel_id), set()).add(str(meta.get("uid")))

    def _watch(self) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        while not self._stop.is_set():
            try:
                listed = self.request("GET", path)
                for pod in listed.get("items") or []:
                    self._note(pod)
                rv = listed["metadata"]["resourceVersion"]
                query = f"?watch=1&resourceVersion={rv}&timeoutSeconds=30"
                req = urllib.request.Request(self.url + path + query, headers=self.headers)
                with urllib.request.urlopen(req, timeout=60) as resp:
                    for line in resp:
                        if self._stop.is_set():
                            return
                        if line.strip():
                            event = json.loads(line)
                            if event.get("type") in ("ADDED", "MODIFIED"):
                                self._note(event.get("object") or {})
            except Exception:  # a restart cuts the watch: list again
                time.sleep(0.5)

    def restarted_pods(self) -> list[str]:
        """Pods of the namespace whose containers restarted (the gateway, the notebook)."""
        listed = self.request_retrying("GET", f"/api/v1/namespaces/{self.namespace}/pods")
        return sorted(
            str(pod["metadata"]["name"])
            for pod in listed.get("items") or []
            if any(
                int(c.get("restartCount") or 0) > 0
                for c in (pod.get("status") or {}).get("containerStatuses") or []
            )
        )

    def errors_by_agent(self) -> dict[str, int]:
        """Error answers (409, 410, 429, 5xx) per user agent in the request log: who the faults
        hit (the log holds the last 10000 requests; real conflicts count too)."""
        log = self.request_retrying("GET", "/sandbox/requests?limit=10000")["items"]
        counts: dict[str, int] = {}
        for rec in log:
            if rec["status"] in (409, 410, 429) or rec["status"] >= 500:
                counts[rec["userAgent"]] = counts.get(rec["userAgent"], 0) + 1
        return counts

    def kernel_objects(self) -> dict[str, int]:
        """What is left of kernels in the namespace, per kind."""
        ns = self.namespace
        group = f"/apis/{crds.GROUP}/{crds.VERSION}"
        kernels = self.request_retrying("GET", f"{group}/namespaces/{ns}/jupyterkernels")
        pods = self.request_retrying(
            "GET", f"/api/v1/namespaces/{ns}/pods?labelSelector={crds.LABEL_KERNEL_ID}"
        )
        secrets = self.request_retrying("GET", f"/api/v1/namespaces/{ns}/secrets")
        roles = self.request_retrying(
            "GET", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"
        )
        return {
            "jupyterkernels": len(kernels.get("items") or []),
            "pods": len(pods.get("items") or []),
            "secrets": sum(1 for s in secrets.get("items") or [] if _of_kernel(s)),
            "roles": sum(1 for r in roles.get("items") or [] if _of_kernel(r)),
        }


def _of_kernel(obj: dict[str, Any]) -> bool:
    """A kernel's object: labelled with a kernel, or owned by a JupyterKernel."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    if crds.LABEL_KERNEL in labels or crds.LABEL_KERNEL_ID in labels:
        return True
    return any(ref.get("kind") == "JupyterKernel" for ref in meta.get("ownerReferences") or [])


@dataclass
class Kernel:
    """One user kernel: its notebook, id, open websocket and the ``x`` it holds."""

    path: str
    value: int
    kernel_id: str = ""
    channel: Any = None
    error: str = ""  # the start failed
    check_error: str = ""  # print(x) afterwards failed
    reconnected: str = ""  # why its websocket had to be opened again (JupyterLab does that)
    usable_after: bool = False
    states: list[str] = field(default_factory=list)
    #: held while a step uses the websocket; the background reader skips it meanwhile
    lock: threading.Lock = field(default_factory=threading.Lock)


def start_kernel(demo: Any, client: Any, kernel_name: str, k: Kernel) -> Kernel:
    """Open a notebook (``POST /api/sessions``), its websocket, and set ``x``; never raises."""
    with k.lock:
        return _start_kernel(client, kernel_name, k)


def _start_kernel(client: Any, kernel_name: str, k: Kernel) -> Kernel:
    try:
        session = client.start_session(k.path, kernel_name)
        k.kernel_id = str(session["kernel"]["id"])
        k.channel = client.channel(k.kernel_id)
        result = k.channel.execute(f"x = {k.value}; print(x)", 180)
        if result.status != "ok" or result.stdout.strip() != str(k.value):
            k.error = f"x = {k.value}: {result.status} {result.ename} {result.stdout!r}"
    except Exception as err:
        k.error = f"{type(err).__name__}: {err}"[:300]
    return k


def check_kernel(client: Any, k: Kernel) -> Kernel:
    """``print(x)`` over the kernel's websocket: still the same kernel? A websocket that was
    closed meanwhile is opened again once, as JupyterLab reconnects (and counted)."""
    with k.lock:
        return _check_kernel(client, k)


def _check_kernel(client: Any, k: Kernel) -> Kernel:
    if k.channel is None or k.error:
        return k
    for attempt in range(2):
        try:
            result = k.channel.execute("print(x)", 60)
            k.usable_after = result.status == "ok" and result.stdout.strip() == str(k.value)
            if not k.usable_after:
                k.check_error = f"print(x): {result.status} {result.ename} {result.stdout!r}"
            k.channel.receive(0.05)
            k.states = list(k.channel.states)
            return k
        except Exception as err:
            k.check_error = f"print(x): {type(err).__name__}: {err}"[:300]
            if attempt:
                return k
            k.reconnected = k.check_error
            states = list(k.channel.states)
            with contextlib.suppress(Exception):
                k.channel.close()
            try:
                k.channel = client.channel(k.kernel_id)
                k.channel.states[:0] = states
            except Exception as again:
                k.check_error = f"reconnect: {type(again).__name__}: {again}"[:300]
                return k
    return k


def keep_reading(kernels: list[Kernel], stop: threading.Event) -> None:
    """Read what arrives on the open websockets, as a browser tab does: it answers the notebook
    server's websocket pings (an unread websocket-client never does, and the server closes
    it) and records every status a kernel broadcasts (a "restarting" is a false death)."""
    while not stop.is_set():
        for k in list(kernels):
            if k.channel is None or stop.is_set() or not k.lock.acquire(blocking=False):
                continue
            try:
                for _ in range(50):
                    if k.channel is None or k.channel.receive(0.01) is None:
                        break
            except Exception:  # a closed websocket: the check reconnects it
                pass
            finally:
                k.lock.release()
        stop.wait(2.0)


def write_example(directory: Path, cull: int, interval: int) -> Path:
    """The elastic example, its gateway culling after ``cull`` idle seconds."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in EXAMPLE.glob("*.y*ml"):
        docs = list(yaml.safe_load_all(source.read_text()))
        for doc in docs:
            if doc and doc.get("kind") == crds.JUPYTER_GATEWAY.kind:
                doc["spec"]["cullIdleTimeout"] = cull
                doc["spec"]["cullInterval"] = interval
        (directory / source.name).write_text(yaml.safe_dump_all(docs))
    return directory


def restarter(obs: Observer, fault: Fault, window: float, backs: list[float]) -> None:
    """Restart the API server ``fault.restarts`` times: the first while the starts run, the
    others spread over the window."""
    began = time.monotonic()
    for i in range(fault.restarts):
        at = 2.0 if i == 0 else window * i / fault.restarts
        time.sleep(max(0.0, began + at - time.monotonic()))
        with contextlib.suppress(Exception):
            obs.request("POST", "/sandbox/restart", {"downSeconds": fault.down_seconds})
        time.sleep(fault.down_seconds + 0.2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not obs.healthy():
            time.sleep(0.1)
        backs.append(time.time())


def recovered_after(obs: Observer, backs: list[float]) -> float | None:
    """Seconds from the API server back until the operator and the gateway both got a 2xx."""
    if not backs:
        return None
    log = obs.request("GET", "/sandbox/requests?limit=10000")["items"]
    worst = 0.0
    for back in backs:
        for agents in (("kopf", "elastic-jupyter-operator"), ("elastic-jupyter-gateway",)):
            oks = [
                r["time"]
                for r in log
                if r["time"] >= back and r["status"] < 400 and r["userAgent"] in agents
            ]
            if not oks:
                return None
            worst = max(worst, min(oks) - back)
    return round(worst, 1)


def run_fault(fault: Fault, size: str, workdir: Path, command: str) -> dict[str, Any]:
    """One row: a fresh stack, the fault, the load, the checks."""
    from elastic_jupyter.sandbox.cluster import SandboxCluster

    sz = SIZES[size]
    n_idle, n_starts, window = int(sz["idle"]), int(sz["starts"]), float(sz["window"])
    demo = demo_module()
    namespace = f"faults-{uuid.uuid4().hex[:6]}"
    extra = ["--node-resource", f"pods={n_idle + n_starts + 40}"]
    notes: list[str] = []
    with SandboxCluster(node_cpu="512", node_memory="2Ti", extra_args=extra) as cluster:
        cluster.create_namespace(namespace)
        kubectl = demo.Kubectl(str(cluster.kubeconfig), namespace)
        obs = Observer(cluster, namespace)
        log = workdir / f"{fault.id}-operator.log"
        with demo.operator_process(
            demo.operator_env(cluster), log, "--namespace", namespace, *demo.NO_PORTS
        ):
            path = demo.UserPath(kubectl, say=lambda _t: None, timeout_s=240)
            path.apply_example(write_example(workdir / fault.id, sz["cull"], sz["cull_interval"]))
            client = demo.NotebookClient(path.client.base_url, path.client.token, timeout_s=300)
            obs.start()
            pool = concurrent.futures.ThreadPoolExecutor(max_workers=10)
            say(f"{fault.id}: starting {n_idle} idle kernels")
            idle = [Kernel(f"idle-{i}.ipynb", i) for i in range(n_idle)]
            fresh = [Kernel(f"start-{i}.ipynb", 1000 + i) for i in range(n_starts)]
            stop_reading = threading.Event()
            reader = threading.Thread(
                target=keep_reading, args=(idle + fresh, stop_reading), daemon=True
            )
            reader.start()
            idle = list(pool.map(lambda k: start_kernel(demo, client, path.kernel_name, k), idle))
            bad_idle = [k.error for k in idle if k.error]
            if bad_idle:
                notes.append(f"{len(bad_idle)} idle kernels did not start before the fault")
            say(f"{fault.id}: fault on: {fault.described(size)}")
            obs.request(
                "POST", "/sandbox/faults", fault.switch(size) | {"exemptUserAgents": EXEMPT}
            )
            began = time.monotonic()
            backs: list[float] = []
            restarts = threading.Thread(
                target=restarter, args=(obs, fault, window, backs), daemon=True
            )
            restarts.start()
            fresh = list(pool.map(lambda k: start_kernel(demo, client, path.kernel_name, k), fresh))
            started = sum(1 for k in fresh if not k.error)
            say(f"{fault.id}: {started}/{n_starts} started; waiting out the window")
            time.sleep(max(0.0, window - (time.monotonic() - began)))
            restarts.join(120)
            everyone = [k for k in idle + fresh if k.kernel_id]
            checked = list(pool.map(lambda k: check_kernel(client, k), everyone))
            usable = sum(1 for k in checked if k.usable_after)
            say(f"{fault.id}: {usable}/{len(everyone)} usable after; closing websockets")
            stop_reading.set()
            reader.join(60)
            for k in checked:
                if k.channel is not None:
                    with contextlib.suppress(Exception):
                        k.channel.close()
            cull_deadline = time.monotonic() + sz["cull"] + sz["cull_interval"] + 120
            left = obs.kernel_objects()
            while left["jupyterkernels"] and time.monotonic() < cull_deadline:
                time.sleep(2)
                left = obs.kernel_objects()
            culled = left["jupyterkernels"] == 0
            injected = obs.request_retrying("GET", "/sandbox/faults").get("injected") or {}
            errors_by_agent = obs.errors_by_agent()
            obs.request_retrying("POST", "/sandbox/faults", {})
            time.sleep(10)  # the grace period: deletions already asked for finish
            orphans = obs.kernel_objects()
            restarted_pods = obs.restarted_pods()
            recover = recovered_after(obs, backs) if fault.restarts else None
            obs.stop()
            pool.shutdown(wait=False, cancel_futures=True)
    ids = {k.kernel_id for k in everyone}
    duplicates = sorted(kid for kid, uids in obs.pods.items() if kid in ids and len(uids) > 1)
    restarted = [k for k in checked if "restarting" in k.states or "dead" in k.states]
    lost = [k for k in checked if not k.usable_after]
    start_errors = sorted({k.error for k in fresh if k.error})
    if start_errors:
        notes.append(f"{n_starts - started} starts failed: " + " | ".join(start_errors[:3]))
    if lost:
        why = sorted({k.check_error for k in lost if k.check_error})
        notes.append(
            f"{len(lost)} kernels lost their x or stopped answering: " + " | ".join(why[:3])
        )
    if duplicates:
        notes.append(f"{len(duplicates)} kernel ids had more than one pod (restarted/duplicated)")
    if restarted:
        notes.append(f"{len(restarted)} kernels reported restarting/dead on their websocket")
    reconnected = [k for k in checked if k.reconnected]
    if reconnected:
        notes.append(
            f"{len(reconnected)} websockets were closed under the fault and opened again "
            f"({reconnected[0].reconnected})"
        )
    if restarted_pods:
        notes.append("containers restarted: " + ", ".join(restarted_pods))
    if not culled:
        notes.append(f"culling did not remove every kernel under the fault: {left}")
    met = (
        started == n_starts
        and not lost
        and not duplicates
        and not restarted
        and culled
        and not any(orphans.values())
        and not bad_idle
    )
    if met:
        notes.append(
            f"all {len(everyone)} kernels kept their x; one pod each; culled under the fault"
        )
    shown = ", ".join(f"{kind}: {n}" for kind, n in sorted(injected.items())) or "none"
    notes.append(f"injected into the product's requests: {shown}")
    return {
        "id": fault.id,
        "scenario": "API faults",
        "order": FAULTS.index(fault),
        "stack": "elastic-jupyter",
        "load": f"{n_starts} starts + {n_idle} idle kernels, {window:g} s",
        "fault": fault.described(size),
        "requested": n_starts,
        "started": started,
        "usable_after": usable,
        "lost": len(lost),
        "orphans": orphans,
        "recover_seconds": recover,
        "met": met,
        "notes": "; ".join(notes),
        "issue": None,
        "size": size,
        "command": command,
        "details": {
            "duplicate_pods": len(duplicates),
            "reported_dead": len(restarted),
            "culled_under_fault": culled,
            "idle_start_errors": bad_idle[:3],
            "injected": injected,
            "errors_by_agent": errors_by_agent,
            "websockets_reopened": len(reconnected),
            "restarted_pods": restarted_pods,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", default="", help="comma-separated row ids (default: all)")
    args = parser.parse_args(argv)
    wanted = [f for f in FAULTS if not args.only or f.id in args.only.split(",")]
    if not wanted:
        parser.error(f"--only names no row; rows: {', '.join(f.id for f in FAULTS)}")
    command = " ".join([".venv/bin/python", "bench/faults_api.py", "--size", args.size])
    workdir = Path(tempfile.mkdtemp(prefix="ej-faults-api-"))
    failed = 0
    for fault in wanted:
        try:
            row = run_fault(fault, args.size, workdir, command)
        except Exception as err:  # a scenario that could not run is a row that says so
            traceback.print_exc()
            failed += 1
            row = {
                "id": fault.id,
                "scenario": "API faults",
                "stack": "elastic-jupyter",
                "load": "",
                "fault": fault.text,
                "requested": 0,
                "started": 0,
                "usable_after": 0,
                "lost": 0,
                "orphans": {},
                "recover_seconds": None,
                "met": False,
                "notes": f"the scenario did not run to the end: {type(err).__name__}: {err}"[:500],
                "issue": None,
                "size": args.size,
                "command": command,
            }
        say(f"{fault.id}: met={row['met']} {row['notes']}")
        write_row(args.out, row)
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
