"""Kernel start → first output, as JupyterLab does it: direct mode vs through the gateway vs local.

One run starts the sandbox with the real operator and one Enterprise Gateway with our process
proxy, configured as the operator configures it (sessions on the JupyterKernels, adoption;
``bench/_stack.py``), and beside it up to three jupyter_server 2 notebook servers from
``.venv-kernel``, one per kind:

* **direct**: a plain jupyter_server 2 with our kernel provisioner (``kubeflow-provisioner``,
  selected by the kernelspec's ``metadata.kernel_provisioner``, with the seed's
  ``kubeflow-launcher --RemoteProcessProxy...`` argv) and ``DirectMappingKernelManager``; its
  kubeconfig is a ServiceAccount holding only the direct-mode grants in the kernel namespace;
  the kernel runs in its own pod;
* **gateway**: jupyter_server 2 with ``--gateway-url`` in front of the Enterprise Gateway, the
  same kernel image in its own pod;
* **local**: jupyter_server 2's own local provisioner, ipykernel as the server's child: the floor.

Every start is what JupyterLab does: ``POST /api/sessions``, the kernel's websocket, a
``kernel_info_request``, one ``execute_request`` printing a marker, read until its output and
idle; then the session is deleted and the next start waits until the kernel's JupyterKernel
and pod are gone. Kinds alternate (forward, then backward) so each sees the same machine;
the first round is dropped. Then ``--count-starts`` more starts of each pod kind, one kind at
a time, count the API requests per start by account (the sandbox's request log): the
notebook server's (direct) or the gateway's, and the operator's.

Run: ``.venv/bin/python bench/direct_start.py`` (writes ``bench/results/direct_start.{json,md}``;
``bench/report.py`` puts the section into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _gateway_client import KERNEL_PYTHON
from _measure import add_output_args, machine, run_keeping_logs, summary, wait_quiet
from _notebook_server import NotebookServer
from _stack import Stack, command_line

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin.kube import kernels_path
from elastic_jupyter.harness import NotebookClient, free_port, wait_until
from elastic_jupyter.operator.gateway_objects import (
    KERNEL_MANAGER_CLASS,
    KERNEL_VERBS,
    SESSION_MANAGER_CLASS,
    rule,
)
from elastic_jupyter.operator.service_accounts import OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT

HERE = Path(__file__).resolve().parent
KINDS = ("direct", "gateway", "local")
POD_KINDS = ("direct", "gateway")
IMAGE = "elastic-jupyter/kernel-py:dev"  # the gateway's `remote` kernelspec names the same
PROVISIONER = "kubeflow-provisioner"
MANAGER = "elastic_jupyter.provisioner.server.DirectMappingKernelManager"
NOTEBOOK_ACCOUNT = "notebook"
# The gateway as the operator configures it (sessions on the JupyterKernels, adoption), with
# the kernelspecs on disk that bench/_stack.py writes.
GATEWAY_ARGS = (
    "--EnterpriseGatewayApp.kernel_spec_manager_class="
    "elastic_jupyter.gateway_plugin.kernelspec_sync.KubeflowKernelSpecManager",
    f"--EnterpriseGatewayApp.kernel_session_manager_class={SESSION_MANAGER_CLASS}",
    f"--EnterpriseGatewayApp.kernel_manager_class={KERNEL_MANAGER_CLASS}",
)
PHASES = ("session_s", "info_s", "output_s")
PHASE_LABELS = {
    "session_s": "POST /api/sessions → 201",
    "info_s": "→ websocket open + kernel_info_reply",
    "output_s": "→ first output of one execute_request",
}


# -- what runs where --


def direct_kernelspec() -> dict[str, Any]:
    """The seed's kernelspec in direct mode: same argv and config keys, provisioner stanza."""
    return {
        "display_name": "direct (kubeflow-provisioner)",
        "language": "python",
        "argv": ["kubeflow-launcher", *crds.KERNELSPEC_LAUNCHER_ARGS],
        "metadata": {
            "kernel_provisioner": {
                "provisioner_name": PROVISIONER,
                "config": {"image_name": IMAGE},
            }
        },
    }


def provisioner_installed() -> bool:
    """Whether ``.venv-kernel`` registers our provisioner (jupyter_client's entry point)."""
    probe = (
        "import importlib.metadata as m, sys;"
        "eps = m.entry_points(group='jupyter_client.kernel_provisioners');"
        f"sys.exit(0 if any(e.name == '{PROVISIONER}' for e in eps) else 1)"
    )
    return subprocess.run([str(KERNEL_PYTHON), "-c", probe], check=False).returncode == 0


def notebook_account(stack: Stack, namespace: str) -> Path:
    """A direct-mode notebook's ServiceAccount in ``namespace`` with the grants of
    DIRECT_MODE.md in its kernel namespace (the same one here), and its kubeconfig."""
    base = "/apis/rbac.authorization.k8s.io/v1"
    meta = {"name": NOTEBOOK_ACCOUNT, "namespace": namespace}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta,
        "rules": [
            rule(crds.GROUP, crds.JUPYTER_KERNEL.plural, KERNEL_VERBS),
            rule("", "secrets", ["create", "get", "patch"]),
            rule(crds.GROUP, crds.JUPYTER_KERNEL_TEMPLATE.plural, ["get"]),
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": NOTEBOOK_ACCOUNT,
        },
        "subjects": [{"kind": "ServiceAccount", **meta}],
    }
    sandbox = stack.sandbox
    sandbox.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": meta})
    sandbox.request("POST", f"{base}/namespaces/{namespace}/roles", role)
    sandbox.request("POST", f"{base}/namespaces/{namespace}/rolebindings", binding)
    return sandbox.serviceaccount_kubeconfig(namespace, NOTEBOOK_ACCOUNT)


class Servers:
    """One notebook server per kind, the kernel name each starts, and where its pods go."""

    def __init__(self, stack: Stack, workdir: Path, kinds: list[str]) -> None:
        self.stack = stack
        self.servers: dict[str, NotebookServer] = {}
        self.kernel_name = {"direct": "direct", "gateway": "remote", "local": "python3"}
        self.namespace = {"gateway": stack.namespace, "direct": f"direct-{uuid.uuid4().hex[:6]}"}
        if "gateway" in kinds:
            self.servers["gateway"] = NotebookServer(
                workdir,
                "notebook-gateway",
                [
                    f"--gateway-url={stack.base}",
                    "--GatewayClient.request_timeout=120",
                    "--GatewayClient.connect_timeout=120",
                ],
                {"KERNEL_USERNAME": "jovyan"},
            )
        if "direct" in kinds:
            self.servers["direct"] = self._direct(workdir)
        if "local" in kinds:
            self.servers["local"] = NotebookServer(workdir, "notebook-local")

    def _direct(self, workdir: Path) -> NotebookServer:
        namespace = self.namespace["direct"]
        self.stack.sandbox.create_namespace(namespace)
        share = workdir / "notebook-direct-share"
        (share / "kernels" / "direct").mkdir(parents=True)
        (share / "kernels" / "direct" / "kernel.json").write_text(
            json.dumps(direct_kernelspec()), "utf-8"
        )
        env = {
            "KUBECONFIG": str(notebook_account(self.stack, namespace)),
            "EJ_KERNEL_NAMESPACE": namespace,
            "EJ_RESPONSE_IP": "127.0.0.1",
            "EJ_RESPONSE_PORT": str(free_port()),
            "JUPYTER_PATH": str(share),
            "KERNEL_USERNAME": "jovyan",
        }
        args = [f"--ServerApp.kernel_manager_class={MANAGER}"]
        return NotebookServer(workdir, "notebook-direct", args, env)

    def __enter__(self) -> Servers:
        try:
            for server in self.servers.values():
                server.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for server in self.servers.values():
            server.close()

    def user(self, kind: str) -> str:
        """The Kubernetes user that creates this kind's JupyterKernels."""
        if kind == "direct":
            return f"system:serviceaccount:{self.namespace['direct']}:{NOTEBOOK_ACCOUNT}"
        return f"system:serviceaccount:{self.stack.namespace}:bench"  # _stack's gateway account

    def pods_gone(self, kind: str, timeout_s: float = 60) -> bool:
        """Wait until this kind's namespace holds no JupyterKernel and no pod."""
        if kind not in self.namespace:
            return True
        namespace, sandbox = self.namespace[kind], self.stack.sandbox

        def empty() -> bool:
            kernels = sandbox.request("GET", kernels_path(namespace))["items"]
            pods = sandbox.request("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
            return not kernels and not pods

        with contextlib.suppress(TimeoutError):
            return wait_until(f"{kind} kernels gone", empty, timeout_s, 0.1)
        return False


# -- one start, as JupyterLab does it --


@dataclass
class Sample:
    """One start: seconds from the POST to each step, or the error that ended it."""

    kind: str
    ok: bool = False
    error: str = ""
    kernel_id: str = ""
    session_s: float | None = None
    info_s: float | None = None
    output_s: float | None = None
    cleaned: bool = True  # its JupyterKernel and pod were gone before the next start


def start_once(client: NotebookClient, kind: str, kernel_name: str, timeout_s: float) -> Sample:
    """POST /api/sessions → websocket → kernel_info → execute → its output; never raises."""
    sample = Sample(kind)
    marker = uuid.uuid4().hex
    started = time.perf_counter()
    session_id = ""
    try:
        session = client.start_session(f"bench-{marker[:8]}.ipynb", kernel_name)
        sample.session_s = time.perf_counter() - started
        session_id, sample.kernel_id = session["id"], session["kernel"]["id"]
        with client.channel(sample.kernel_id) as channel:
            channel.kernel_info(timeout_s)
            sample.info_s = time.perf_counter() - started
            result = channel.execute(f"print('{marker}')", timeout_s)
            sample.output_s = time.perf_counter() - started
        if marker not in result.stdout:
            raise RuntimeError(f"output without the marker: {result}")
        sample.ok = True
    except Exception as err:  # a failed start is a result, not a crash of the benchmark
        sample.error = f"{type(err).__name__}: {err}"[:400]
    finally:
        if session_id:
            with contextlib.suppress(Exception):
                client.delete_session(session_id)
    return sample


def latency(servers: Servers, kinds: list[str], runs: int, timeout_s: float) -> list[Sample]:
    clients = {k: servers.servers[k].client(timeout_s) for k in kinds}
    samples: list[Sample] = []
    for i in range(runs + 1):  # the first round warms caches and is dropped
        for kind in kinds if i % 2 == 0 else list(reversed(kinds)):
            sample = start_once(clients[kind], kind, servers.kernel_name[kind], timeout_s)
            sample.cleaned = servers.pods_gone(kind)
            if i > 0:
                samples.append(sample)
    return samples


# -- API requests per start --


def requests_per_start(servers: Servers, kind: str, count: int, timeout_s: float) -> dict[str, Any]:
    """``count`` starts of ``kind`` alone; the requests the sandbox logged meanwhile from the
    account that creates the JupyterKernels and from the operator, per start."""
    sandbox = servers.stack.sandbox
    wait_quiet(sandbox)
    since = time.time()
    client = servers.servers[kind].client(timeout_s)
    samples = []
    for _ in range(count):
        samples.append(start_once(client, kind, servers.kernel_name[kind], timeout_s))
        servers.pods_gone(kind)
    wait_quiet(sandbox)
    operator = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
    accounts = {"front_end": servers.user(kind), "operator": operator}
    log = sandbox.request("GET", "/sandbox/requests?limit=10000")["items"]
    out: dict[str, Any] = {"starts": count, "started": sum(s.ok for s in samples)}
    for role, user in accounts.items():
        seen = Counter(_request_key(r) for r in log if r["time"] >= since and r.get("user") == user)
        out[role] = {
            "per_start": round(sum(seen.values()) / count, 2),
            "requests": dict(sorted(seen.items())),
        }
    return out


def _request_key(record: dict[str, Any]) -> str:
    """``verb resource[/subresource]``, with the status when the server refused it."""
    sub = f"/{record['subresource']}" if record["subresource"] else ""
    status = f" ({record['status']})" if int(record["status"]) >= 400 else ""
    return f"{record['verb']} {record['resource']}{sub}{status}"


# -- the run --


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    kinds = [k for k in KINDS if k in args.kinds]
    if "direct" in kinds and not provisioner_installed():
        raise SystemExit(
            f"direct: {KERNEL_PYTHON} has no jupyter_client provisioner {PROVISIONER!r}; "
            "install the provisioner (`make venv` with it merged), or pass --kinds gateway,local"
        )
    with (
        Stack(workdir, pods=10, gateway_args=GATEWAY_ARGS) as stack,
        Servers(stack, workdir, kinds) as servers,
    ):
        load_before = machine()["load_average_1m"]
        samples = latency(servers, kinds, args.runs, args.timeout)
        requests = {
            kind: requests_per_start(servers, kind, args.count_starts, args.timeout)
            for kind in kinds
            if kind in POD_KINDS and args.count_starts > 0
        }
    return result(args, kinds, samples, requests, load_before)


def result(
    args: argparse.Namespace,
    kinds: list[str],
    samples: list[Sample],
    requests: dict[str, Any],
    load_before: float,
) -> dict[str, Any]:
    by_kind = {k: [s for s in samples if s.kind == k] for k in kinds}
    start_s: dict[str, dict[str, dict[str, float]]] = {}
    for kind, mine in by_kind.items():
        ok = [s for s in mine if s.ok]
        start_s[kind] = {p: summary([float(getattr(s, p)) for s in ok]) for p in PHASES}
    medians = {
        k: statistics.median(s.output_s for s in v if s.ok and s.output_s is not None)
        for k, v in by_kind.items()
        if any(s.ok for s in v)
    }
    ratios = {
        f"{a}/{b}": round(medians[a] / medians[b], 3)
        for a, b in (("direct", "local"), ("gateway", "local"), ("direct", "gateway"))
        if a in medians and b in medians
    }
    return {
        "benchmark": "direct_start",
        "runs": args.runs,
        "kinds": kinds,
        "started": {k: sum(s.ok for s in v) for k, v in by_kind.items()},
        "start_s": start_s,
        "ratios_of_medians": ratios,
        "requests_per_start": requests,
        "samples": [asdict(s) for s in samples],
        "failures": [f"{s.kind}: {s.error}" for s in samples if not s.ok],
        "not_cleaned": sum(not s.cleaned for s in samples),
        "load_average_1m_before": load_before,
        "machine": machine(),
        "command": command_line("direct_start.py", args.argv),
    }


# -- the section --


def render_markdown(r: dict[str, Any]) -> str:
    kinds = r["kinds"]
    names = {
        "direct": "direct (provisioner, own pod)",
        "gateway": "gateway (EG 3.3, own pod)",
        "local": "local (notebook's child)",
    }
    lines = [
        "## Kernel start: direct mode vs through the gateway vs local (sessions → first output)",
        "",
        "As JupyterLab starts a kernel, on a jupyter_server 2 notebook server from the kernel"
        " venv: `POST /api/sessions`, the kernel's websocket and a `kernel_info_request`, one"
        " `execute_request` printing a marker, until its output (and idle) arrives. `direct`:"
        " the notebook server runs our kernel provisioner (`kubeflow-provisioner`, the seed's"
        " `kubeflow-launcher` argv) and `DirectMappingKernelManager` with a ServiceAccount"
        " holding only the direct-mode grants: the kernel in its own pod, no gateway. `gateway`:"
        " the notebook server with `--gateway-url` in front of Enterprise Gateway 3.3 and our"
        " process proxy (sessions on the JupyterKernels, as the operator configures a gateway),"
        " the same kernel image in its own pod. `local`: a plain jupyter_server 2"
        " starting ipykernel as its child (the floor). One sandbox with the real operator; kinds"
        f" alternate (forward, then backward), {r['runs']} starts each after a dropped first"
        " round; each start waits until the previous kernel's JupyterKernel and pod are gone.",
        "",
        "| seconds from the POST | " + " | ".join(names[k] for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for phase in PHASES:
        for stat in ("median", "p95", "min", "max"):
            cells = [str(r["start_s"][k][phase].get(stat, "-")) for k in kinds]
            label = f"{PHASE_LABELS[phase]}, {stat}"
            if phase == "output_s" and stat == "median":
                label = f"**{label}**"
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    started = [f"{r['started'][k]}/{r['runs']}" for k in kinds]
    lines.append("| started with their output | " + " | ".join(started) + " |")
    ratios = ", ".join(f"{k} {v}" for k, v in r["ratios_of_medians"].items())
    lines += ["", f"Medians of start → first output, ratio: {ratios or '-'}."]
    if r["failures"]:
        lines += ["", "Failed starts: " + "; ".join(f"`{f[:200]}`" for f in r["failures"])]
    lines += _requests_lines(r)
    m = r["machine"]
    lines += [
        "",
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs), Python {m['python']}; 1-minute load"
        f" average {r['load_average_1m_before']} when the measured starts began and"
        f" {m['load_average_1m']} at the end (the machine is shared: compare the columns of one"
        " run, not runs).",
        "",
        f"Command: `{r['command']}`",
        "",
    ]
    return "\n".join(lines)


def _requests_lines(r: dict[str, Any]) -> list[str]:
    requests = r["requests_per_start"]
    if not requests:
        return []
    who = {"direct": "notebook server", "gateway": "gateway"}
    lines = [
        "",
        "API requests per start (the sandbox's request log by account, over starts of one kind"
        " alone, from the POST until the kernel's JupyterKernel and pod were deleted; a refused"
        " request is counted with its status):",
        "",
        "| kind | starts | creator of the JupyterKernel, per start | its requests |"
        " operator, per start | its requests |",
        "|---|---|---|---|---|---|",
    ]
    for kind, q in requests.items():
        front, operator = q["front_end"], q["operator"]
        lines.append(
            f"| {kind} | {q['started']}/{q['starts']} | {front['per_start']} ({who[kind]}) |"
            f" {_counts(front['requests'])} | {operator['per_start']} |"
            f" {_counts(operator['requests'])} |"
        )
    if "gateway" in requests:
        lines += [
            "",
            "The bench's gateway is a process without a JupyterGateway object: the operator's"
            " lookups of it on each kernel added or deleted (to refresh the gateway's kernel"
            " count) answer 404 here; on a cluster they find it and refresh its status.",
        ]
    return lines


def _counts(requests: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in requests.items()) or "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="measured starts per kind")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help="comma-separated subset of direct,gateway,local"
    )
    parser.add_argument(
        "--count-starts", type=int, default=5, help="starts per pod kind for the request count"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="per start (s)")
    add_output_args(parser, render="section")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    unknown = set(args.kinds.split(",")) - set(KINDS)
    if unknown:
        parser.error(f"--kinds: unknown {sorted(unknown)}; pick from {', '.join(KINDS)}")
    args.kinds = args.kinds.split(",")
    if args.render:
        data = json.loads(args.render.read_text(encoding="utf-8"))
    else:
        data = run_keeping_logs(run, args, "direct-start-")
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / "direct_start.json").write_text(json.dumps(data, indent=1) + "\n")
    text = render_markdown(data)
    (args.out_dir / "direct_start.md").write_text(text, "utf-8")
    print(text)
    return 0 if all(data["started"][k] == data["runs"] for k in data["kinds"]) else 1


if __name__ == "__main__":
    sys.exit(main())
