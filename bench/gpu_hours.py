"""GPU-hours held by static per-notebook GPUs versus elastic kernels with idle culling.

A session trace (several users over a day: bursts of cell executions, long idle gaps, notebooks
left open overnight) is replayed through a discrete-event model of two systems:

* **static**: the classic notebook-pod model (Kubeflow notebooks, KubeSpawner profiles). A GPU
  is held from the moment the user's notebook starts until the notebook is stopped.
* **elastic**: elastic-jupyter. Every kernel is its own pod holding one GPU. A kernel starts
  when the notebook is opened and again at the first execution after it was culled (plus the
  kernel start latency); it holds its GPU until the user shuts it down or Enterprise Gateway's
  culler removes it. The culler is modelled as jupyter_server's ``MappingKernelManager`` (which
  EG 3.3 uses) really behaves: a periodic check every ``cull_interval`` seconds, started with
  the first kernel; a kernel is culled when ``now - last_activity > cull_idle_timeout`` **and**
  it is not busy (``cull_busy=False``) **and** (``cull_connected`` or no client is connected).
  ``last_activity`` is the kernel start and the end of its last execution (IOPub traffic).

Each system is replayed twice: with unlimited GPUs (how many GPU-hours the behaviour *holds*)
and on one node with ``--gpus`` GPUs (default 2, as in the sandbox), where a request that does
not fit waits first-in-first-out until a GPU frees (who would have been blocked, and how long).

Run: ``.venv/bin/python bench/gpu_hours.py`` (writes ``bench/results/gpu_hours.{json,md}``);
``.venv/bin/python bench/gpu_hours.py generate`` rewrites the default trace from its seed.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import random
import shlex
import statistics
import sys
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TRACES = HERE / "traces"
RESULTS = HERE / "results"
DEFAULT_TRACE = TRACES / "workday-8users.json"

# Cull timeouts reported by default: 10 min, 30 min, 1 h, and EG's recommended 12 h.
DEFAULT_TIMEOUTS = (600, 1800, 3600, 43200)
# The JupyterGateway's default `cullInterval` (EG's start script's too; jupyter_server's is 300).
DEFAULT_CULL_INTERVAL = 60
# Kernel start: request to a running kernel on a warm node (image cached). Published figures:
# ~2-3 s pod start on a fast cluster (kubespawner #120) + ~3 s to connection info + kernel_info
# (EG #683). Measure yours and pass --start-latency.
DEFAULT_START_LATENCY = 6.0

HOUR = 3600.0


# --- the trace ---------------------------------------------------------------------------------


@dataclass
class Session:
    """One notebook of one user: opened, used in bursts, maybe left open.

    Times are seconds from the trace's start. ``close`` is when the user stops the notebook
    (``None``: still running at the end of the trace). ``disconnect`` is when the browser tab
    stops being connected (tab closed, laptop asleep; ``None``: connected until ``close``).
    ``executions`` are ``(requested_at, duration)`` pairs, in order.
    """

    open: float
    close: float | None
    disconnect: float | None
    executions: list[tuple[float, float]]


@dataclass
class UserTrace:
    """A user and their notebooks."""

    user: str
    profile: str
    sessions: list[Session]


@dataclass
class Trace:
    """A whole replayable trace."""

    name: str
    description: str
    start_clock: str
    horizon: float
    users: list[UserTrace]


def load_trace(path: Path) -> Trace:
    """Read a trace written by :func:`dump_trace` (or by hand, same shape)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    users = [
        UserTrace(
            user=u["user"],
            profile=u.get("profile", ""),
            sessions=[
                Session(
                    open=float(s["open"]),
                    close=None if s.get("close") is None else float(s["close"]),
                    disconnect=None if s.get("disconnect") is None else float(s["disconnect"]),
                    executions=[(float(t), float(d)) for t, d in s["executions"]],
                )
                for s in u["sessions"]
            ],
        )
        for u in raw["users"]
    ]
    trace = Trace(
        name=raw["name"],
        description=raw.get("description", ""),
        start_clock=raw.get("start_clock", "00:00"),
        horizon=float(raw["horizon_s"]),
        users=users,
    )
    validate_trace(trace)
    return trace


def dump_trace(trace: Trace) -> dict[str, Any]:
    """Return the JSON-ready form of a trace."""
    return {
        "name": trace.name,
        "description": trace.description,
        "start_clock": trace.start_clock,
        "horizon_s": trace.horizon,
        "users": [
            {
                "user": u.user,
                "profile": u.profile,
                "sessions": [
                    {
                        "open": s.open,
                        "close": s.close,
                        "disconnect": s.disconnect,
                        "executions": [[round(t, 1), round(d, 1)] for t, d in s.executions],
                    }
                    for s in u.sessions
                ],
            }
            for u in trace.users
        ],
    }


def validate_trace(trace: Trace) -> None:
    """Raise ValueError when a trace is not replayable (times out of order or out of range)."""
    for u in trace.users:
        for s in u.sessions:
            end = trace.horizon if s.close is None else s.close
            if not 0 <= s.open <= end <= trace.horizon:
                raise ValueError(f"{u.user}: session open/close out of range")
            if s.disconnect is not None and not s.open <= s.disconnect <= end:
                raise ValueError(f"{u.user}: disconnect outside the session")
            previous = s.open
            for t, d in s.executions:
                if t < previous or d < 0 or t + d > end:
                    raise ValueError(f"{u.user}: execution at {t} out of order or past close")
                previous = t


# --- generating the default trace ----------------------------------------------------------------

# Work patterns: (cells per burst, think time between cells (s), cell duration (s) choices with
# weights, pause between bursts (s)).
PATTERNS: dict[str, dict[str, Any]] = {
    # data exploration: many short cells, coffee-length pauses
    "explore": {
        "cells": (4, 12),
        "think": (15, 150),
        "durations": ((0.5, 5, 0.75), (5, 60, 0.22), (60, 300, 0.03)),
        "pause": (600, 2700),
    },
    # model training: a few set-up cells then one long run, long pauses while reading results
    "train": {
        "cells": (2, 5),
        "think": (20, 120),
        "durations": ((1, 20, 0.7), (300, 2400, 0.3)),
        "pause": (1200, 5400),
    },
    # debugging a GPU kernel: quick edit-run loops
    "debug": {
        "cells": (6, 20),
        "think": (5, 60),
        "durations": ((0.2, 3, 0.85), (3, 30, 0.15)),
        "pause": (180, 900),
    },
}


def _clock(hhmm: str) -> float:
    """Seconds from 08:00 (the trace's start) for a wall-clock 'HH:MM' (next day if < 08:00)."""
    hours, minutes = (int(x) for x in hhmm.split(":"))
    seconds = (hours - 8) * HOUR + minutes * 60.0
    return seconds if seconds >= 0 else seconds + 24 * HOUR


def _duration(rng: random.Random, choices: Sequence[tuple[float, float, float]]) -> float:
    pick = rng.random()
    for low, high, weight in choices:
        if pick < weight:
            return rng.uniform(low, high)
        pick -= weight
    low, high, _ = choices[-1]
    return rng.uniform(low, high)


def _bursts(rng: random.Random, begin: float, end: float, kind: str) -> list[tuple[float, float]]:
    """Cell executions of one work block: bursts of cells separated by pauses."""
    pattern = PATTERNS[kind]
    out: list[tuple[float, float]] = []
    t = begin + rng.uniform(30, 300)
    while t < end:
        for _ in range(rng.randint(*pattern["cells"])):
            duration = _duration(rng, pattern["durations"])
            if t + duration > end:
                return out
            out.append((t, duration))
            t += duration + rng.uniform(*pattern["think"])
        t += rng.uniform(*pattern["pause"])
    return out


# user, profile, sessions: (open, close or None, disconnect or None, [(from, to, pattern)])
DAY_PLAN: list[
    tuple[str, str, list[tuple[str, str | None, str | None, list[tuple[str, str, str]]]]]
] = [
    (
        "alice",
        "trains models in the morning and afternoon; stops her notebook at 18:10",
        [("09:00", "18:10", None, [("09:05", "12:00", "train"), ("13:10", "18:00", "train")])],
    ),
    (
        "bob",
        "explores data all day; leaves the notebook running overnight (laptop asleep at 18:30)",
        [("09:30", None, "18:30", [("09:35", "12:15", "explore"), ("13:30", "18:00", "explore")])],
    ),
    (
        "carol",
        "two short sessions, stops the notebook after each",
        [
            ("10:00", "11:10", None, [("10:02", "11:05", "debug")]),
            ("14:00", "15:40", None, [("14:05", "15:35", "explore")]),
        ],
    ),
    (
        "dave",
        "opens early, starts a 2 h training run at 17:30, leaves it all running overnight",
        [("08:30", None, "19:45", [("08:35", "11:30", "explore"), ("15:00", "17:25", "debug")])],
    ),
    (
        "erin",
        "exploration with a long lunch; closes the tab at 17:00 but never stops the notebook",
        [("09:10", None, "17:00", [("09:15", "12:00", "explore"), ("14:00", "16:55", "explore")])],
    ),
    (
        "frank",
        "afternoon only, debugging a CUDA kernel; stops the notebook",
        [("13:00", "16:15", None, [("13:05", "16:10", "debug")])],
    ),
    (
        "grace",
        "opens at 09:15 and keeps the tab open until 17:30, but runs cells only twice",
        [("09:15", "17:30", None, [("11:00", "11:20", "explore"), ("16:30", "16:50", "explore")])],
    ),
    (
        "heidi",
        "evening user: 19:00 to 22:00, then stops the notebook",
        [("19:00", "22:00", None, [("19:05", "21:55", "train")])],
    ),
]

DEFAULT_SEED = 20260126


def generate_default_trace(seed: int = DEFAULT_SEED) -> Trace:
    """Build the default 8-user, 24-hour trace (08:00 to 08:00) from DAY_PLAN and a seed."""
    rng = random.Random(seed)
    users: list[UserTrace] = []
    for user, profile, plan in DAY_PLAN:
        sessions: list[Session] = []
        for open_at, close_at, disconnect_at, blocks in plan:
            executions: list[tuple[float, float]] = []
            for begin, end, kind in blocks:
                executions.extend(_bursts(rng, _clock(begin), _clock(end), kind))
            if user == "dave":  # the long evening run that keeps a GPU truly busy
                executions.append((_clock("17:30"), 2 * HOUR))
            sessions.append(
                Session(
                    open=_clock(open_at),
                    close=None if close_at is None else _clock(close_at),
                    disconnect=None if disconnect_at is None else _clock(disconnect_at),
                    executions=[(round(t, 1), round(d, 1)) for t, d in executions],
                )
            )
        users.append(UserTrace(user=user, profile=profile, sessions=sessions))
    trace = Trace(
        name="workday-8users",
        description=(
            "8 users over one working day, 08:00 to 08:00 the next morning (24 h). Bursts of cell"
            " executions (exploration: many short cells; training: a few set-up cells and runs of"
            " 5-40 min; debugging: quick edit-run loops) separated by long idle gaps (meetings,"
            " lunch, reading results). Three users leave their notebook running overnight (two"
            " of them with the browser disconnected), one keeps a tab open all day but runs"
            f" cells twice. Generated by `bench/gpu_hours.py generate --seed {seed}`."
        ),
        start_clock="08:00",
        horizon=24 * HOUR,
        users=users,
    )
    validate_trace(trace)
    return trace


# --- the model ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """One system to replay."""

    model: str  # "static" or "elastic"
    cull_idle_timeout: float = 0.0  # elastic only; 0 = culling off
    cull_interval: float = DEFAULT_CULL_INTERVAL
    cull_connected: bool = False
    start_latency: float = DEFAULT_START_LATENCY
    gpus: int | None = None  # node capacity; None = unlimited


@dataclass
class Outcome:
    """What one replay measured."""

    model: str
    cull_idle_timeout_s: float
    cull_interval_s: float
    cull_connected: bool
    gpus: int | None
    gpu_hours_held: float = 0.0
    gpu_hours_busy: float = 0.0
    utilisation: float = 0.0
    peak_gpus_held: int = 0
    gpu_starts: int = 0  # pods that got a GPU (notebook pods or kernel pods)
    culls: int = 0
    restarts_after_cull: int = 0  # kernel starts caused by an execution after a cull
    users_blocked: list[str] = field(default_factory=list)
    blocked_starts: int = 0
    wait_hours: float = 0.0
    max_wait_s: float = 0.0
    executions: int = 0
    executions_delayed_by_start: int = 0  # had to wait for a kernel (re)start
    unserved_execution_s: float = 0.0  # work the user asked for that never ran


@dataclass
class _Kernel:
    index: int
    user: str
    session: Session
    state: str = "none"  # none | waiting | starting | running | closed
    requested_at: float = 0.0
    held_since: float = 0.0
    pending: deque[tuple[float, float]] = field(default_factory=deque)
    busy: tuple[float, float] | None = None  # (started, duration) of the running execution
    last_activity: float = 0.0
    connected: bool = False
    ever_started: bool = False


# Event kinds, in the order they are handled when they fall on the same instant.
_CLOSE, _EXEC_END, _READY, _DISCONNECT, _CULL, _OPEN, _EXEC = range(7)


class _Replay:
    def __init__(self, trace: Trace, policy: Policy) -> None:
        self.trace = trace
        self.policy = policy
        self.out = Outcome(
            model=policy.model,
            cull_idle_timeout_s=policy.cull_idle_timeout,
            cull_interval_s=policy.cull_interval,
            cull_connected=policy.cull_connected,
            gpus=policy.gpus,
        )
        self.events: list[tuple[float, int, int, int, Any]] = []
        self.seq = 0
        self.kernels: list[_Kernel] = []
        self.queue: deque[_Kernel] = deque()
        self.held = 0
        self.blocked: set[str] = set()
        self.culler_started = False

    def push(self, at: float, kind: int, kernel: int, payload: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, kind, self.seq, kernel, payload))

    def run(self) -> Outcome:
        for user in self.trace.users:
            for session in user.sessions:
                index = len(self.kernels)
                self.kernels.append(_Kernel(index=index, user=user.user, session=session))
                self.push(session.open, _OPEN, index)
                for t, d in session.executions:
                    self.push(t, _EXEC, index, d)
                    self.out.executions += 1
                if session.disconnect is not None:
                    self.push(session.disconnect, _DISCONNECT, index)
                if session.close is not None:
                    self.push(session.close, _CLOSE, index)
        horizon = self.trace.horizon
        while self.events and self.events[0][0] <= horizon:
            at, kind, _, index, payload = heapq.heappop(self.events)
            self.handle(at, kind, index, payload)
        for k in self.kernels:  # the trace ends: account for whatever is still held or asked
            self.stop(k, horizon)
        out = self.out
        out.users_blocked = sorted(self.blocked)
        out.utilisation = out.gpu_hours_busy / out.gpu_hours_held if out.gpu_hours_held else 0.0
        return out

    # -- events
    def handle(self, at: float, kind: int, index: int, payload: Any) -> None:
        if kind == _CULL:
            self.cull(at)
            return
        k = self.kernels[index]
        if kind == _OPEN:
            k.connected = True
            self.request(k, at)
        elif kind == _EXEC:
            k.pending.append((at, float(payload)))
            if k.state == "none":
                self.out.restarts_after_cull += 1
                self.request(k, at)
            elif k.state == "running" and k.busy is None:
                self.next_execution(k, at)
        elif kind == _READY:
            if k.state == "starting":
                k.state = "running"
                k.last_activity = at
                self.next_execution(k, at)
        elif kind == _EXEC_END:
            if k.busy is not None and k.state == "running":
                self.out.gpu_hours_busy += k.busy[1] / HOUR
                k.busy = None
                k.last_activity = at
                self.next_execution(k, at)
        elif kind == _DISCONNECT:
            k.connected = False
        elif kind == _CLOSE:
            self.stop(k, at)

    def request(self, k: _Kernel, at: float) -> None:
        k.state = "waiting"
        k.requested_at = at
        if self.policy.gpus is None or self.held < self.policy.gpus:
            self.grant(k, at)
        else:  # the node is full: this user is blocked until a GPU frees (or they give up)
            self.blocked.add(k.user)
            self.out.blocked_starts += 1
            self.queue.append(k)

    def end_wait(self, k: _Kernel, at: float) -> None:
        wait = at - k.requested_at
        self.out.wait_hours += wait / HOUR
        self.out.max_wait_s = max(self.out.max_wait_s, wait)

    def grant(self, k: _Kernel, at: float) -> None:
        self.end_wait(k, at)
        self.held += 1
        self.out.peak_gpus_held = max(self.out.peak_gpus_held, self.held)
        self.out.gpu_starts += 1
        k.state = "starting"
        k.held_since = at
        k.ever_started = True
        self.push(at + self.policy.start_latency, _READY, k.index)
        culling = self.policy.model == "elastic" and self.policy.cull_idle_timeout > 0
        if culling and not self.culler_started:  # jupyter_server starts it with the 1st kernel
            self.culler_started = True
            self.push(at + self.policy.cull_interval, _CULL, -1)

    def release(self, k: _Kernel, at: float) -> None:
        self.out.gpu_hours_held += (at - k.held_since) / HOUR
        self.held -= 1
        while self.queue and (self.policy.gpus is None or self.held < self.policy.gpus):
            self.grant(self.queue.popleft(), at)

    def next_execution(self, k: _Kernel, at: float) -> None:
        if not k.pending:
            return
        requested, duration = k.pending.popleft()
        if at - requested > 1e-9 and at - requested >= self.policy.start_latency - 1e-9:
            self.out.executions_delayed_by_start += 1
        k.busy = (at, duration)
        self.push(at + duration, _EXEC_END, k.index)

    def cull(self, at: float) -> None:
        p = self.policy
        for k in self.kernels:
            if k.state != "running":  # a kernel still starting is not in EG's kernel list yet
                continue
            idle_long = at - k.last_activity > p.cull_idle_timeout
            idle_exec = k.busy is None  # cull_busy=False
            idle_conn = p.cull_connected or not k.connected
            if idle_long and idle_exec and idle_conn:
                self.out.culls += 1
                k.state = "none"
                self.release(k, at)
        if any(k.state != "closed" for k in self.kernels):
            self.push(at + p.cull_interval, _CULL, -1)

    def stop(self, k: _Kernel, at: float) -> None:
        """The user stops the notebook (or the trace ends): free the GPU, count lost work."""
        k.connected = False
        if k.state in ("starting", "running"):
            if k.busy is not None:
                started, duration = k.busy
                self.out.gpu_hours_busy += (at - started) / HOUR
                self.out.unserved_execution_s += started + duration - at
                k.busy = None
            self.release(k, at)
        elif k.state == "waiting":
            self.queue.remove(k)
            self.end_wait(k, at)
        self.out.unserved_execution_s += sum(d for _, d in k.pending)
        k.pending.clear()
        k.state = "closed"


def replay(trace: Trace, policy: Policy) -> Outcome:
    """Replay ``trace`` through one system and return what it measured."""
    if policy.model not in ("static", "elastic"):
        raise ValueError(f"unknown model {policy.model!r}")
    return _Replay(trace, policy).run()


def policies(
    timeouts: Iterable[float],
    cull_interval: float,
    start_latency: float,
    gpus: int | None,
) -> list[Policy]:
    """Static first, then elastic for each timeout with cull_connected False and True."""
    out = [Policy("static", start_latency=start_latency, gpus=gpus)]
    for timeout in timeouts:
        for connected in (True, False):
            out.append(
                Policy(
                    "elastic",
                    cull_idle_timeout=timeout,
                    cull_interval=cull_interval,
                    cull_connected=connected,
                    start_latency=start_latency,
                    gpus=gpus,
                )
            )
    return out


# --- reporting ----------------------------------------------------------------------------------


def _timeout_label(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    if seconds % HOUR == 0:
        return f"{int(seconds // HOUR)} h"
    return f"{int(seconds // 60)} min"


def _system_label(o: Outcome) -> str:
    if o.model == "static":
        return "static GPU per notebook"
    connected = "cull_connected=True" if o.cull_connected else "cull_connected=False"
    return f"elastic, cull {_timeout_label(o.cull_idle_timeout_s)}, {connected}"


def _trace_rows(trace: Trace) -> list[str]:
    rows = []
    for u in trace.users:
        open_h = sum(
            ((trace.horizon if s.close is None else s.close) - s.open) / HOUR for s in u.sessions
        )
        cells = sum(len(s.executions) for s in u.sessions)
        busy = sum(d for s in u.sessions for _, d in s.executions) / 60
        rows.append(f"| {u.user} | {u.profile} | {open_h:.1f} | {cells} | {busy:.0f} |")
    return rows


def machine_info() -> dict[str, str]:
    """Where the replay ran (it is pure computation, so only for the record)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "processor": platform.processor() or platform.machine(),
    }


def markdown(
    trace: Trace,
    unlimited: list[Outcome],
    node: list[Outcome],
    args: argparse.Namespace,
    command: str,
) -> str:
    """The section for docs/benchmarks.md."""
    busy = unlimited[0].gpu_hours_busy
    lines = [
        "## GPU-hours: static per-notebook GPUs vs elastic kernels with culling",
        "",
        f"Trace `{trace.name}` (`bench/traces/{trace.name}.json`): {trace.description}",
        "",
        "**Model.** *Static*: a notebook pod holds one GPU from notebook start to notebook stop"
        " (or the end of the trace). *Elastic*: a kernel pod holds one GPU from kernel start"
        " (notebook opened, or first execution after a cull) to shutdown or cull; a (re)start"
        f" takes {args.start_latency:.1f} s before cells run ({args.start_latency_source}). The"
        " culler is"
        " jupyter_server's, as EG 3.3 runs it: checked every"
        f" `cull_interval` = {args.cull_interval:g} s (the JupyterGateway's default `cullInterval`)"
        " from the first kernel start; a kernel is"
        " culled when idle longer than `cull_idle_timeout`, not busy, and either"
        " `cull_connected=True` or no browser is connected (EG's default is"
        " `cull_connected=False`: an open, connected tab keeps its kernel forever). Busy GPU-hours"
        f" = time cells run ({busy:.2f} h in this trace, identical for every system). With a"
        f" {args.gpus}-GPU node, a start that does not fit waits first-in-first-out until a GPU"
        " frees (elastic-jupyter refuses such a start with the scheduler's reason after its"
        " 10 s Unschedulable grace; the model assumes the user retries as soon as a GPU frees,"
        " which is optimistic).",
        "",
        "The trace, per user (times from 08:00; *open* = the notebook exists):",
        "",
        "| user | what they do | notebook open (h) | cells run | busy (min) |",
        "|---|---|---:|---:|---:|",
        *_trace_rows(trace),
        "",
        "Unlimited GPUs (what each behaviour holds):",
        "",
        "| system | GPU-hours held | busy / held | peak GPUs | GPU pod starts | culls |"
        " restarts after cull (state lost) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for o in unlimited:
        lines.append(
            f"| {_system_label(o)} | {o.gpu_hours_held:.1f} | {100 * o.utilisation:.1f} % |"
            f" {o.peak_gpus_held} | {o.gpu_starts} | {o.culls} | {o.restarts_after_cull} |"
        )
    lines += [
        "",
        f"One node with {args.gpus} GPUs (who would have waited):",
        "",
        "| system | GPU-hours held | busy / held | users blocked | blocked starts |"
        " total wait (h) | longest wait | work never served (h) |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for o in node:
        users = ", ".join(o.users_blocked) if o.users_blocked else "none"
        lines.append(
            f"| {_system_label(o)} | {o.gpu_hours_held:.1f} | {100 * o.utilisation:.1f} % |"
            f" {len(o.users_blocked)} ({users}) | {o.blocked_starts} | {o.wait_hours:.1f} |"
            f" {o.max_wait_s / 60:.0f} min | {o.unserved_execution_s / HOUR:.1f} |"
        )
    info = machine_info()
    static = unlimited[0]
    best = min(unlimited[1:], key=lambda o: o.gpu_hours_held, default=static)
    saved = 1 - best.gpu_hours_held / static.gpu_hours_held if static.gpu_hours_held else 0.0
    lines += [
        "",
        f"In numbers: {_system_label(best)} holds {best.gpu_hours_held:.1f} GPU-hours against"
        f" {static.gpu_hours_held:.1f} for static notebooks ({100 * saved:.0f} % fewer), at the"
        f" price of {best.restarts_after_cull} kernel restarts after a cull (each loses the"
        " kernel's variables and waits for a start).",
        "",
        "What it shows: static notebooks hold a GPU for every hour a notebook exists, busy or"
        " not; elastic kernels give it back after the idle timeout, but only if the culler may"
        " cull connected kernels (or the browser is gone). The cost of a short timeout is"
        " users' kernel state lost and a restart delay on their next cell (the restart column).",
        "",
        f"Machine: Python {info['python']} on {info['platform']}, {info['cpus']} CPUs"
        " (the replay is pure computation; only a measured start latency depends on the"
        " machine).",
        "",
        f"Command: `{command}`",
        "",
    ]
    return "\n".join(lines)


def pool_rows(
    trace: Trace, elastic: Sequence[Outcome], sizes: Sequence[int], cold: float, warm: float
) -> list[dict[str, Any]]:
    """GPU-hours a warm pool of GPU kernels holds beside the user wait it saves.

    A pool of ``size`` GPU kernels holds ``size`` GPUs for the whole trace (waiting kernels are
    replaced as they are claimed; a claimed one is the user's kernel, already counted in the
    elastic replay). Every GPU kernel start of the replay is then warm (the pool refills in
    seconds, far below the gaps between this trace's starts), so each saves ``cold - warm``
    seconds of waiting. ``elastic`` holds one replay per cull timeout (unlimited GPUs).
    """
    rows = []
    for o in elastic:
        for size in sizes:
            pool_hours = size * trace.horizon / HOUR
            warm_starts = o.gpu_starts if size > 0 else 0
            saved_min = warm_starts * max(0.0, cold - warm) / 60
            rows.append(
                {
                    "system": _system_label(o),
                    "pool_size": size,
                    "pool_gpu_hours": round(pool_hours, 2),
                    "total_gpu_hours": round(o.gpu_hours_held + pool_hours, 2),
                    "gpu_starts": o.gpu_starts,
                    "warm_starts": warm_starts,
                    "wait_saved_min": round(saved_min, 1),
                    "gpu_hours_per_wait_min_saved": (
                        round(pool_hours / saved_min, 3) if saved_min else None
                    ),
                }
            )
    return rows


def pool_markdown(rows: Sequence[dict[str, Any]], cold: float, warm: float, source: str) -> str:
    """The warm-pool table appended to the GPU-hours section."""
    lines = [
        "",
        "### Warm GPU pools: GPU-hours held against start latency bought",
        "",
        f"A warm pool (`JupyterKernelSpec.spec.warmPool`) of GPU kernels holds its GPUs all day"
        f" whether or not anyone starts a kernel; in exchange each GPU kernel start waits"
        f" {warm:.2f} s instead of {cold:.2f} s ({source}). The operator caps pooled GPUs"
        " cluster-wide (`--max-pooled-gpus`, default 0); on the 2-GPU node of the table above a"
        " pooled GPU is one a user cannot get.",
        "",
        "| system | pool | pool GPU-hours | total GPU-hours | GPU starts (warm) |"
        " user wait saved | pool GPU-hours per minute saved |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        per = r["gpu_hours_per_wait_min_saved"]
        lines.append(
            f"| {r['system']} | {r['pool_size']} | {r['pool_gpu_hours']} |"
            f" {r['total_gpu_hours']} | {r['gpu_starts']} ({r['warm_starts']}) |"
            f" {r['wait_saved_min']} min | {per if per is not None else '-'} |"
        )
    lines.append("")
    return "\n".join(lines)


def warm_latency_from_results(results: Path) -> tuple[float, str] | None:
    """The median warm start of ``bench/warm_pool.py``'s last run, if there is one."""
    try:
        data = json.loads((results / "warm_pool.json").read_text(encoding="utf-8"))
        return float(data["start_s"]["pool"]["median"]), "warm: median of bench/warm_pool.py"
    except (OSError, ValueError, KeyError, TypeError):
        return None


def measure_start_latency(count: int) -> list[float]:
    """Seconds from ``POST /api/sessions`` to a cell's output, for ``count`` GPU kernels started
    one after another (each shut down before the next) on the sandbox with the real stack."""
    from elastic_jupyter import harness
    from elastic_jupyter.sandbox.cluster import SandboxCluster

    namespace = "bench-gpu-hours"
    samples: list[float] = []
    with SandboxCluster(node_gpus=2) as cluster:
        cluster.create_namespace(namespace)
        log = cluster.state_dir / "operator.log"
        env = harness.operator_env(cluster)
        with harness.operator_process(env, log, "--namespace", namespace, *harness.NO_PORTS):
            kubectl = harness.Kubectl(str(cluster.kubeconfig), namespace)
            path = harness.UserPath(kubectl, say=lambda _line: None)
            directory = harness.GPU_EXAMPLE
            path.apply_example(directory)
            for index in range(count):
                started = time.monotonic()
                session = path.client.start_session(f"latency-{index}.ipynb", path.kernel_name)
                with path.client.channel(str(session["kernel"]["id"])) as channel:
                    path.where_am_i(channel)
                samples.append(time.monotonic() - started)
                path.client.delete_session(str(session["id"]))
    print(f"kernel start latency samples (s): {', '.join(f'{x:.2f}' for x in samples)}")
    return samples


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", choices=("replay", "generate"), default="replay")
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="for generate")
    parser.add_argument(
        "--timeouts",
        default=",".join(str(t) for t in DEFAULT_TIMEOUTS),
        help="cull_idle_timeout values in seconds, comma-separated",
    )
    parser.add_argument("--cull-interval", type=float, default=DEFAULT_CULL_INTERVAL)
    parser.add_argument(
        "--start-latency",
        type=float,
        default=None,
        help=f"kernel (re)start latency in seconds (default {DEFAULT_START_LATENCY:g})",
    )
    parser.add_argument(
        "--measure-start-latency",
        type=int,
        default=0,
        metavar="N",
        help="measure the latency instead: median of N kernel starts through the notebook"
        " server on the sandbox with the real operator and gateway (examples/gpu)",
    )
    parser.add_argument("--gpus", type=int, default=2, help="GPUs on the node")
    parser.add_argument(
        "--pool-sizes",
        default="1,2",
        help="warm GPU pool sizes to report (comma-separated)",
    )
    parser.add_argument(
        "--warm-latency",
        type=float,
        default=None,
        help="warm start latency in seconds (default: bench/results/warm_pool.json, else 0.5)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry."""
    args = _parse_args(argv)
    if args.action == "generate":
        trace = generate_default_trace(args.seed)
        args.trace.parent.mkdir(parents=True, exist_ok=True)
        args.trace.write_text(json.dumps(dump_trace(trace), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.trace}")
        return 0
    trace = load_trace(args.trace)
    if args.measure_start_latency > 0:
        samples = measure_start_latency(args.measure_start_latency)
        args.start_latency = statistics.median(samples)
        args.start_latency_source = (
            f"median of {len(samples)} GPU-kernel starts measured on the sandbox through the"
            " notebook server, gateway and operator: POST /api/sessions to the first cell's"
            " output; a floor: the sandbox pulls no image and schedules at once, a real"
            " cluster adds seconds to minutes, EG #683; `--measure-start-latency`"
        )
    elif args.start_latency is not None:
        args.start_latency_source = "`--start-latency`"
    else:
        args.start_latency = DEFAULT_START_LATENCY
        args.start_latency_source = (
            "assumed: ~2-3 s pod start on a warm node plus ~3 s to connection info and"
            " kernel_info, EG #683 / kubespawner #120; `--start-latency` or"
            " `--measure-start-latency N` to change"
        )
    timeouts = [float(t) for t in args.timeouts.split(",") if t.strip()]
    unlimited = [
        replay(trace, p) for p in policies(timeouts, args.cull_interval, args.start_latency, None)
    ]
    node = [
        replay(trace, p)
        for p in policies(timeouts, args.cull_interval, args.start_latency, args.gpus)
    ]
    command = "python bench/gpu_hours.py " + shlex.join(
        list(argv) if argv is not None else sys.argv[1:]
    )
    text = markdown(trace, unlimited, node, args, command.strip())
    measured = warm_latency_from_results(args.out)
    if args.warm_latency is not None:
        warm, warm_source = args.warm_latency, "warm: `--warm-latency`"
    elif measured is not None:
        warm, warm_source = measured
    else:
        warm, warm_source = 0.5, "warm: assumed 0.5 s, the goal of bench/warm_pool.py"
    sizes = [int(x) for x in args.pool_sizes.split(",") if x.strip()]
    # The elastic systems that give GPUs back (culling connected kernels): where a pool's
    # GPUs are the price of fast restarts after a cull.
    elastic = [o for o in unlimited[1:] if o.cull_connected]
    pools = pool_rows(trace, elastic, sizes, args.start_latency, warm)
    text += pool_markdown(pools, args.start_latency, warm, warm_source)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "gpu_hours",
        "trace": trace.name,
        "model": {
            "cull_interval_s": args.cull_interval,
            "start_latency_s": args.start_latency,
            "start_latency_source": args.start_latency_source,
            "node_gpus": args.gpus,
            "cull_busy": False,
        },
        "machine": machine_info(),
        "command": command.strip(),
        "unlimited_gpus": [asdict(o) for o in unlimited],
        "node": [asdict(o) for o in node],
        "warm_pools": {"warm_latency_s": warm, "source": warm_source, "rows": pools},
    }
    (args.out / "gpu_hours.json").write_text(json.dumps(result, indent=1) + "\n", "utf-8")
    (args.out / "gpu_hours.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
