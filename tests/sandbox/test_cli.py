"""``elastic-jupyter-sandbox``: up, kubeconfig, status, and a clean stop."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from elastic_jupyter.sandbox.cluster import SandboxCluster
from elastic_jupyter.sandbox.kubeconfig import (
    NAME,
    kubeconfig_dict,
    server_url,
    token_of,
    write_kubeconfig,
)
from elastic_jupyter.sandbox.processes import POD_MARKER, marked_pids
from tests.helpers import pod_manifest, wait_for


def test_kubeconfig_names_and_url(tmp_path: Path) -> None:
    data = kubeconfig_dict("https://127.0.0.1:1234", "secret-token")
    assert data["current-context"] == NAME
    assert {c["name"] for c in data["clusters"]} == {NAME}
    path = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:1234", "secret-token")
    assert server_url(path) == "https://127.0.0.1:1234"
    assert yaml.safe_load(path.read_text())["users"][0]["name"] == NAME
    assert token_of(path) == "secret-token"
    assert path.stat().st_mode & 0o077 == 0, "a token file readable by others"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


@pytest.mark.slow  # starts a server process
def test_up_reports_status_and_stops_leaving_no_processes() -> None:
    cluster = SandboxCluster(apply_crds=False, dns=False, node_gpus=0).start()
    try:
        assert cluster.url.startswith("http://127.0.0.1:")
        assert server_url(cluster.kubeconfig) == cluster.secure_url
        assert cluster.secure_url.startswith("https://127.0.0.1:")
        cli = [sys.executable, "-m", "elastic_jupyter.sandbox"]
        state = ["--state-dir", str(cluster.state_dir)]
        shown = subprocess.run(
            [*cli, "kubeconfig", *state], capture_output=True, text=True, check=True
        )
        assert shown.stdout.strip() == str(cluster.kubeconfig)

        pods = "/api/v1/namespaces/default/pods"
        # A pod whose process starts one child in its group and one in a session of its own
        # (as the kernel launcher does): all must go when the sandbox stops.
        script = (
            "import subprocess, time\n"
            "subprocess.Popen(['sleep', '600'])\n"
            "subprocess.Popen(['sleep', '601'], start_new_session=True)\n"
            "time.sleep(600)\n"
        )
        cluster.request("POST", pods, pod_manifest("sleeper", ["python3", "-c", script]))

        def running() -> int | None:
            pod = cluster.request("GET", f"{pods}/sleeper")
            if pod["status"].get("phase") != "Running":
                return None
            return int(pod["status"]["containerStatuses"][0]["containerID"].rsplit("/", 1)[-1])

        pid = wait_for(running, 15)
        assert pid is not None
        status = subprocess.run(
            [*cli, "status", *state], capture_output=True, text=True, check=True
        )
        assert "pod default/sleeper: Running" in status.stdout
        assert "nvidia.com/gpu=0" in status.stdout
        uid = cluster.request("GET", f"{pods}/sleeper")["metadata"]["uid"]

        def children_started() -> list[int]:
            found = [p for p in marked_pids(POD_MARKER, uid) if p != pid]
            return found if len(found) == 2 else []

        children = wait_for(children_started, 10)
        assert any(_pgid(p) != pid for p in children), "one child left the pod's group"
    finally:
        cluster.stop()
    assert cluster.process is not None and cluster.process.returncode == 0
    # SIGKILLed orphans are reaped by init a moment later; zombies count as gone.
    wait_for(lambda: not any(_alive(p) for p in [pid, *children]), 5, message="pod processes gone")


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


#: A pod running as a non-root user that writes into its HOME (under the state directory), as
#: jupyter_core does for its runtime files.
WRITES_HOME = [
    "python3",
    "-c",
    "import os; open(os.path.join(os.environ['HOME'], 'x'), 'w').write('1'); print('ok')",
]


def _private_dir() -> Path:
    """What ``mktemp -d`` gives: a directory only its owner may enter (0700)."""
    directory = Path(tempfile.mkdtemp(prefix="ej-private-"))
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    return directory


@pytest.mark.slow  # starts a server process
def test_state_dir_below_a_private_directory_is_made_reachable_for_pods() -> None:
    """``up --state-dir "$(mktemp -d)/state"``: non-root pods still reach their files."""
    parent = _private_dir()
    cluster = SandboxCluster(apply_crds=False, dns=False, node_gpus=0, state_dir=parent / "state")
    try:
        cluster.start()
        pods = "/api/v1/namespaces/default/pods"
        manifest = pod_manifest(
            "non-root", WRITES_HOME, securityContext={"runAsUser": 1000, "runAsGroup": 100}
        )
        cluster.request("POST", pods, manifest)

        def finished() -> dict[str, Any] | None:
            state = cluster.request("GET", f"{pods}/non-root")["status"].get("containerStatuses")
            terminated = (state or [{}])[0].get("state", {}).get("terminated")
            return terminated if terminated else None

        terminated = wait_for(finished, 30, message="the non-root pod to finish")
        assert terminated is not None
        assert terminated["exitCode"] == 0, cluster.log_path.read_text(errors="replace")[-3000:]
        assert stat.S_IMODE(parent.stat().st_mode) == 0o701  # traverse only, never read
        log = cluster.log_path.read_text(errors="replace")
        assert f"granted traverse permission (o+x) on {parent} " in log
    finally:
        cluster.stop()
        shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.slow  # starts a server process
def test_state_dir_below_a_private_directory_is_refused_without_grants() -> None:
    """With ``--no-grant-traverse`` the sandbox refuses at once, in one line naming the
    directory and the fix, and changes nothing."""
    parent = _private_dir()
    try:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "elastic_jupyter.sandbox", "up", "--no-dns"),
                *("--no-grant-traverse", "--state-dir", str(parent / "state")),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert str(parent / "state") in lines[0] and f"chmod o+x {parent}" in lines[0]
        assert stat.S_IMODE(parent.stat().st_mode) == 0o700
        assert not (parent / "state" / "kubeconfig").exists()
    finally:
        shutil.rmtree(parent, ignore_errors=True)
