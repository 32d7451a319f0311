"""The sandbox kubelet running real pods as local processes (through kubectl and the API)."""

from __future__ import annotations

import ipaddress
import json
import os
import sys
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.helpers import pod_manifest, wait_for

PY = "python3"


def get_pod(sandbox: SandboxCluster, ns: str, name: str) -> dict[str, Any]:
    pod: dict[str, Any] = sandbox.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    return pod


def create(sandbox: SandboxCluster, ns: str, obj: dict[str, Any], plural: str = "pods") -> None:
    sandbox.request("POST", f"/api/v1/namespaces/{ns}/{plural}", obj)


def phase_is(sandbox: SandboxCluster, ns: str, name: str, *phases: str) -> Callable[[], Any]:
    def check() -> Any:
        pod = get_pod(sandbox, ns, name)
        return pod if pod.get("status", {}).get("phase") in phases else None

    return check


def state(pod: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = pod["status"]["containerStatuses"][0]["state"]
    return result


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.kubectl
def test_pod_runs_with_its_own_ip_logs_and_is_killed_on_delete(
    sandbox: SandboxCluster, namespace: str, kubectl: Callable[..., Any]
) -> None:
    manifest = pod_manifest(
        "hello",
        [PY, "-c", "import os, time; print('hello from', os.environ['POD_IP'], flush=True); "
         "time.sleep(600)"],
        env=[{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
    )  # fmt: skip
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    pod = wait_for(phase_is(sandbox, namespace, "hello", "Running"), 15)
    ip = pod["status"]["podIP"]
    assert ipaddress.ip_address(ip).is_loopback and ip != "127.0.0.1"
    assert pod["status"]["hostIP"] == "127.0.0.1"
    assert "running" in state(pod)
    wide = kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout
    assert "Running" in wide and ip in wide
    logs = wait_for(lambda: kubectl("logs", "-n", namespace, "hello").stdout, 10)
    assert logs.strip() == f"hello from {ip}"
    pid = int(pod["status"]["containerStatuses"][0]["containerID"].rsplit("/", 1)[-1])
    assert pid_alive(pid)
    kubectl("delete", "pod", "-n", namespace, "hello", "--wait=true")
    wait_for(lambda: not pid_alive(pid), 10, message=f"process {pid} to be killed")


def test_env_configmap_secret_and_volumes(sandbox: SandboxCluster, namespace: str) -> None:
    create(
        sandbox,
        namespace,
        {"metadata": {"name": "cfg"}, "data": {"greeting": "hi", "f.txt": "file!"}},
        "configmaps",
    )
    create(
        sandbox, namespace, {"metadata": {"name": "sec"}, "stringData": {"token": "t0k"}}, "secrets"
    )
    script = (
        "import json, os\n"
        "out = {k: os.environ.get(k) for k in ['GREETING', 'TOKEN', 'NODE', 'UID', 'CM_greeting',"
        " 'MEM', 'SELF']}\n"
        "out['file'] = open('/etc/cfg/f.txt').read()\n"
        "out['secret'] = open(os.environ['SECRET_DIR'] + '/token').read()\n"
        "out['labels'] = open('/etc/podinfo/labels').read()\n"
        "open('/scratch/x', 'w').write('w')\n"
        "root = os.environ['SANDBOX_POD_ROOT']\n"
        "out['root'] = open(os.path.join(root, 'etc', 'cfg', 'f.txt')).read()\n"
        "out['cwd'] = os.getcwd()\n"
        "print(json.dumps(out))\n"
    )
    manifest = pod_manifest(
        "envpod",
        [PY, "-c", script],
        workingDir="/scratch",
        env=[
            {
                "name": "GREETING",
                "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}},
            },
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "SELF", "value": "$(NODE)/$(GREETING)"},
            {"name": "SECRET_DIR", "value": "/var/run/secret"},
        ],
        envFrom=[{"configMapRef": {"name": "cfg"}, "prefix": "CM_"}],
        resources={"limits": {"memory": "64Mi"}},
        volumeMounts=[
            {"name": "cfg", "mountPath": "/etc/cfg"},
            {"name": "sec", "mountPath": "/var/run/secret"},
            {"name": "info", "mountPath": "/etc/podinfo"},
            {"name": "scratch", "mountPath": "/scratch"},
        ],
    )
    manifest["spec"]["volumes"] = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "sec", "secret": {"secretName": "sec"}},
        {
            "name": "info",
            "downwardAPI": {
                "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
            },
        },
        {"name": "scratch", "emptyDir": {}},
    ]
    create(sandbox, namespace, manifest)
    pod = wait_for(phase_is(sandbox, namespace, "envpod", "Succeeded", "Failed"), 15)
    logs = sandbox_logs(sandbox, namespace, "envpod")
    assert pod["status"]["phase"] == "Succeeded", logs
    out = json.loads(logs)
    assert out["GREETING"] == "hi" and out["TOKEN"] == "t0k" and out["CM_greeting"] == "hi"
    assert out["NODE"] == "sandbox-node" and out["UID"] == pod["metadata"]["uid"]
    assert out["MEM"] == "64" and out["SELF"] == "sandbox-node/hi"
    assert out["file"] == "file!" and out["secret"] == "t0k" and out["root"] == "file!"
    assert out["labels"] == 'app="envpod"'
    assert out["cwd"].endswith("/volumes/scratch")
    term = state(pod)["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"


def sandbox_logs(sandbox: SandboxCluster, ns: str, name: str, query: str = "") -> str:
    url = f"{sandbox.url}/api/v1/namespaces/{ns}/pods/{name}/log{query}"
    request = urllib.request.Request(url, headers=sandbox.auth_headers)
    with urllib.request.urlopen(request, timeout=30) as resp:
        text: str = resp.read().decode()
    return text


def test_missing_configmap_waits_then_starts(sandbox: SandboxCluster, namespace: str) -> None:
    manifest = pod_manifest(
        "waits",
        [PY, "-c", "import os; print(os.environ['V'])"],
        env=[{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "v"}}}],
    )
    create(sandbox, namespace, manifest)

    def config_error() -> Any:
        pod = get_pod(sandbox, namespace, "waits")
        waiting = state(pod).get("waiting", {}) if pod["status"].get("containerStatuses") else {}
        return pod if waiting.get("reason") == "CreateContainerConfigError" else None

    pod = wait_for(config_error, 10)
    assert state(pod)["waiting"]["message"] == 'configmap "late" not found'
    assert pod["status"]["phase"] == "Pending"
    create(
        sandbox, namespace, {"metadata": {"name": "late"}, "data": {"v": "arrived"}}, "configmaps"
    )
    wait_for(phase_is(sandbox, namespace, "waits", "Succeeded"), 15)
    assert sandbox_logs(sandbox, namespace, "waits").strip() == "arrived"


def test_configmap_volume_follows_updates(sandbox: SandboxCluster, namespace: str) -> None:
    create(sandbox, namespace, {"metadata": {"name": "live"}, "data": {"v": "one"}}, "configmaps")
    script = (
        "import time\n"
        "last = None\n"
        "while True:\n"
        "    v = open('/cfg/v').read()\n"
        "    if v != last: print(v, flush=True); last = v\n"
        "    time.sleep(0.05)\n"
    )
    manifest = pod_manifest(
        "reader", [PY, "-c", script], volumeMounts=[{"name": "c", "mountPath": "/cfg"}]
    )
    manifest["spec"]["volumes"] = [{"name": "c", "configMap": {"name": "live"}}]
    create(sandbox, namespace, manifest)
    wait_for(lambda: "one" in sandbox_logs(sandbox, namespace, "reader"), 15)
    req = urllib.request.Request(
        f"{sandbox.url}/api/v1/namespaces/{namespace}/configmaps/live",
        data=json.dumps({"data": {"v": "two"}}).encode(),
        method="PATCH",
        headers={"Content-Type": "application/merge-patch+json", **sandbox.auth_headers},
    )
    urllib.request.urlopen(req, timeout=10).close()
    wait_for(lambda: "two" in sandbox_logs(sandbox, namespace, "reader"), 10)


def test_kernel_images_bind_their_own_pod_ip(sandbox: SandboxCluster, namespace: str) -> None:
    # Pods share the host network here; the kernel image rule tells the launcher to bind the
    # pod's own address (KERNEL_BIND_IP), as a pod's private network would keep kernels apart.
    script = "import os; print('bind=' + os.environ['KERNEL_BIND_IP'])"
    create(
        sandbox,
        namespace,
        pod_manifest("kbind", ["python", "-c", script], image="elastic-jupyter/kernel-py:dev"),
    )
    pod = wait_for(phase_is(sandbox, namespace, "kbind", "Succeeded", "Failed"), 15)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    logs = wait_for(lambda: sandbox_logs(sandbox, namespace, "kbind"), 10)
    assert f"bind={pod['status']['podIP']}" in logs


def test_unknown_image_fails_to_pull(sandbox: SandboxCluster, namespace: str) -> None:
    create(sandbox, namespace, pod_manifest("noimg", ["true"], image="example.com/nope:1"))

    def backoff() -> Any:
        pod = get_pod(sandbox, namespace, "noimg")
        statuses = pod["status"].get("containerStatuses") or [{}]
        waiting = statuses[0].get("state", {}).get("waiting", {})
        return waiting if waiting.get("reason") == "ImagePullBackOff" else None

    waiting = wait_for(backoff, 10)
    assert waiting["message"] == 'Back-off pulling image "example.com/nope:1"'
    events = sandbox.request("GET", f"/api/v1/namespaces/{namespace}/events")["items"]
    messages = [e["message"] for e in events]
    assert any(
        'Failed to pull image "example.com/nope:1": sandbox image map has no entry' in m
        for m in messages
    ), messages
    assert get_pod(sandbox, namespace, "noimg")["status"]["phase"] == "Pending"


def test_command_not_found_and_exit_codes(sandbox: SandboxCluster, namespace: str) -> None:
    create(sandbox, namespace, pod_manifest("nocmd", ["no-such-command-xyz"]))
    create(
        sandbox,
        namespace,
        pod_manifest(
            "exit3",
            [PY, "-c", "import sys; print('bye'); sys.exit(3)"],
            terminationMessagePolicy="FallbackToLogsOnError",
        ),
    )
    pod = wait_for(phase_is(sandbox, namespace, "nocmd", "Failed"), 10)
    term = state(pod)["terminated"]
    assert term["reason"] == "StartError"
    assert 'exec: "no-such-command-xyz": executable file not found in $PATH' in term["message"]
    pod = wait_for(phase_is(sandbox, namespace, "exit3", "Failed"), 10)
    term = state(pod)["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")
    assert term["message"] == "bye\n"  # FallbackToLogsOnError
    assert term["startedAt"] and term["finishedAt"]
    ready = {c["type"]: c for c in pod["status"]["conditions"]}["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "PodCompleted"
    assert sandbox_logs(sandbox, namespace, "exit3").strip() == "bye"


def test_restart_policy_on_failure_backs_off(sandbox: SandboxCluster, namespace: str) -> None:
    create(
        sandbox,
        namespace,
        pod_manifest(
            "crashy", [PY, "-c", "print('boom'); raise SystemExit(1)"], restart_policy="OnFailure"
        ),
    )

    def crash_loop() -> Any:
        pod = get_pod(sandbox, namespace, "crashy")
        statuses = pod["status"].get("containerStatuses") or [{}]
        waiting = statuses[0].get("state", {}).get("waiting", {})
        return pod if waiting.get("reason") == "CrashLoopBackOff" else None

    pod = wait_for(crash_loop, 15)
    status = pod["status"]["containerStatuses"][0]
    assert status["restartCount"] >= 1
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert pod["status"]["phase"] == "Running"
    assert "back-off 10s restarting failed container=main" in status["state"]["waiting"]["message"]
    assert sandbox_logs(sandbox, namespace, "crashy", "?previous=true").strip() == "boom"


@pytest.mark.skipif(os.geteuid() != 0, reason="runAsUser needs the sandbox to run as root")
def test_run_as_user(sandbox: SandboxCluster, namespace: str) -> None:
    script = (
        "import os, tempfile\n"
        "home = os.environ['HOME']\n"
        "open(os.path.join(home, 'w'), 'w').write('x')\n"
        "tempfile.mkstemp()\n"
        "print(os.getuid(), os.getgid(), os.stat(home).st_uid)\n"
    )
    manifest = pod_manifest("nonroot", [PY, "-c", script])
    manifest["spec"]["securityContext"] = {
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "runAsNonRoot": True,
    }
    create(sandbox, namespace, manifest)
    pod = wait_for(phase_is(sandbox, namespace, "nonroot", "Succeeded", "Failed"), 15)
    logs = sandbox_logs(sandbox, namespace, "nonroot")
    assert pod["status"]["phase"] == "Succeeded", logs
    assert logs.split() == ["1000", "1000", "1000"]


@pytest.mark.skipif(os.geteuid() != 0, reason="runAsUser needs the sandbox to run as root")
def test_kernel_image_runs_as_non_root_from_the_kernel_venv(
    sandbox: SandboxCluster, namespace: str, kernel_venv_bin: Any
) -> None:
    script = "import os, sys; print(os.getuid(), sys.prefix)"
    manifest = pod_manifest("kpy", ["python", "-c", script], image="elastic-jupyter/kernel-py:dev")
    manifest["spec"]["securityContext"] = {"runAsUser": 1000, "runAsGroup": 100}
    create(sandbox, namespace, manifest)
    pod = wait_for(phase_is(sandbox, namespace, "kpy", "Succeeded", "Failed"), 20)
    logs = sandbox_logs(sandbox, namespace, "kpy")
    assert pod["status"]["phase"] == "Succeeded", (logs, pod["status"])
    uid, prefix = logs.split()
    assert uid == "1000" and prefix == str(kernel_venv_bin.parent)


def test_run_as_non_root_without_user_is_refused(sandbox: SandboxCluster, namespace: str) -> None:
    manifest = pod_manifest("rootish", ["true"])
    manifest["spec"]["securityContext"] = {"runAsNonRoot": True}
    create(sandbox, namespace, manifest)

    def refused() -> Any:
        statuses = get_pod(sandbox, namespace, "rootish")["status"].get("containerStatuses") or [{}]
        waiting = statuses[0].get("state", {}).get("waiting", {})
        return waiting if waiting.get("reason") == "CreateContainerConfigError" else None

    assert (
        "container has runAsNonRoot and image will run as root" in wait_for(refused, 10)["message"]
    )


def test_two_pods_listen_on_the_same_port_with_readiness(
    sandbox: SandboxCluster, namespace: str
) -> None:
    for name in ("web-a", "web-b"):
        manifest = pod_manifest(
            name,
            [PY, "-m", "http.server", "8888", "--bind", "$(POD_IP)", "--directory", "$(HOME)"],
            env=[
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "HOME", "value": "/srv"},
            ],
            ports=[{"name": "http", "containerPort": 8888}],
            readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
            volumeMounts=[{"name": "srv", "mountPath": "/srv"}],
        )
        manifest["spec"]["volumes"] = [{"name": "srv", "emptyDir": {}}]
        create(sandbox, namespace, manifest)

    def ready(name: str) -> Callable[[], Any]:
        def check() -> Any:
            pod = get_pod(sandbox, namespace, name)
            conds = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
            return pod if conds.get("Ready") == "True" else None

        return check

    ips = {wait_for(ready(name), 20)["status"]["podIP"] for name in ("web-a", "web-b")}
    assert len(ips) == 2
    for ip in ips:
        with urllib.request.urlopen(f"http://{ip}:8888/", timeout=5) as resp:
            assert resp.status == 200


def test_logs_tail_lines(sandbox: SandboxCluster, namespace: str) -> None:
    create(sandbox, namespace, pod_manifest("lines", [PY, "-c", "print('a\\nb\\nc')"]))
    wait_for(phase_is(sandbox, namespace, "lines", "Succeeded"), 10)
    assert sandbox_logs(sandbox, namespace, "lines", "?tailLines=2") == "b\nc\n"
    assert sys.executable  # the test process itself is never a pod


@pytest.mark.kubectl
def test_logs_follow_streams_until_the_container_exits(
    sandbox: SandboxCluster, namespace: str, kubectl: Callable[..., Any]
) -> None:
    script = "import time\nfor i in range(3):\n    print(i, flush=True); time.sleep(0.3)\n"
    create(sandbox, namespace, pod_manifest("ticker", [PY, "-c", script]))
    wait_for(phase_is(sandbox, namespace, "ticker", "Running", "Succeeded"), 10)
    followed = kubectl("logs", "-f", "-n", namespace, "ticker", timeout=30).stdout
    assert followed.split() == ["0", "1", "2"]


def test_init_containers_run_first(sandbox: SandboxCluster, namespace: str) -> None:
    manifest = pod_manifest(
        "inits",
        [PY, "-c", "print(open('/work/seed').read())"],
        volumeMounts=[{"name": "work", "mountPath": "/work"}],
    )
    manifest["spec"]["initContainers"] = [
        {
            "name": "seed",
            "image": "python:3.11",
            "command": [PY, "-c", "open('/work/seed', 'w').write('seeded')"],
            "volumeMounts": [{"name": "work", "mountPath": "/work"}],
        }
    ]
    manifest["spec"]["volumes"] = [{"name": "work", "emptyDir": {}}]
    create(sandbox, namespace, manifest)
    pod = wait_for(phase_is(sandbox, namespace, "inits", "Succeeded", "Failed"), 15)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert sandbox_logs(sandbox, namespace, "inits").strip() == "seeded"
    init = pod["status"]["initContainerStatuses"][0]
    assert init["state"]["terminated"]["reason"] == "Completed"
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["Initialized"] == "True"

    failing = pod_manifest("badinit", ["true"])
    failing["spec"]["initContainers"] = [
        {"name": "fail", "image": "python:3.11", "command": ["false"]}
    ]
    create(sandbox, namespace, failing)
    pod = wait_for(phase_is(sandbox, namespace, "badinit", "Failed"), 15)
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"


def test_active_deadline_fails_the_pod(sandbox: SandboxCluster, namespace: str) -> None:
    manifest = pod_manifest("deadline", [PY, "-c", "import time; time.sleep(600)"])
    manifest["spec"]["activeDeadlineSeconds"] = 1
    create(sandbox, namespace, manifest)
    pod = wait_for(phase_is(sandbox, namespace, "deadline", "Failed"), 15)
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert "terminated" in state(pod)
