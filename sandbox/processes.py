"""Finding every process of a sandbox container, even those that left its process group.

A node kills a container by tearing down its cgroup and PID namespace: nothing survives. The
sandbox kubelet (:mod:`.kubelet`) runs a container as a process group, but programs may start
children in sessions of their own (the kernel launcher starts each kernel with
``start_new_session=True``), which a group kill misses. So every container process is started
with two marker variables in its environment, inherited by all its descendants:

* ``SANDBOX_POD_UID`` - the pod's uid;
* ``SANDBOX_CONTAINER`` - ``<pod uid>/<container name>/<restart count>`` (one container run).

When a container exits, or its pod is deleted, the kubelet SIGKILLs every process whose initial
environment carries the marker (read from ``/proc/<pid>/environ``; the kubelet runs as root so
it can read them all). Only a process that wipes its environment at exec escapes.

Starting a container is :func:`spawn`. It must not stall the sandbox's event loop: CPython forks
a copy of the whole (large, many-threaded) sandbox process and waits for the child's ``exec``
whenever ``preexec_fn``, ``user``, ``group`` or ``extra_groups`` are given, while without them it
uses ``vfork``, which costs the same however big the sandbox is. So the parent-death signal and
the switch to ``runAsUser`` are done by ``setpriv`` (util-linux), which the child execs first and
which then execs the container's command in the same process. Where ``setpriv`` is missing the
slow path is kept. The exit of a container is noticed through a pidfd on the event loop instead
of asyncio's default child watcher, which starts one thread per child.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence
from typing import IO

POD_MARKER = "SANDBOX_POD_UID"
CONTAINER_MARKER = "SANDBOX_CONTAINER"


def marked_pids(key: str, value: str) -> list[int]:
    """Processes whose environment holds ``key=value`` (never this process)."""
    needle = f"{key}={value}\0".encode()
    found = []
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = b"\0" + handle.read()
        except OSError:
            continue
        if b"\0" + needle in environ or environ.endswith(b"\0" + needle[:-1]):
            found.append(int(entry))
    return found


def kill_marked(key: str, value: str, sig: int = signal.SIGKILL) -> list[int]:
    """Signal every process carrying the marker; return their pids."""
    pids = marked_pids(key, value)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    return pids


# --- starting and reaping container processes ----------------------------------------------------

SETPRIV = shutil.which("setpriv")


def _set_parent_death_signal() -> None:
    """Runs in the child before exec (slow path only): die with the sandbox if it is killed."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def setpriv_argv(
    setpriv: str,
    argv: Sequence[str],
    uid: int | None = None,
    gid: int | None = None,
    groups: Sequence[int] = (),
) -> list[str]:
    """``argv`` run through setpriv with the parent-death signal and the given identity.

    The same credentials ``subprocess`` would set for ``user=uid, group=gid,
    extra_groups=groups``: with a uid the supplementary groups are exactly ``groups``; with only
    a gid they are kept.
    """
    opts = [setpriv, "--pdeathsig", "TERM"]
    if gid is not None:
        opts += ["--regid", str(gid)]
    if uid is not None:
        opts += ["--reuid", str(uid)]
        if groups:
            opts += ["--groups", ",".join(str(g) for g in groups)]
        else:
            opts.append("--clear-groups")
    elif gid is not None:
        opts.append("--keep-groups")
    return [*opts, "--", *argv]


class HostProcess:
    """A started container process: ``pid``, ``returncode`` (negative: killed by that signal)
    and ``await wait()``, as :class:`asyncio.subprocess.Process` offers them.
    """

    def __init__(self, popen: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.returncode: int | None = None
        self._loop = loop
        self._exited = loop.create_future()
        self._pidfd = -1
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # no pidfds (old kernel) or out of descriptors
            reaper = threading.Thread(target=self._wait_blocking, name=f"reap {self.pid}")
            reaper.daemon = True
            reaper.start()
            return
        loop.add_reader(self._pidfd, self._reap)

    def _finish(self, status: int) -> None:
        if self._exited.done():
            return
        code = os.waitstatus_to_exitcode(status)
        self.returncode = code
        # Tell the Popen object, so that neither it nor subprocess's reaping of abandoned
        # children waits for this pid again.
        self._popen.returncode = code
        self._exited.set_result(code)

    def _reap(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 255 << 8  # reaped elsewhere: the exit code is lost
        if pid == 0:
            return  # readable but not yet reapable: wait for the next wake-up
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = -1
        self._finish(status)

    def _wait_blocking(self) -> None:
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            status = 255 << 8
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._finish, status)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


def spawn(
    argv: Sequence[str],
    *,
    stdout: IO[bytes],
    cwd: str,
    env: dict[str, str],
    uid: int | None = None,
    gid: int | None = None,
    groups: Sequence[int] = (),
) -> HostProcess:
    """Start ``argv`` (``argv[0]`` a resolved path) in a new session, stdout and stderr to
    ``stdout``, dying with the sandbox; raise :class:`OSError` when it cannot be started.
    """
    loop = asyncio.get_running_loop()
    if SETPRIV is not None:
        popen = subprocess.Popen(
            setpriv_argv(SETPRIV, argv, uid, gid, groups),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    else:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_set_parent_death_signal,
            user=uid,
            group=gid,
            extra_groups=list(groups) if uid is not None else None,
        )
    return HostProcess(popen, loop)


_EXEC_FAILED = b"setpriv: failed to execute "


def exec_failure(log_path: os.PathLike[str] | str, code: int) -> str | None:
    """Why setpriv could not execute the container's command (None: it did), from its exit.

    setpriv exits 126 or 127 after writing ``setpriv: failed to execute <cmd>: <reason>`` as
    the last line of the container's log; that line is the runtime's, not the container's, so
    it is removed from the log and the reason returned (a ``StartError``, as exec failures are).
    """
    if SETPRIV is None or code not in (126, 127):
        return None
    try:
        with open(log_path, "rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 4096))
            tail = handle.read()
            start = tail.rfind(b"\n", 0, len(tail) - 1) + 1
            line = tail[start:]
            if not line.startswith(_EXEC_FAILED):
                return None
            handle.truncate(size - len(line))
    except OSError:
        return None
    reason = line.decode(errors="replace").strip().rsplit(": ", 1)[-1]
    return reason.lower()
