"""Status pieces every status builder shares (conditions, the owned-keys status patch, the
gateway and notebook phase): pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
    reason: str | None,
    message: str | None,
    now: str,
    previous: Iterable[Any] = (),
    generation: int | None = None,
) -> dict[str, Any]:
    """One status condition; keeps ``lastTransitionTime`` while the status does not change.

    ``previous`` is the object's current ``status.conditions`` (anything not a mapping in it
    is ignored); a ``None`` reason or message is left out of the condition.
    """
    status = crds.CONDITION_TRUE if ok else crds.CONDITION_FALSE
    since = now
    for old in previous:
        if isinstance(old, Mapping) and old.get("type") == type_ and old.get("status") == status:
            since = str(old.get("lastTransitionTime") or now)
    result: dict[str, Any] = {"type": type_, "status": status}
    if reason is not None:
        result["reason"] = reason
    if message is not None:
        result["message"] = message
    result["lastTransitionTime"] = since
    if generation is not None:
        result["observedGeneration"] = generation
    return result


def previous_conditions(status: Mapping[str, Any] | None) -> list[Any]:
    """``status.conditions`` of an object's status as read (empty when absent)."""
    return list((status or {}).get("conditions") or [])


def status_patch(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], owned: Iterable[str]
) -> dict[str, Any] | None:
    """The merge patch of ``status`` turning ``old`` into ``new``, or None if nothing changed.

    Only the ``owned`` keys are compared and written: one that ``new`` lacks is removed (``None``
    in a merge patch), keys somebody else owns are left alone.
    """
    keys = tuple(owned)
    before = {k: (old or {}).get(k) for k in keys if (old or {}).get(k) is not None}
    after = {k: new.get(k) for k in keys if new.get(k) is not None}
    if before == after:
        return None
    patch: dict[str, Any] = {key: None for key in before if key not in after}
    patch.update(after)
    return patch


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
