"""JupyterGateway status: what its Deployment, kernelspecs and kernels say, as a pure function.

:func:`gateways.refresh_status` reads the Deployment, the namespace's JupyterKernelSpec names and
the gateway's kernel count, and writes what :func:`status` returns (only when it differs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.operator import conditions, gateway_objects


def status(
    gateway: Mapping[str, Any],
    deployment_obj: Mapping[str, Any] | None,
    existing_kernelspecs: Sequence[str],
    kernel_count: int,
    problems: Sequence[str],
    now: str,
) -> dict[str, Any]:
    """The JupyterGateway status: replica counts (original names), URL, kernelspecs, conditions.

    ``deployment_obj`` is the gateway's Deployment as read (None if absent);
    ``existing_kernelspecs`` the JupyterKernelSpec names of the namespace; ``problems`` what
    :func:`gateway_objects.validate` found.
    """
    meta, spec = gateway["metadata"], gateway.get("spec") or {}
    generation = meta.get("generation")
    previous = (gateway.get("status") or {}).get("conditions") or []
    dep_status = (deployment_obj or {}).get("status") or {}
    progress = conditions.rollout(deployment_obj)
    replicas, ready, updated = progress.replicas, progress.ready, progress.updated
    rolled_out, is_ready = progress.rolled_out, progress.is_ready
    missing = gateway_objects.missing_kernelspecs(spec, existing_kernelspecs)
    served = gateway_objects.served_kernelspecs(spec, existing_kernelspecs)

    phase = conditions.phase(problems, is_ready)
    auth = gateway_objects.auth_enabled(spec)
    secret = gateway_objects.secret_name(meta["name"], spec) if auth else ""

    if is_ready:
        ready_reason, ready_message = (
            crds.REASON_GATEWAY_READY,
            "Enterprise Gateway serves the current spec",
        )
    elif problems:
        ready_reason, ready_message = conditions.problem_reason(problems), "; ".join(problems)
    elif deployment_obj is None:
        ready_reason, ready_message = (
            crds.REASON_DEPLOYMENT_MISSING,
            "the gateway Deployment is not created yet",
        )
    else:
        ready_reason = crds.REASON_GATEWAY_NOT_READY
        ready_message = f"{ready} of {max(replicas, 1)} gateway pods ready, {updated} up to date"

    if missing:
        ks_reason = crds.REASON_KERNELSPEC_NOT_FOUND
        ks_message = (
            f"spec.kernels names {', '.join(missing)}, but no JupyterKernelSpec of that name "
            f"exists in namespace {meta['namespace']}: create it (kubectl get jks -n "
            f"{meta['namespace']}) or remove the name from spec.kernels"
        )
    elif not existing_kernelspecs and not gateway_objects.kernel_names(spec):
        ks_reason = crds.REASON_BUILTIN_KERNELSPEC
        ks_message = (
            f"no JupyterKernelSpec in namespace {meta['namespace']}: serving the built-in "
            f"{crds.BUILTIN_KERNELSPEC} (Python in a kernel pod with the operator's default "
            "kernel image) until one is created"
        )
    else:
        ks_reason, ks_message = crds.REASON_KERNELSPECS_FOUND, f"serving {', '.join(served)}"

    return {
        "phase": phase,
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": int(dep_status.get("availableReplicas") or 0),
        "unavailableReplicas": int(dep_status.get("unavailableReplicas") or 0),
        "url": gateway_objects.gateway_url(meta["name"], meta["namespace"]),
        "serviceName": meta["name"],
        "authSecretName": secret,
        "kernelSpecs": served,
        "kernels": kernel_count,
        "conditions": [
            conditions.condition(
                crds.CONDITION_READY,
                is_ready,
                ready_reason,
                ready_message,
                now,
                previous,
                generation,
            ),
            conditions.valid_condition(problems, now, previous, generation),
            conditions.condition(
                crds.CONDITION_KERNELSPECS_RESOLVED,
                not missing and bool(served),
                ks_reason,
                ks_message,
                now,
                previous,
                generation,
            ),
            conditions.condition(
                crds.CONDITION_PROGRESSING,
                deployment_obj is not None and not rolled_out,
                crds.REASON_ROLLING_OUT
                if deployment_obj is not None and not rolled_out
                else crds.REASON_ROLLOUT_COMPLETE,
                "a new gateway pod is being rolled out"
                if deployment_obj is not None and not rolled_out
                else "no rollout under way",
                now,
                previous,
                generation,
            ),
        ],
    }
