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
"""

from __future__ import annotations

import contextlib
import os
import signal

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
