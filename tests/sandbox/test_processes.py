"""Starting and reaping container processes (the kubelet's fast spawn path) and the scheduler's
incremental per-node accounting."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter.sandbox import processes
from elastic_jupyter.sandbox.processes import exec_failure, setpriv_argv, spawn
from elastic_jupyter.sandbox.scheduler import Scheduler, fit_failures, fit_failures_used


def test_setpriv_argv_sets_the_same_credentials_as_subprocess() -> None:
    cmd = ["/bin/sleep", "1"]
    assert setpriv_argv("sp", cmd) == ["sp", "--pdeathsig", "TERM", "--", *cmd]
    assert setpriv_argv("sp", cmd, 1000, 100, [5, 6]) == [
        "sp", "--pdeathsig", "TERM", "--regid", "100", "--reuid", "1000", "--groups", "5,6",
        "--", *cmd,
    ]  # fmt: skip
    assert setpriv_argv("sp", cmd, 1000, 0)[-5:] == ["1000", "--clear-groups", "--", *cmd]
    assert setpriv_argv("sp", cmd, None, 7)[3:] == ["--regid", "7", "--keep-groups", "--", *cmd]


@pytest.fixture(params=["setpriv", "fork"])
def spawn_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The spawn tests run on both paths: through setpriv, and the fallback without it."""
    if request.param == "fork":
        monkeypatch.setattr(processes, "SETPRIV", None)
    elif processes.SETPRIV is None:
        pytest.skip("setpriv is not installed")
    return str(request.param)


def _run(argv: list[str], tmp_path: Path, **kwargs: Any) -> tuple[int, int, bytes]:
    log = tmp_path / "out.log"

    async def main() -> tuple[int, int]:
        with log.open("ab") as out:
            proc = spawn(argv, stdout=out, cwd=str(tmp_path), env={"X": "42"}, **kwargs)
        return proc.pid, await asyncio.wait_for(proc.wait(), 20)

    pid, code = asyncio.run(main())
    return pid, code, log.read_bytes()


@pytest.mark.usefixtures("spawn_path")
def test_spawn_runs_in_its_own_session_and_reports_the_exit_code(tmp_path: Path) -> None:
    script = "import os; print(os.environ['X'], os.getsid(0) == os.getpid(), os.getcwd()); exit(3)"
    _, code, out = _run([sys.executable, "-c", script], tmp_path)
    assert code == 3
    assert out.decode().split() == ["42", "True", str(tmp_path)]


@pytest.mark.usefixtures("spawn_path")
def test_spawn_reports_a_signal_as_a_negative_code(tmp_path: Path) -> None:
    _, code, _ = _run([sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"], tmp_path)
    assert code == -signal.SIGKILL


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
@pytest.mark.usefixtures("spawn_path")
def test_spawn_switches_user_and_groups(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    # /bin/sh, not this interpreter: it may live where uid 1000 cannot enter (pyenv in /root).
    sh = shutil.which("sh") or "/bin/sh"
    _, code, out = _run(
        [sh, "-c", "echo $(id -u) $(id -g) $(id -G)"], tmp_path, uid=1000, gid=100, groups=[5, 6]
    )
    assert code == 0, out
    uid, gid, *groups = out.decode().split()
    assert (uid, gid, sorted(groups)) == ("1000", "100", ["100", "5", "6"])


def test_exec_failure_is_told_apart_from_the_program_exiting(
    tmp_path: Path, spawn_path: str
) -> None:
    if spawn_path == "fork":
        with pytest.raises(PermissionError):  # without setpriv, Popen raises it at once
            _run([str(tmp_path)], tmp_path)
        return
    not_executable = tmp_path / "data.txt"
    not_executable.write_text("hello\n")
    not_executable.chmod(0o644)
    _, code, _ = _run([str(not_executable)], tmp_path)
    assert code == 126
    assert exec_failure(tmp_path / "out.log", code) == "permission denied"
    assert (tmp_path / "out.log").read_bytes() == b""  # the runtime's line is not the log's

    log = tmp_path / "program.log"
    log.write_bytes(b"line\nsetpriv: something else\n")
    assert exec_failure(log, 127) is None
    assert exec_failure(log, 1) is None
    assert log.read_bytes() == b"line\nsetpriv: something else\n"


# --- scheduler accounting ------------------------------------------------------------------------

NODE = {
    "metadata": {"name": "n1"},
    "spec": {},
    "status": {
        "allocatable": {"cpu": "2", "pods": "3", "nvidia.com/gpu": "2"},
        "conditions": [{"type": "Ready", "status": "True"}],
    },
}


def _pod(uid: str, node: str = "", phase: str = "Pending", gpus: int = 1) -> dict[str, Any]:
    container = {"name": "c", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
    return {
        "metadata": {"name": f"p-{uid}", "namespace": "ns", "uid": uid},
        "spec": {"containers": [container], "nodeName": node},
        "status": {"phase": phase},
    }


def test_fit_failures_used_matches_summing_the_pods() -> None:
    others = [_pod("a"), _pod("b")]
    assert fit_failures(_pod("c"), NODE, others) == fit_failures_used(
        _pod("c"), NODE, 2, {"nvidia.com/gpu": Fraction(2)}
    )
    assert fit_failures(_pod("c"), NODE, others)[0] == ["Insufficient nvidia.com/gpu"]


def test_scheduler_keeps_per_node_usage_through_pod_events() -> None:
    async def main() -> None:
        sched = Scheduler("http://127.0.0.1:1")
        sched.assumed["a"] = ("n1", _pod("a"))
        sched._account("a", _pod("a"))
        assert sched._node_pods["n1"] == 1
        assert sched._node_used["n1"]["nvidia.com/gpu"] == 1
        # The watch shows the binding: still counted once.
        await sched._on_pod("MODIFIED", _pod("a", "n1"), _pod("a"))
        await sched._on_pod("ADDED", _pod("b", "n1", "Running"), None)
        assert "a" not in sched.assumed
        assert sched._node_pods["n1"] == 2
        assert sched._node_used["n1"]["nvidia.com/gpu"] == 2
        # A terminated pod frees its resources; a deleted one too.
        await sched._on_pod("MODIFIED", _pod("a", "n1", "Succeeded"), _pod("a", "n1", "Running"))
        assert sched._node_pods["n1"] == 1
        await sched._on_pod("DELETED", _pod("b", "n1", "Running"), _pod("b", "n1", "Running"))
        assert sched._node_pods.get("n1", 0) == 0
        assert sched._node_used["n1"]["nvidia.com/gpu"] == 0
        # Replaced under the same name while relisting: the old uid is forgotten.
        await sched._on_pod("ADDED", _pod("c", "n1", "Running"), None)
        newer = _pod("d", "n1", "Running")
        newer["metadata"]["name"] = "p-c"
        await sched._on_pod("MODIFIED", newer, _pod("c", "n1", "Running"))
        assert set(sched._placed) == {"d"}
        assert sched._node_pods["n1"] == 1
        await sched.stop()

    asyncio.run(main())
