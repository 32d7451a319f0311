"""Status pieces the JupyterGateway and JupyterNotebook builders share: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from elastic_jupyter import crds


class Problem(str):
    """A problem message (a ``str``) that carries its own condition reason.

    Plain strings report as ``InvalidSpec``; namespace consent and name conflicts have reasons
    of their own (``NamespaceNotAccepted``, ``NameConflict``).
    """

    reason: str

    def __new__(cls, message: str, reason: str) -> Problem:
        obj = super().__new__(cls, message)
        obj.reason = reason
        return obj


def problem_reason(problems: Sequence[str]) -> str:
    """The reason of the first problem (``InvalidSpec`` for a plain string)."""
    return str(getattr(problems[0], "reason", crds.REASON_INVALID_SPEC))


def condition(
    type_: str,
    ok: bool,
    reason: str,
    message: str,
    now: str,
    previous: Sequence[Mapping[str, Any]] = (),
    generation: int | None = None,
) -> dict[str, Any]:
    """One status condition; keeps ``lastTransitionTime`` while the status does not change."""
    status = crds.CONDITION_TRUE if ok else crds.CONDITION_FALSE
    since = now
    for old in previous:
        if old.get("type") == type_ and old.get("status") == status:
            since = str(old.get("lastTransitionTime") or now)
    result: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        result["observedGeneration"] = generation
    return result


@dataclass(frozen=True)
class Rollout:
    """What a Deployment's status says: replica counts and whether the current spec is out."""

    replicas: int
    ready: int
    updated: int
    rolled_out: bool

    @property
    def is_ready(self) -> bool:
        """At least one pod ready and the rollout of the current spec complete."""
        return self.ready >= 1 and self.rolled_out


def rollout(deployment_obj: Mapping[str, Any] | None) -> Rollout:
    """Summarise a Deployment as read (None if absent)."""
    dep_status = (deployment_obj or {}).get("status") or {}
    dep_meta = (deployment_obj or {}).get("metadata") or {}
    replicas = int(dep_status.get("replicas") or 0)
    ready = int(dep_status.get("readyReplicas") or 0)
    updated = int(dep_status.get("updatedReplicas") or 0)
    rolled_out = (
        deployment_obj is not None
        and int(dep_status.get("observedGeneration") or 0) >= int(dep_meta.get("generation") or 0)
        and updated >= 1
        and replicas <= updated
    )
    return Rollout(replicas=replicas, ready=ready, updated=updated, rolled_out=rolled_out)


def phase(problems: Sequence[str], is_ready: bool) -> str:
    """``Failed`` with spec problems, else ``Running`` when ready, else ``Pending``."""
    if problems:
        return crds.PHASE_FAILED
    if is_ready:
        return crds.PHASE_RUNNING
    return crds.PHASE_PENDING


def valid_condition(
    problems: Sequence[str],
    now: str,
    previous: Sequence[Mapping[str, Any]],
    generation: int | None,
) -> dict[str, Any]:
    """The ``Valid`` condition from the problems ``validate`` found."""
    return condition(
        crds.CONDITION_VALID,
        not problems,
        problem_reason(problems) if problems else crds.REASON_SPEC_VALID,
        "; ".join(problems) if problems else "spec is valid",
        now,
        previous,
        generation,
    )
