"""The five CRDs on the sandbox API server, through kubectl 1.32, as a user would meet them.

Needs the session-scoped ``sandbox`` fixture (``tests/conftest.py``: ``.kubeconfig``), the
``namespace`` fixture (a fresh namespace per test) and the ``kubectl`` fixture (skips with a reason
when kubectl is not on PATH). Without ``sandbox`` these tests error; they are never skipped
silently. The sandbox validates, defaults and prunes custom objects with the CRD's
``openAPIV3Schema`` as kube-apiserver does, so what passes here passes on a cluster.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from elastic_jupyter import crds
from tests.crds.schema_tools import is_subset

pytestmark = pytest.mark.kubectl

CRD_DIR = Path(crds.__file__).resolve().parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "original"
ORIGINAL_MANIFESTS = sorted(FIXTURES.glob("*.yaml"))


class Kubectl:
    """kubectl against the sandbox, with its own discovery cache (CRDs appear mid-session)."""

    def __init__(self, kubeconfig: str, cache_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run kubectl; the caller checks the return code."""
        return subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.cache_dir}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        """Run kubectl, fail the test with its stderr if it fails, return stdout."""
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def get_json(self, *args: str) -> dict[str, Any]:
        """``kubectl get ... -o json`` as a dictionary."""
        loaded: dict[str, Any] = json.loads(self.ok("get", *args, "-o", "json"))
        return loaded


@pytest.fixture(scope="module")
def applied(
    sandbox: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Kubectl, str]]:
    """``kubectl apply -f crds/`` once for this module; yields kubectl and that first output."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH")
    kubectl = Kubectl(str(sandbox.kubeconfig), tmp_path_factory.mktemp("kubectl-cache"))
    output = kubectl.ok("apply", "-f", str(CRD_DIR))
    yield kubectl, output


@pytest.fixture
def k(applied: tuple[Kubectl, str], kubectl: Any) -> Kubectl:
    """kubectl with the CRDs applied (``kubectl`` skips the test when kubectl is missing)."""
    return applied[0]


@pytest.fixture
def ns(namespace: Any) -> str:
    """The test's namespace name."""
    return str(getattr(namespace, "name", namespace))


def dump(manifest: dict[str, Any]) -> str:
    return yaml.safe_dump(manifest, sort_keys=False)


def kernel(name: str, **spec: Any) -> dict[str, Any]:
    """A valid JupyterKernel, with ``spec`` overrides."""
    body: dict[str, Any] = {
        "template": {
            "metadata": {"labels": {"team": "ml"}, "annotations": {"note": "gpu"}},
            "spec": {"containers": [{"name": "kernel", "image": "python:3.11"}]},
        },
        "kernelId": "7d25a2c8-2c2b-4b0a-9a58-1f3b8f0b8f55",
        "kernelName": "python-kubernetes",
        "username": "alice",
    }
    body.update(spec)
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL.kind,
        "metadata": {"name": name},
        "spec": body,
    }


def columns(table: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of kubectl's table output, split on runs of spaces."""
    lines = [line for line in table.splitlines() if line.strip()]
    return lines[0].split(), [line.split() for line in lines[1:]]


# --- the CRDs themselves ----------------------------------------------------------------------
def test_apply_creates_all_five_then_reports_unchanged(applied: tuple[Kubectl, str]) -> None:
    kubectl, first = applied
    names = sorted(
        f"customresourcedefinition.apiextensions.k8s.io/{n.crd_name}" for n in crds.ALL_KINDS
    )
    first_lines = sorted(first.splitlines())
    assert [line.rsplit(" ", 1)[0] for line in first_lines] == names
    # the sandbox may have loaded them already; anything else than these words is a failure
    assert all(
        line.rsplit(" ", 1)[1] in ("created", "configured", "unchanged") for line in first_lines
    )
    again = sorted(kubectl.ok("apply", "-f", str(CRD_DIR)).splitlines())
    assert again == [f"{name} unchanged" for name in names]
    for names_ in crds.ALL_KINDS:
        crd = kubectl.get_json("crd", names_.crd_name)
        established = [c for c in crd["status"]["conditions"] if c["type"] == "Established"]
        assert established and established[0]["status"] == "True", names_.kind


def test_api_resources_show_short_names(k: Kubectl) -> None:
    output = k.ok("api-resources", f"--api-group={crds.GROUP}", "--no-headers")
    rows = {line.split()[0]: line.split() for line in output.splitlines()}
    for names in crds.ALL_KINDS:
        assert names.plural in rows, output
        row = rows[names.plural]
        assert names.short_names[0] in row
        assert names.kind in row
        assert "true" in row  # namespaced


# --- validation -------------------------------------------------------------------------------
def _invalid_cases() -> list[tuple[str, dict[str, Any], str]]:
    no_containers = kernel("k-empty")
    no_containers["spec"]["template"]["spec"]["containers"] = []
    int_image = kernel("k-int-image")
    int_image["spec"]["template"]["spec"]["containers"][0]["image"] = 42
    string_command = kernel("k-string-command")
    string_command["spec"]["template"]["spec"]["containers"][0]["command"] = "python -m ipykernel"
    int_label = kernel("k-int-label")
    int_label["spec"]["template"]["metadata"]["labels"]["gpus"] = 2
    no_template = kernel("k-no-template")
    del no_template["spec"]["template"]
    gateway = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_GATEWAY.kind,
        "metadata": {"name": "gw-loud"},
        "spec": {"logLevel": "LOUD"},
    }
    gateway_timeout = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_GATEWAY.kind,
        "metadata": {"name": "gw-timeout"},
        "spec": {"cullIdleTimeout": "an hour"},
    }
    bad_namespace = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_GATEWAY.kind,
        "metadata": {"name": "gw-bad-namespace"},
        "spec": {"allowKernelNamespace": True, "kernelNamespaces": ["team-a", "Team_B"]},
    }
    repeated_namespace = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_GATEWAY.kind,
        "metadata": {"name": "gw-repeated-namespace"},
        "spec": {"allowKernelNamespace": True, "kernelNamespaces": ["team-a", "team-a"]},
    }
    notebook = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_NOTEBOOK.kind,
        "metadata": {"name": "nb-maybe"},
        "spec": {"auth": {"mode": "maybe"}},
    }

    def pooled(name: str, pool: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": crds.API_VERSION,
            "kind": crds.JUPYTER_KERNEL_SPEC.kind,
            "metadata": {"name": name},
            "spec": {"warmPool": pool},
        }

    return [
        ("warm-pool-negative", pooled("ks-neg", {"size": -1}), "spec.warmPool.size"),
        ("warm-pool-too-big", pooled("ks-big", {"size": 1000}), "spec.warmPool.size"),
        ("warm-pool-no-size", pooled("ks-nosize", {"maxIdleAge": "5m"}), "spec.warmPool.size"),
        (
            "warm-pool-bad-age",
            pooled("ks-age", {"size": 1, "maxIdleAge": "soon"}),
            "spec.warmPool.maxIdleAge",
        ),
        ("image-is-integer", int_image, "spec.template.spec.containers[0].image"),
        ("command-is-string", string_command, "spec.template.spec.containers[0].command"),
        ("no-containers", no_containers, "spec.template.spec.containers"),
        ("label-is-integer", int_label, "spec.template.metadata.labels"),
        ("no-template", no_template, "spec.template"),
        ("unknown-log-level", gateway, "spec.logLevel"),
        ("cull-timeout-is-string", gateway_timeout, "spec.cullIdleTimeout"),
        ("kernel-namespace-not-a-label", bad_namespace, "spec.kernelNamespaces[1]"),
        ("kernel-namespace-repeated", repeated_namespace, "spec.kernelNamespaces[1]"),
        ("unknown-auth-mode", notebook, "spec.auth.mode"),
    ]


@pytest.mark.parametrize(
    ("manifest", "field"),
    [pytest.param(m, f, id=i) for i, m, f in _invalid_cases()],
)
def test_invalid_object_is_rejected_naming_the_field(
    k: Kubectl, ns: str, manifest: dict[str, Any], field: str
) -> None:
    result = k.run("create", "-n", ns, "-f", "-", stdin=dump(manifest))
    assert result.returncode != 0, result.stdout
    assert field in result.stderr, result.stderr
    assert "is invalid" in result.stderr, result.stderr
    kind = manifest["kind"].lower()
    assert k.run("get", kind, manifest["metadata"]["name"], "-n", ns).returncode != 0


def test_schema_defaults_are_filled_in(k: Kubectl, ns: str) -> None:
    gateway = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_GATEWAY.kind,
        "metadata": {"name": "gw-defaults"},
        "spec": {"auth": {}},
    }
    k.ok("create", "-n", ns, "-f", "-", stdin=dump(gateway))
    spec = k.get_json("jgw", "gw-defaults", "-n", ns)["spec"]
    assert spec == {
        "auth": {"mode": crds.DEFAULT_AUTH_MODE},
        "cullIdleTimeout": crds.DEFAULT_CULL_IDLE_TIMEOUT,
        "cullInterval": crds.DEFAULT_CULL_INTERVAL,
        "cullConnected": False,
        "kernelLaunchTimeout": crds.DEFAULT_KERNEL_LAUNCH_TIMEOUT,
        "allowKernelNamespace": False,
    }


def test_kernel_namespaces_are_explained(k: Kubectl) -> None:
    out = k.ok("explain", f"{crds.JUPYTER_GATEWAY.plural}.spec.kernelNamespaces")
    assert "KERNEL_NAMESPACE" in out and "Role" in out, out


# --- kubectl get ------------------------------------------------------------------------------
def test_valid_kernel_is_listed_with_its_printer_columns(k: Kubectl, ns: str) -> None:
    k.ok("create", "-n", ns, "-f", "-", stdin=dump(kernel("kernel-7d25a2c8")))
    status = {
        "phase": crds.PHASE_RUNNING,
        "podName": "kernel-7d25a2c8",
        "podIP": "127.0.5.7",
        "hostIP": "127.0.0.1",
        "nodeName": "sandbox-node",
        "startTime": "2026-01-02T03:04:05Z",
        "conditions": [
            {
                "type": crds.CONDITION_RUNNING,
                "status": crds.CONDITION_TRUE,
                "reason": "Running",
                "lastTransitionTime": "2026-01-02T03:04:05Z",
            }
        ],
    }
    k.ok(
        "patch",
        "jk",
        "kernel-7d25a2c8",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    header, rows = columns(k.ok("get", "jk", "-n", ns))
    assert header == ["NAME", "PHASE", "POD", "NODE", "IP", "AGE"]
    assert rows[0][:5] == [
        "kernel-7d25a2c8",
        "Running",
        "kernel-7d25a2c8",
        "sandbox-node",
        "127.0.5.7",
    ]
    header, rows = columns(k.ok("get", "jupyterkernels", "-n", ns, "-o", "wide"))
    assert header == ["NAME", "PHASE", "POD", "NODE", "IP", "REASON", "KERNEL", "USER", "AGE"]
    assert "python-kubernetes" in rows[0] and "alice" in rows[0]


def test_status_is_typed_and_closed(k: Kubectl, ns: str) -> None:
    """kopf's progress goes to annotations: a stray status field is pruned, a bad phase refused."""
    k.ok("create", "-n", ns, "-f", "-", stdin=dump(kernel("kernel-status")))
    stray = {"status": {"phase": "Pending", "kopf": {"progress": {"h": {"retries": 1}}}}}
    k.ok(
        "patch",
        "jk",
        "kernel-status",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(stray),
    )
    assert k.get_json("jk", "kernel-status", "-n", ns)["status"] == {"phase": "Pending"}
    bad = k.run(
        "patch",
        "jk",
        "kernel-status",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Exploded"}}),
    )
    assert bad.returncode != 0
    assert "status.phase" in bad.stderr, bad.stderr


@pytest.mark.parametrize("kind", ["JupyterKernel", "JupyterKernelTemplate", "JupyterNotebook"])
def test_template_labels_and_annotations_survive_a_round_trip(
    k: Kubectl, ns: str, kind: str
) -> None:
    metadata = {
        "labels": {"team": "ml", "app.kubernetes.io/name": "kernel"},
        "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
        # the original sample's misplaced labels (issue #67): kept for the operator to report
        "app": "enterprise-gateway",
        "component": "kernel",
    }
    manifest = {
        "apiVersion": crds.API_VERSION,
        "kind": kind,
        "metadata": {"name": "round-trip"},
        "spec": {
            "template": {
                "metadata": metadata,
                "spec": {"containers": [{"name": "main", "image": "python:3.11"}]},
            }
        },
    }
    k.ok("apply", "-n", ns, "-f", "-", stdin=dump(manifest))
    stored = k.get_json(kind.lower(), "round-trip", "-n", ns)
    assert stored["spec"]["template"]["metadata"] == metadata


def test_get_jupyter_lists_objects_of_every_kind(k: Kubectl, ns: str) -> None:
    for path in ORIGINAL_MANIFESTS:
        if path.name.startswith("examples_elastic-with-custom-kernels_"):
            k.ok("apply", "-n", ns, "-f", str(path))
    k.ok("apply", "-n", ns, "-f", str(FIXTURES / "samples_jupyterkernel.yaml"))
    listed = k.ok("get", crds.CATEGORY, "-n", ns, "-o", "name").split()
    kinds = {line.split("/")[0].split(".")[0] for line in listed}
    assert kinds == {names.singular for names in crds.ALL_KINDS}, listed


# --- the original project's manifests -----------------------------------------------------------
@pytest.mark.parametrize("path", ORIGINAL_MANIFESTS, ids=[p.stem for p in ORIGINAL_MANIFESTS])
def test_original_manifest_applies_unchanged(k: Kubectl, ns: str, path: Path) -> None:
    manifest = yaml.safe_load(path.read_text())
    output = k.ok("apply", "-n", ns, "-f", str(path))
    assert output.strip().endswith("created"), output
    plural = {n.kind: n.plural for n in crds.ALL_KINDS}[manifest["kind"]]
    stored = k.get_json(plural, manifest["metadata"]["name"], "-n", ns)
    # nothing pruned or altered: the stored spec holds every original field with its value
    assert is_subset(manifest["spec"], stored["spec"]), json.dumps(stored["spec"], indent=1)


def test_misspelt_field_is_refused_by_kubectl_apply(k: Kubectl, ns: str) -> None:
    """Specs are typed, not open: kubectl's strict field validation names an unknown field."""
    gateway = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_GATEWAY.kind,
        "metadata": {"name": "gw-typo"},
        "spec": {"cullIdleTimout": 600},
    }
    result = k.run("apply", "-n", ns, "-f", "-", stdin=dump(gateway))
    assert result.returncode != 0, result.stdout
    assert "spec.cullIdleTimout" in result.stderr, result.stderr
    assert "unknown field" in result.stderr, result.stderr
