"""Pod → JupyterKernel status, and what changed → which Events: pure functions, no I/O.

Called by :mod:`elastic_jupyter.operator.kernels` each time the pod watch delivers a new state of
a kernel pod (or its deletion). This module is the one place in the project that interprets pod
states; the gateway reads only the result (``status.phase``, ``status.reason``, ``podIP``…).

Vocabulary (the JupyterKernel CRD documents it for users):

* ``phase`` mirrors the pod phase (``Pending``, ``Running``, ``Succeeded``, ``Failed``), except
  that a pod deleted behind our back, or one that could not be created, is ``Failed``.
* ``reason``/``message``: why the kernel is not (or no longer) running, from the pod itself:
  ``Unschedulable`` with the scheduler's message; a waiting reason of the kernel container
  (``ErrImagePull``, ``ImagePullBackOff``, ``InvalidImageName``, ``CreateContainerConfigError``,
  ``CrashLoopBackOff``…); a terminated reason (``Error``, ``OOMKilled``, ``Completed``) with the
  exit code; the pod's own reason (``Evicted``); ``PodDeleted``; ``PodCreateFailed``.
* conditions ``Scheduled``, ``Running``, ``Ready``, ``Failed``. ``Failed`` is True when the kernel
  ended badly or cannot start without someone's intervention (image and config errors, crash
  loops), even while the pod phase is still Pending; the gateway fails a launch at once on it.
  ``Unschedulable`` alone keeps ``Failed`` False, as a cluster autoscaler may still add a node.

``lastTransitionTime`` of a condition is kept from the previous status while the condition's
status is unchanged, so that equal pod states give equal statuses and :func:`status_patch`
returns ``None`` — the handler then makes no API call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from elastic_jupyter import crds
from elastic_jupyter.operator import conditions, kernel_pod

#: The status keys this module owns; :func:`status_patch` never touches any other.
STATUS_KEYS: Final = (
    "phase",
    "reason",
    "message",
    "podName",
    "podIP",
    "hostIP",
    "nodeName",
    "startTime",
    "completionTime",
    "exitCode",
    "observedGeneration",
    "conditions",
)
#: Written with every patch but not a change by itself (it would make every status differ).
LAST_RECONCILE_TIME: Final = "lastReconcileTime"


@dataclass(frozen=True)
class KernelEvent:
    """One Kubernetes Event to post on the JupyterKernel (``type`` is Normal or Warning)."""

    type: str
    reason: str
    message: str


def _condition(
    ctype: str,
    status: bool,
    reason: str | None,
    message: str | None,
    previous: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    # a kernel condition leaves out an empty reason or message
    return conditions.condition(
        ctype,
        status,
        reason or None,
        message or None,
        now,
        conditions.previous_conditions(previous),
    )


def _kernel_container_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    containers = (pod.get("spec") or {}).get("containers") or []
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    if not statuses:
        return {}
    wanted = None
    if containers:
        wanted = containers[kernel_pod.kernel_container_index(containers)].get("name")
    for status in statuses:
        if status.get("name") == wanted:
            return dict(status)
    return dict(statuses[0])


def _init_problem(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """A failing init container blocks the kernel just as much; report it with its name."""
    for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
        state = status.get("state") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        if waiting.get("reason") in crds.KERNEL_FATAL_WAITING_REASONS:
            message = waiting.get("message") or ""
            return str(waiting["reason"]), f"init container {status.get('name')}: {message}"
        if terminated and terminated.get("exitCode", 0) != 0:
            code = terminated.get("exitCode")
            return (
                str(terminated.get("reason") or crds.REASON_ERROR),
                f"init container {status.get('name')} exited with code {code}",
            )
    return None


def _pod_condition(pod: Mapping[str, Any], ctype: str) -> Mapping[str, Any]:
    for item in (pod.get("status") or {}).get("conditions") or []:
        if item.get("type") == ctype:
            return dict(item)
    return {}


def kernel_status(
    pod: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    """The JupyterKernel status describing ``pod`` (a Pod body, as the watch delivers it).

    ``previous`` is the kernel's current status (for transition times); ``now`` is an RFC 3339
    timestamp used for transitions that happen now.
    """
    metadata = pod.get("metadata") or {}
    pod_status = pod.get("status") or {}
    pod_phase = pod_status.get("phase") or crds.PHASE_PENDING
    node = (pod.get("spec") or {}).get("nodeName") or None
    container = _kernel_container_status(pod)
    state = container.get("state") or {}
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated") or {}
    scheduled = _pod_condition(pod, "PodScheduled")
    ready = _pod_condition(pod, "Ready")

    status: dict[str, Any] = {"phase": pod_phase, "podName": metadata.get("name")}
    for key, value in (
        ("podIP", pod_status.get("podIP")),
        ("hostIP", pod_status.get("hostIP")),
        ("nodeName", node),
        ("startTime", pod_status.get("startTime")),
    ):
        if value:
            status[key] = value
    generation = (metadata.get("annotations") or {}).get(kernel_pod.ANNOTATION_GENERATION)
    if generation and str(generation).isdigit():
        status["observedGeneration"] = int(generation)

    reason: str | None = None
    message: str | None = None
    failed = False
    if pod_phase == crds.PHASE_PENDING:
        init_problem = _init_problem(pod)
        if (
            scheduled.get("status") == "False"
            and scheduled.get("reason") == crds.REASON_UNSCHEDULABLE
        ):
            reason, message = crds.REASON_UNSCHEDULABLE, scheduled.get("message") or None
        elif waiting.get("reason") and waiting["reason"] not in crds.BENIGN_WAITING_REASONS:
            reason, message = str(waiting["reason"]), waiting.get("message") or None
            failed = reason in crds.KERNEL_FATAL_WAITING_REASONS
        elif init_problem:
            reason, message = init_problem
            failed = True
    elif pod_phase == crds.PHASE_RUNNING:
        # restartPolicy Never makes a crash loop impossible for our pods, but a pod adopted from
        # elsewhere may still show one: report it rather than pretend the kernel is fine.
        if waiting.get("reason") in crds.KERNEL_FATAL_WAITING_REASONS:
            reason, message, failed = str(waiting["reason"]), waiting.get("message") or None, True
    else:  # Succeeded or Failed (or a phase we do not know, reported as is)
        exit_code = terminated.get("exitCode")
        if exit_code is not None:
            status["exitCode"] = int(exit_code)
        if terminated.get("finishedAt"):
            status["completionTime"] = terminated["finishedAt"]
        if pod_phase == crds.PHASE_SUCCEEDED:
            reason = str(terminated.get("reason") or crds.REASON_COMPLETED)
            message = terminated.get("message") or "the kernel exited with code 0"
        else:
            failed = True
            reason = str(terminated.get("reason") or pod_status.get("reason") or crds.REASON_ERROR)
            message = terminated.get("message") or pod_status.get("message") or None
            if not message and exit_code is not None:
                message = f"container {container.get('name')} exited with code {exit_code}"
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message

    is_scheduled = bool(node) or scheduled.get("status") == "True"
    sched_reason: str | None
    sched_message: str | None
    run_reason: str | None
    run_message: str | None
    running = pod_phase == crds.PHASE_RUNNING and not failed
    if is_scheduled:
        sched_reason, sched_message = (
            crds.REASON_SCHEDULED,
            f"assigned to node {node}" if node else None,
        )
    elif scheduled.get("status") == "False":
        sched_reason, sched_message = scheduled.get("reason"), scheduled.get("message")
    else:
        sched_reason, sched_message = crds.REASON_PENDING, "waiting for the scheduler"
    if running:
        run_reason, run_message = crds.REASON_RUNNING, None
    elif pod_phase == crds.PHASE_PENDING:
        run_reason = reason or waiting.get("reason") or crds.REASON_PENDING
        run_message = message
    else:
        run_reason, run_message = reason, message
    ready_ok = running and ready.get("status", "True") == "True"
    status["conditions"] = [
        _condition(
            crds.CONDITION_SCHEDULED, is_scheduled, sched_reason, sched_message, previous, now
        ),
        _condition(crds.CONDITION_RUNNING, running, run_reason, run_message, previous, now),
        _condition(
            crds.CONDITION_READY,
            ready_ok,
            None if ready_ok else (ready.get("reason") or run_reason),
            None if ready_ok else ready.get("message"),
            previous,
            now,
        ),
        _condition(
            crds.CONDITION_FAILED,
            failed,
            reason if failed else None,
            message if failed else None,
            previous,
            now,
        ),
    ]
    return status


def failed_status(
    reason: str,
    message: str,
    previous: Mapping[str, Any] | None,
    now: str,
    pod_name: str | None = None,
) -> dict[str, Any]:
    """Status of a kernel whose pod is gone or could not be created (phase Failed).

    Fields describing the last known pod (name, node, IP, start time) are kept from ``previous``
    so that ``kubectl get jk`` still says where the kernel was.
    """
    status: dict[str, Any] = {}
    for key in ("podName", "nodeName", "podIP", "hostIP", "startTime", "observedGeneration"):
        if previous and previous.get(key) is not None:
            status[key] = previous[key]
    if pod_name and "podName" not in status:
        status["podName"] = pod_name
    status.update({"phase": crds.PHASE_FAILED, "reason": reason, "message": message})
    was_scheduled = bool(status.get("nodeName"))
    status["conditions"] = [
        _condition(
            crds.CONDITION_SCHEDULED,
            was_scheduled,
            crds.REASON_SCHEDULED if was_scheduled else reason,
            None,
            previous,
            now,
        ),
        _condition(crds.CONDITION_RUNNING, False, reason, message, previous, now),
        _condition(crds.CONDITION_READY, False, reason, None, previous, now),
        _condition(crds.CONDITION_FAILED, True, reason, message, previous, now),
    ]
    return status


def is_terminal(status: Mapping[str, Any] | None) -> bool:
    """Whether the kernel has ended (Succeeded or Failed): its status never changes again."""
    return (status or {}).get("phase") in (crds.PHASE_SUCCEEDED, crds.PHASE_FAILED)


def is_quiet_pending(status: Mapping[str, Any]) -> bool:
    """A plain Pending status: the pod exists and nothing is wrong, it is just not running yet.

    The handler holds such a status back for a short grace period, because in a healthy
    cluster the pod runs moments later and one status write (Running) is enough.
    """
    return status.get("phase") == crds.PHASE_PENDING and not status.get("reason")


def status_patch(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], now: str
) -> dict[str, Any] | None:
    """The merge patch of ``status`` turning ``old`` into ``new``, or ``None`` if nothing changed.

    Keys we own that ``new`` lacks are removed (``None`` in a merge patch); keys we do not own
    are left alone.
    """
    patch = conditions.status_patch(old, new, STATUS_KEYS)
    if patch is not None:
        patch[LAST_RECONCILE_TIME] = now
    return patch


def transition_events(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[KernelEvent]:
    """The Events that the change from ``old`` to ``new`` is worth: one per (phase, reason) change.

    A plain Pending is no news (the kernel was just created). Problems are Warnings; running and
    a clean exit are Normal.
    """
    before = (old or {}).get("phase"), (old or {}).get("reason")
    after = new.get("phase"), new.get("reason")
    if before == after or is_quiet_pending(new):
        return []
    phase, reason = after
    message = str(new.get("message") or "")
    if phase == crds.PHASE_RUNNING and not reason:
        where = f" on node {new.get('nodeName')}" if new.get("nodeName") else ""
        ip = f" with IP {new.get('podIP')}" if new.get("podIP") else ""
        return [
            KernelEvent(
                "Normal", crds.REASON_RUNNING, f"pod {new.get('podName')} is running{where}{ip}"
            )
        ]
    if phase == crds.PHASE_SUCCEEDED:
        return [
            KernelEvent(
                "Normal", str(reason or crds.REASON_COMPLETED), message or "the kernel exited"
            )
        ]
    event_reason = str(reason or phase or crds.REASON_UNKNOWN)
    if "exitCode" in new and str(new["exitCode"]) not in message:
        message = f"{message} (exit code {new['exitCode']})".strip()
    return [KernelEvent("Warning", event_reason, message or f"kernel is {phase}")]
