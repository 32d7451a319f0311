"""The kubelet's podman runtime: a pod whose image is built locally runs in it (podman).

The image is ``elastic-jupyter/kernel-py:dev``, built by ``make images`` (the tests build it
when missing, see tests/images/podman.py). A sandbox of its own runs with
``--container-runtime podman``. Checked from the outside, through the API and kubectl: the
container runs the image's Python as the pod's ``runAsUser``, binds the pod's own 127.x IP,
sees its env (a Secret's value too) and its ConfigMap volume at the mount path; its output is
the pod's log; the pod succeeds; deleting a running pod removes its container. An image that is
neither local nor mapped still fails as an unpullable image. The containers of a sandbox killed
with SIGKILL are removed by the next sandbox started with podman, and only those.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter.sandbox.cluster import SandboxCluster
from elastic_jupyter.sandbox.imagemap import ImageRule, parse_rules
from elastic_jupyter.sandbox.podips import POD_CIDR
from elastic_jupyter.sandbox.podman_runtime import (
    POD_UID_LABEL,
    PodmanRuntime,
    podman_run,
)
from tests.helpers import pod_manifest, wait_for
from tests.images.podman import BUILD_TIMEOUT, build_images, image_ref, podman, require_podman

IMAGE = image_ref("kernel-py")
PROGRAM = """
import json, os, socket, sys
sock = socket.socket()
sock.bind((os.environ["POD_IP"], 0))
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "prefix": sys.prefix,
    "config": open("/etc/app/greeting").read(), "secret": os.environ["TOKEN"],
    "bound": sock.getsockname()[0], "cwd": os.getcwd(),
}), flush=True)
"""


def test_podman_run_command_line() -> None:
    """Pure: pod spec → podman run (no values of env on the command line)."""
    spec = {
        "name": "main",
        "image": "ghcr.io/x/kernel-py:1",
        "command": ["run-$(WHO)"],
        "args": ["--at", "$(WHO)"],
        "workingDir": "/work",
        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app", "readOnly": True}],
    }
    rule = ImageRule("r", (), env={"KERNEL_BIND_IP": "$(POD_IP)", "VIRTUAL_ENV": "/host/venv"})
    rule = ImageRule("r", (), env=rule.env, runtime="podman", image="elastic-jupyter/kernel-py:dev")
    launch = podman_run(
        PodmanRuntime(podman="podman", containers_conf=None),
        name="c1",
        pod_uid="uid-1",
        pod_ip="127.64.0.9",
        spec=spec,
        rule=rule,
        declared=[("WHO", "me"), ("TOKEN", "s3cret")],
        markers={"SANDBOX_POD_UID": "uid-1"},
        mounts={"/etc/app": "/state/pods/p/volumes/cfg"},
        user=(1000, 100, [2000]),
        kubeconfig=None,
    )
    argv = launch.argv
    assert argv[:2] == ["podman", "run"]
    assert "--network=host" in argv and "--pull=never" in argv
    assert f"--label={POD_UID_LABEL}=uid-1" in argv
    assert "--user=1000:100" in argv and "--group-add=2000" in argv
    assert "--volume=/state/pods/p/volumes/cfg:/etc/app:ro" in argv
    assert "--workdir=/work" in argv
    assert '--entrypoint=["run-me"]' in argv
    assert argv[-3:] == ["elastic-jupyter/kernel-py:dev", "--at", "me"]
    assert not any("s3cret" in word for word in argv)  # values travel in the environment
    assert "--env=TOKEN" in argv and launch.env["TOKEN"] == "s3cret"
    assert launch.env["KERNEL_BIND_IP"] == "127.64.0.9"
    assert "--env=VIRTUAL_ENV" not in argv  # a host path means nothing in the image


def test_image_map_runtime_field() -> None:
    presets = {"kernel": ImageRule("default:kernel", ("*kernel*",), env={"A": "1"})}
    rules = parse_rules(
        [{"match": "k*", "use": "kernel", "runtime": "podman", "image": "local/k:dev"}],
        presets,
        source="map.yaml",
    )
    assert (rules[0].runtime, rules[0].image, rules[0].env) == ("podman", "local/k:dev", {"A": "1"})
    with pytest.raises(ValueError, match=r"map.yaml: images\[0\].runtime: 'docker'"):
        parse_rules([{"match": "k*", "runtime": "docker"}], presets, source="map.yaml")


@pytest.fixture(scope="module")
def podman_sandbox() -> Iterator[SandboxCluster]:
    require_podman()
    build_images("kernel-py")
    with SandboxCluster(apply_crds=False, extra_args=["--container-runtime", "podman"]) as cluster:
        yield cluster


def pod_containers(pod_uid: str) -> list[dict[str, Any]]:
    out = podman("ps", "--all", "--format=json", "--filter", f"label={POD_UID_LABEL}={pod_uid}")
    found: list[dict[str, Any]] = json.loads(out or "[]")
    return found


def get_pod(sandbox: SandboxCluster, ns: str, name: str) -> dict[str, Any]:
    pod: dict[str, Any] = sandbox.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    return pod


@pytest.mark.slow
@pytest.mark.kubectl
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_local_image_runs_in_podman_with_the_pods_ip_env_volumes_and_user(
    podman_sandbox: SandboxCluster, tmp_path: Path
) -> None:
    sandbox = podman_sandbox
    ns = "podman-pods"
    sandbox.create_namespace(ns)
    try:
        sandbox.request(
            "POST",
            f"/api/v1/namespaces/{ns}/configmaps",
            {"metadata": {"name": "cfg"}, "data": {"greeting": "hello from a ConfigMap"}},
        )
        sandbox.request(
            "POST",
            f"/api/v1/namespaces/{ns}/secrets",
            {"metadata": {"name": "tok"}, "stringData": {"token": "s3cret"}},
        )
        manifest = pod_manifest(
            "in-image",
            ["python", "-c", PROGRAM],
            image=IMAGE,
            env=[
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {
                    "name": "TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "tok", "key": "token"}},
                },
            ],
            volumeMounts=[{"name": "cfg", "mountPath": "/etc/app", "readOnly": True}],
        )
        manifest["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "cfg"}}]
        manifest["spec"]["securityContext"] = {"runAsUser": 4321, "runAsGroup": 100}
        sandbox.request("POST", f"/api/v1/namespaces/{ns}/pods", manifest)

        def succeeded() -> dict[str, Any] | None:
            pod = get_pod(sandbox, ns, "in-image")
            phase = pod.get("status", {}).get("phase")
            assert phase != "Failed", json.dumps(pod.get("status"), indent=1)
            return pod if phase == "Succeeded" else None

        pod = wait_for(succeeded, timeout=120, interval=0.5)
        pod_ip = pod["status"]["podIP"]
        assert ipaddress.ip_address(pod_ip) in POD_CIDR
        log = sandbox.kubectl("logs", "-n", ns, "in-image").stdout
        seen = json.loads(log.strip().splitlines()[-1])
        assert seen == {
            "uid": 4321,
            "gid": 100,
            "prefix": "/opt/venv",  # the image's venv, not a host one
            "config": "hello from a ConfigMap",
            "secret": "s3cret",
            "bound": pod_ip,
            "cwd": "/home/jovyan",  # the image's WORKDIR
        }

        # A running pod, deleted: its container is stopped and removed.
        sleeper = pod_manifest("sleeper", ["sleep", "600"], image=IMAGE)
        sandbox.request("POST", f"/api/v1/namespaces/{ns}/pods", sleeper)
        running = wait_for(
            lambda: (
                get_pod(sandbox, ns, "sleeper")
                if get_pod(sandbox, ns, "sleeper").get("status", {}).get("phase") == "Running"
                else None
            ),
            timeout=120,
            interval=0.5,
        )
        uid = running["metadata"]["uid"]
        wait_for(lambda: pod_containers(uid), timeout=30, message="the sleeper's container")
        sandbox.kubectl("delete", "pod", "-n", ns, "sleeper", "--wait=true")
        wait_for(lambda: pod_containers(uid) == [], timeout=30, message="container removal")

        # Neither local nor in the image map: still an image that cannot be pulled.
        missing = pod_manifest("missing", ["true"], image="example.invalid/nothing:1")
        sandbox.request("POST", f"/api/v1/namespaces/{ns}/pods", missing)

        def pull_failed() -> bool:
            statuses = get_pod(sandbox, ns, "missing").get("status", {}).get("containerStatuses")
            reason = ((statuses or [{}])[0].get("state", {}).get("waiting") or {}).get("reason")
            return reason in ("ErrImagePull", "ImagePullBackOff")

        wait_for(pull_failed, timeout=30, message="ErrImagePull")
    finally:
        sandbox.delete_namespace(ns)


def running_pod(sandbox: SandboxCluster, ns: str, name: str) -> dict[str, Any] | None:
    pod = get_pod(sandbox, ns, name)
    return pod if pod.get("status", {}).get("phase") == "Running" else None


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_containers_of_a_killed_sandbox_are_removed_by_the_next(
    podman_sandbox: SandboxCluster,
) -> None:
    """kill -9 of the sandbox leaves podman's containers running; the next sandbox sweeps them."""
    victim = SandboxCluster(apply_crds=False, extra_args=["--container-runtime", "podman"])
    victim.start()
    try:
        victim.create_namespace("doomed")
        victim.request(
            "POST",
            "/api/v1/namespaces/doomed/pods",
            pod_manifest("sleeper", ["sleep", "600"], image=IMAGE),
        )
        pod = wait_for(lambda: running_pod(victim, "doomed", "sleeper"), timeout=120, interval=0.5)
        uid = pod["metadata"]["uid"]
        wait_for(lambda: pod_containers(uid), timeout=30, message="the sleeper's container")
        assert victim.process is not None
        os.killpg(victim.process.pid, signal.SIGKILL)  # the sandbox and its podman clients
        victim.process.wait(10)
        assert [c["State"] for c in pod_containers(uid)] == ["running"]  # conmon keeps it
        # The module's sandbox is alive: its containers are not orphans.
        other = pod_manifest("keeper", ["sleep", "600"], image=IMAGE)
        podman_sandbox.create_namespace("keep")
        podman_sandbox.request("POST", "/api/v1/namespaces/keep/pods", other)
        kept = wait_for(
            lambda: running_pod(podman_sandbox, "keep", "keeper"), timeout=120, interval=0.5
        )
        with SandboxCluster(apply_crds=False, extra_args=["--container-runtime", "podman"]):
            assert pod_containers(uid) == []
            assert len(pod_containers(kept["metadata"]["uid"])) == 1
    finally:
        victim.stop()
        podman_sandbox.delete_namespace("keep")
