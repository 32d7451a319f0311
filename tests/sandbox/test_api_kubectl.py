"""kubectl 1.32 against the sandbox API server, through a generated kubeconfig."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.sandbox.test_api_support import WIDGET_CRD, ServerThread, server, write_kubeconfig

__all__ = ["server"]

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH"),
]

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(server: ServerThread, tmp_path: Path) -> Kubectl:
    """Run kubectl against the server; returns the completed process (never raises)."""
    config = write_kubeconfig(tmp_path / "kubeconfig", server)
    env = dict(os.environ, KUBECONFIG=str(config), HOME=str(tmp_path))

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )

    return run


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


WIDGET = textwrap.dedent(
    """
    apiVersion: example.com/v1
    kind: Widget
    metadata: {name: %s}
    spec: {color: %s}
    """
)


def test_kubectl_core_flows(kubectl: Kubectl, tmp_path: Path) -> None:
    assert "Server Version: v1.32" in _ok(kubectl("version"))
    resources = _ok(kubectl("api-resources"))
    assert (
        "pods" in resources
        and "deployments" in resources
        and "customresourcedefinitions" in resources
    )
    crd_file = tmp_path / "crd.yaml"
    crd_file.write_text(yaml.safe_dump(WIDGET_CRD), encoding="utf-8")
    assert "created" in _ok(kubectl("apply", "-f", str(crd_file)))
    assert "unchanged" in _ok(kubectl("apply", "-f", str(crd_file)))
    assert "widgets" in _ok(kubectl("api-resources", "--api-group=example.com"))
    assert "widget.example.com/w1 created" in _ok(
        kubectl("apply", "-f", "-", stdin=WIDGET % ("w1", "red"))
    )
    assert "unchanged" in _ok(kubectl("apply", "-f", "-", stdin=WIDGET % ("w1", "red")))
    assert "configured" in _ok(kubectl("apply", "-f", "-", stdin=WIDGET % ("w1", "blue")))
    table = _ok(kubectl("get", "widgets"))
    assert table.split("\n")[0].split() == ["NAME", "COLOR", "PHASE"] and "blue" in table
    assert "w1" in _ok(kubectl("get", "wd"))
    assert "w1" in _ok(kubectl("get", "toys"))
    proc = kubectl("get", "wd", "-l", "app=nomatch")
    assert proc.returncode == 0 and "No resources found" in proc.stderr
    assert "labeled" in _ok(kubectl("label", "wd", "w1", "app=x"))
    assert "w1" in _ok(kubectl("get", "wd", "-l", "app=x"))
    _ok(kubectl("patch", "wd", "w1", "--type=merge", "-p", '{"spec":{"size":7}}'))
    assert _ok(kubectl("get", "wd", "w1", "-o", "jsonpath={.spec.size}")) == "7"
    # wrong type → server-side 422 naming the field; unknown field → strict decoding error
    bad = WIDGET % ("w2", "red") + "  size: big\n"
    bad = bad.replace("spec: {color: red}\n  size: big", "spec: {color: red, size: big}")
    proc = kubectl("apply", "-f", "-", stdin=bad)
    assert proc.returncode != 0 and "spec.size" in proc.stderr and "integer" in proc.stderr
    unknown = (WIDGET % ("w3", "red")).replace("spec: {color: red}", "spec: {color: red, foo: 1}")
    proc = kubectl("apply", "-f", "-", stdin=unknown)
    assert proc.returncode != 0 and 'strict decoding error: unknown field "spec.foo"' in proc.stderr
    assert 'widget.example.com "w1" deleted' in _ok(kubectl("delete", "wd", "w1"))


def test_kubectl_builtin_kinds(kubectl: Kubectl) -> None:
    assert "namespace/team created" in _ok(kubectl("create", "namespace", "team"))
    _ok(kubectl("create", "configmap", "cfg", "-n", "team", "--from-literal=a=b"))
    _ok(kubectl("create", "secret", "generic", "sec", "-n", "team", "--from-literal=x=y"))
    # typed kubectl commands send protobuf bodies
    _ok(kubectl("create", "deployment", "dep", "-n", "team", "--image=busybox:1", "--replicas=2"))
    _ok(kubectl("create", "role", "reader", "-n", "team", "--verb=get", "--resource=pods"))
    _ok(kubectl("create", "rolebinding", "rb", "-n", "team", "--role=reader", "--user=bob"))
    _ok(kubectl("create", "serviceaccount", "robot", "-n", "team"))
    assert (
        _ok(kubectl("get", "deploy", "dep", "-n", "team", "-o", "jsonpath={.spec.replicas}")) == "2"
    )
    assert "bob" in _ok(kubectl("get", "rolebinding", "rb", "-n", "team", "-o", "yaml"))
    pod = textwrap.dedent(
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: p1, namespace: team, labels: {app: demo}}
        spec:
          containers: [{name: main, image: busybox, command: [sleep, "60"]}]
        """
    )
    typo = pod.replace("command:", "comand:").replace("name: p1", "name: p0")
    proc = kubectl("apply", "-f", "-", stdin=typo)
    assert proc.returncode != 0
    assert 'strict decoding error: unknown field "spec.containers[0].comand"' in proc.stderr
    assert "pod/p1 created" in _ok(kubectl("apply", "-f", "-", stdin=pod))
    assert "unchanged" in _ok(kubectl("apply", "-f", "-", stdin=pod))
    assert "configured" in _ok(
        kubectl("apply", "-f", "-", stdin=pod.replace("app: demo", "app: demo2"))
    )
    all_pods = _ok(kubectl("get", "pods", "-A"))
    assert (
        all_pods.split("\n")[0].split()[:3] == ["NAMESPACE", "NAME", "READY"] and "team" in all_pods
    )
    assert "cfg" in _ok(kubectl("get", "cm", "-n", "team"))
    assert _ok(kubectl("get", "secret", "sec", "-n", "team", "-o", "jsonpath={.type}")) == "Opaque"
    proc = kubectl("logs", "p1", "-n", "team")
    assert proc.returncode != 0 and "not scheduled" in proc.stderr
    assert 'pod "p1" deleted' in _ok(kubectl("delete", "pod", "p1", "-n", "team"))
    proc = kubectl("get", "pod", "p1", "-n", "team")
    assert proc.returncode != 0 and "NotFound" in proc.stderr
    assert "deleted" in _ok(kubectl("delete", "namespace", "team"))


def test_kubectl_watch_prints_columns(
    kubectl: Kubectl, server: ServerThread, tmp_path: Path
) -> None:
    config = write_kubeconfig(tmp_path / "watch-kubeconfig", server)
    env = dict(os.environ, KUBECONFIG=str(config), HOME=str(tmp_path))
    with subprocess.Popen(
        ["kubectl", "get", "configmaps", "-w", "--request-timeout=20s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as watcher:
        assert watcher.stdout is not None
        lines = []
        try:
            _ok(kubectl("create", "configmap", "watched"))
            _ok(kubectl("label", "configmap", "watched", "seen=yes"))
            while len(lines) < 3:  # header, ADDED row, MODIFIED row
                line = watcher.stdout.readline()
                assert line, watcher.stderr.read() if watcher.stderr else "watch ended"
                lines.append(line.split())
        finally:
            watcher.terminate()
    assert lines[0] == ["NAME", "DATA", "AGE"]
    assert lines[1][:2] == ["watched", "0"] and lines[2][:2] == ["watched", "0"]


def test_kubectl_explain_crd(kubectl: Kubectl, tmp_path: Path) -> None:
    crd_file = tmp_path / "crd.yaml"
    crd_file.write_text(yaml.safe_dump(WIDGET_CRD), encoding="utf-8")
    _ok(kubectl("apply", "-f", str(crd_file)))
    out = _ok(kubectl("explain", "widgets.spec"))
    assert "What the widget should be." in out and "color" in out and "Paint." in out


CRD_DIR = Path(__file__).resolve().parents[2] / "crds"


@pytest.mark.skipif(
    not list(CRD_DIR.glob("*.yaml")), reason="the project's CRDs are not written yet"
)
def test_kubectl_applies_project_crds(kubectl: Kubectl) -> None:
    created = _ok(kubectl("apply", "-f", str(CRD_DIR)))
    files = list(CRD_DIR.glob("*.yaml"))
    assert created.count(" created") == len(files)
    assert _ok(kubectl("apply", "-f", str(CRD_DIR))).count(" unchanged") == len(files)
    # a short name kubectl has not cached yet makes it refresh discovery (as on a real cluster)
    for resource in ("jk", "jupyter"):
        proc = kubectl("get", resource)
        assert proc.returncode == 0 and "No resources found" in proc.stderr, proc.stderr
