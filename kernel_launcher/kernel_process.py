"""The kernel as a child process: spawn it, relay signals to it, wait for it, report its exit.

``launcher.py`` creates one ``Supervisor`` per launch. The supervisor owns the launcher's two
children — the kernel (in its own session and process group, so a signal to the group reaches
the kernel and whatever it started, and never the launcher) and the comm listener — and the
launcher's signal handling:

* SIGTERM / SIGHUP (pod deletion, ``kubectl delete``): SIGTERM to the kernel's group, SIGKILL
  after the stop timeout; the launcher exits when the kernel has.
* SIGINT, SIGUSR1, SIGUSR2, SIGQUIT: forwarded to the kernel's group unchanged (SIGINT from a
  terminal becomes a kernel interrupt).
* The kernel exits: the listener is stopped and the launcher exits with the kernel's exit code
  (``128 + N`` when signal N killed it, the shell's convention, which Kubernetes reports too),
  so the pod's phase tells the truth.
* The listener exits with ``listener.EXIT_SHUTDOWN``: the comm port asked for shutdown, so the
  kernel is stopped as for SIGTERM.

Signals are handled without threads: the handlers only queue the signal number and
``signal.set_wakeup_fd`` wakes the ``select`` in ``poll``. As PID 1 of a container the
launcher also reaps orphaned grandchildren (``waitpid(-1)``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import signal
import socket
import subprocess
import time
from types import FrameType
from typing import Callable

from . import listener
from .errors import EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, LauncherError

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 5.0
#: Signals that mean "stop": relayed as SIGTERM, escalated to SIGKILL.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
#: Signals relayed to the kernel's process group as they are.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT)
#: A listener that crashes is restarted this many times before the launcher gives up on it.
MAX_LISTENER_RESTARTS = 3


def exit_code_of(status: int) -> int:
    """Turn a ``waitpid`` status into a process exit code (signal N → 128 + N)."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def spawn_kernel(
    argv: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = (), cwd: str | None = None
) -> subprocess.Popen[bytes]:
    """Start the kernel in a new session (its own process group); raise LauncherError if argv[0]
    cannot be executed. ``pass_fds`` and ``cwd``: a warm-pool kernel's pipes and directory."""
    try:
        return subprocess.Popen(
            argv, env=env, start_new_session=True, close_fds=True, pass_fds=pass_fds, cwd=cwd
        )
    except FileNotFoundError:
        raise LauncherError(
            f"kernel command not found: {argv[0]!r}; install the kernel in the image or fix the "
            "kernel argv (KERNEL_ARGV or the arguments after --)",
            EXIT_NOT_FOUND,
        ) from None
    except PermissionError:
        raise LauncherError(
            f"kernel command {argv[0]!r} is not executable; fix its permissions (chmod +x) or the "
            "kernel argv (KERNEL_ARGV or the arguments after --)",
            EXIT_NOT_EXECUTABLE,
        ) from None


class Supervisor:
    """Owns the kernel and listener processes and the launcher's signal handling."""

    def __init__(self, stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        self.stop_timeout = stop_timeout
        self.kernel: subprocess.Popen[bytes] | None = None
        self.kernel_status: int | None = None
        self.listener_pid: int | None = None
        self._comm_socket: socket.socket | None = None
        self._comm_key = ""
        self._listener_restarts = 0
        self._stop_reason: str | None = None
        self._kill_deadline: float | None = None
        self._pending: list[int] = []
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._old_wakeup_fd = signal.set_wakeup_fd(self._wake_w)
        self._old_handlers: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
        for signum in (*STOP_SIGNALS, *FORWARDED_SIGNALS, signal.SIGCHLD):
            self._old_handlers[signum] = signal.signal(signum, self._on_signal)

    # --- setup ---------------------------------------------------------------------------------

    def start_kernel(
        self,
        argv: list[str],
        env: dict[str, str],
        pass_fds: tuple[int, ...] = (),
        cwd: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Spawn the kernel (see ``spawn_kernel``) and supervise it."""
        self.kernel = spawn_kernel(argv, env, pass_fds, cwd)
        log.info("kernel started, pid %d: %s", self.kernel.pid, " ".join(argv))
        return self.kernel

    def start_listener(self, comm_socket: socket.socket, key: str) -> None:
        """Fork the comm-port listener for the running kernel's process group; ``key`` (the
        connection key) authenticates its requests."""
        assert self.kernel is not None
        self._comm_socket = comm_socket
        self._comm_key = key
        self.listener_pid = listener.start_listener(
            comm_socket, self.kernel.pid, [self._wake_r, self._wake_w], key
        )

    # --- signals and children ------------------------------------------------------------------

    @property
    def wake_fd(self) -> int:
        """Readable when a signal arrived: a caller's own ``select`` includes it, then polls."""
        return self._wake_r

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs between bytecodes of the main thread: only queue, act in poll().
        self._pending.append(signum)

    def signal_kernel(self, signum: int) -> None:
        """Send ``signum`` to the kernel's process group, if it still runs."""
        if self.kernel is None or self.kernel_status is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.kernel.pid, signum)

    def stop(self, reason: str) -> None:
        """Ask the kernel to stop (SIGTERM to its group); SIGKILL follows after the timeout."""
        if self._stop_reason is not None:
            return
        self._stop_reason = reason
        if self.kernel is None or self.kernel_status is not None:
            return
        log.info("stopping the kernel: %s", reason)
        self.signal_kernel(signal.SIGTERM)
        self._kill_deadline = time.monotonic() + self.stop_timeout

    @property
    def stopping(self) -> bool:
        """True once a stop was requested (signal, comm-port shutdown or a launcher error)."""
        return self._stop_reason is not None

    @property
    def kernel_exited(self) -> bool:
        """True once the kernel process has been reaped."""
        return self.kernel_status is not None

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.kernel is not None and pid == self.kernel.pid:
                self.kernel_status = exit_code_of(status)
                self.kernel.returncode = self.kernel_status  # keep Popen from waiting again
                log.info("kernel exited with code %d", self.kernel_status)
            elif pid == self.listener_pid:
                self.listener_pid = None
                self._on_listener_exit(os.waitstatus_to_exitcode(status))
            else:
                log.debug("reaped orphaned process %d", pid)

    def _on_listener_exit(self, code: int) -> None:
        if code == listener.EXIT_SHUTDOWN:
            self.stop("shutdown requested through the comm port")
            return
        if self.kernel_exited or self.stopping or self._comm_socket is None:
            return
        if self._listener_restarts >= MAX_LISTENER_RESTARTS:
            log.error("comm port listener keeps failing (exit %d); interrupts will not work", code)
            return
        self._listener_restarts += 1
        log.error("comm port listener ended unexpectedly (exit %d); restarting it", code)
        self.start_listener(self._comm_socket, self._comm_key)

    def poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a signal or a child's exit, then act on it."""
        if not self._pending:
            select.select([self._wake_r], [], [], max(0.0, timeout))
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass
        pending, self._pending = self._pending, []
        for signum in pending:
            if signum in STOP_SIGNALS:
                self.stop(f"received {signal.Signals(signum).name}")
            elif signum in FORWARDED_SIGNALS:
                log.info("forwarding %s to the kernel", signal.Signals(signum).name)
                self.signal_kernel(signum)
        self._reap()
        if (
            self._kill_deadline is not None
            and not self.kernel_exited
            and time.monotonic() >= self._kill_deadline
        ):
            log.warning("kernel ignored SIGTERM for %gs; sending SIGKILL", self.stop_timeout)
            self.signal_kernel(signal.SIGKILL)
            self._kill_deadline = None

    def _next_timeout(self, limit: float) -> float:
        if self._kill_deadline is None:
            return limit
        return min(limit, self._kill_deadline - time.monotonic())

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` while supervising; True when the launch must not go on.

        Passed to ``payload.deliver`` as its backoff sleep.
        """
        deadline = time.monotonic() + seconds
        while not (self.kernel_exited or self.stopping):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.poll(self._next_timeout(remaining))
        return True

    def run(self) -> int:
        """Supervise until the kernel has exited; return the launcher's exit code (the kernel's)."""
        while not self.kernel_exited:
            self.poll(self._next_timeout(3600.0))
        self.close()
        assert self.kernel_status is not None
        return self.kernel_status

    def close(self) -> None:
        """Stop the kernel and the listener if they still run; restore signal handling.

        Called by ``run`` once the kernel has exited, and by the launcher on errors; a second
        call does nothing.
        """
        if self._closed:
            return
        if self.kernel is not None and not self.kernel_exited:
            self.stop("the launcher is exiting")
            while not self.kernel_exited:
                self.poll(self._next_timeout(1.0))
        if self.kernel is not None:
            # Whatever the kernel started in its group must not outlive it.
            with contextlib.suppress(OSError):
                os.killpg(self.kernel.pid, signal.SIGTERM)
        if self.listener_pid is not None:
            pid, self.listener_pid = self.listener_pid, None
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except OSError as exc:
                if exc.errno not in (errno.ESRCH, errno.ECHILD):
                    raise
        self._closed = True
        for signum, handler in self._old_handlers.items():
            if handler is not None:  # None: installed outside Python, cannot be restored
                signal.signal(signum, handler)
        self._old_handlers = {}
        signal.set_wakeup_fd(self._old_wakeup_fd)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
