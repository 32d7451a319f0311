"""Warm kernel pools, the pure part: pool kernels' manifests and what a pool needs next.

No cluster, no kopf: :mod:`warm_pools` (the handlers) calls these and tests call them directly.

* :func:`pool_spec` reads ``JupyterKernelSpec.spec.warmPool``.
* :func:`pool_kernel_manifest` builds a pool JupyterKernel: the same pod template a gateway
  would build for a plain start request of that kernelspec (the JupyterKernelTemplate's pod,
  the kernelspec's image and resources on the ``kernel`` container), so that
  :func:`elastic_jupyter.crds.warm_pool.pool_key` matches; the launcher env of a pool kernel
  (``KERNEL_WARM_POOL``, its claim key file and fixed claim port) instead of a kernel id and a
  gateway address; owned by the JupyterKernelSpec, so deleting the kernelspec ends its pool.
* :func:`claim_key_secret` is the pool kernel's Secret (the claim key; the operator mounts it
  like a launch token), owned by the JupyterKernel.
* :func:`plan_pool` decides, from the pool's members as the operator's index sees them, how
  many kernels to create and which to delete (failed, too old, claims never completed).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.crds import warm_pool
from elastic_jupyter.kernel_launcher import env as launcher_env

Obj = dict[str, Any]
GPU_RESOURCE = "nvidia.com/gpu"
#: Seconds a claimed pool kernel may stay with its claim not completed (the gateway marks it
#: once the kernel reported back) before the operator deletes it: a claim cut short by a
#: gateway crash. No user code can have run: cells reach a kernel only after it reported back.
DEFAULT_CLAIM_TIMEOUT = 60.0
_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class PoolSpec:
    size: int
    max_idle_seconds: float | None


def pool_spec(kernelspec: Mapping[str, Any]) -> PoolSpec | None:
    """``spec.warmPool`` of a kernelspec (``None``: no pool, or size 0)."""
    raw = (kernelspec.get("spec") or {}).get("warmPool")
    if not isinstance(raw, Mapping):
        return None
    size = raw.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        return None
    return PoolSpec(size=size, max_idle_seconds=warm_pool.parse_duration(raw.get("maxIdleAge")))


def pool_kernel_name(kernelspec_name: str) -> str:
    """``<kernelspec>-pool-<8 random>`` (a DNS-1123 label)."""
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    base = re.sub(r"[^a-z0-9-]+", "-", kernelspec_name.lower())[:40].strip("-") or "kernel"
    return f"{base}-pool-{suffix}"


def _pod_template(template: Mapping[str, Any] | None) -> Obj:
    if template is None:
        return {"metadata": {}, "spec": {"containers": [{"name": "kernel"}]}}
    pod = copy.deepcopy(dict((template.get("spec") or {}).get("template") or {}))
    meta = pod.get("metadata")
    pod["metadata"] = dict(meta) if isinstance(meta, Mapping) else {}
    pod.setdefault("spec", {}).setdefault("containers", [{"name": "kernel"}])
    return pod


def _merge_resources(container: Obj, resources: Mapping[str, Any] | None) -> None:
    if not resources:
        return
    merged: Obj = copy.deepcopy(container.get("resources") or {})
    for kind, values in resources.items():
        if kind in ("requests", "limits") and isinstance(values, Mapping):
            merged[kind] = {
                **(merged.get(kind) or {}),
                **{str(k): str(v) for k, v in values.items()},
            }
    container["resources"] = merged


def pool_kernel_manifest(
    kernelspec: Mapping[str, Any],
    template: Mapping[str, Any] | None,
    name: str,
    claim_port: int = warm_pool.DEFAULT_CLAIM_PORT,
) -> Obj:
    """The pool JupyterKernel ``name`` of ``kernelspec`` built from its template object."""
    meta = kernelspec.get("metadata") or {}
    spec = kernelspec.get("spec") or {}
    ks_name, namespace = str(meta.get("name")), str(meta.get("namespace"))
    pod = _pod_template(template)
    containers: list[Obj] = pod["spec"]["containers"]
    index = next((i for i, c in enumerate(containers) if c.get("name") == "kernel"), 0)
    container = containers[index]
    if spec.get("image"):
        container["image"] = spec["image"]
    _merge_resources(container, spec.get("resources"))
    key = warm_pool.pool_key(pod)  # before the pool env: the key leaves literal env out
    env = [dict(e) for e in container.get("env") or [] if isinstance(e, Mapping)]
    ours = {
        launcher_env.KERNEL_WARM_POOL: "1",
        launcher_env.KERNEL_CLAIM_KEY_FILE: (
            f"{crds.KERNEL_SECRET_MOUNT_PATH}/{warm_pool.SECRET_CLAIM_KEY}"
        ),
        launcher_env.KERNEL_CLAIM_PORT: str(claim_port),
        launcher_env.PORT_RANGE: str(spec.get("portRange") or "0..0"),
        launcher_env.KERNEL_NAME: ks_name,
        launcher_env.KERNEL_LANGUAGE: str(spec.get("language") or "python").lower(),
    }
    env = [e for e in env if e.get("name") not in ours]
    env += [{"name": k, "value": v} for k, v in ours.items()]
    container["env"] = env
    labels = {
        crds.LABEL_COMPONENT: crds.COMPONENT_KERNEL,
        crds.LABEL_MANAGED_BY: crds.MANAGED_BY,
        crds.LABEL_KERNELSPEC: ks_name,
        warm_pool.LABEL_POOL: ks_name,
        warm_pool.LABEL_POOL_STATE: warm_pool.POOL_STATE_POOLED,
        warm_pool.LABEL_POOL_KEY: key,
    }
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL.kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {crds.ANNOTATION_KERNEL_SECRET: crds.kernel_secret_name(name)},
            "ownerReferences": [
                {
                    "apiVersion": crds.API_VERSION,
                    "kind": crds.JUPYTER_KERNEL_SPEC.kind,
                    "name": ks_name,
                    "uid": str(meta.get("uid")),
                    "controller": True,
                }
            ],
        },
        "spec": {"template": pod, "kernelName": ks_name},
    }


def claim_key_secret(kernel: Mapping[str, Any], claim_key: str) -> Obj:
    """The pool kernel's Secret: its claim key, owned by the kernel (collected with it)."""
    meta = kernel.get("metadata") or {}
    name = str(meta.get("name"))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": crds.kernel_secret_name(name),
            "namespace": meta.get("namespace"),
            "labels": {crds.LABEL_MANAGED_BY: crds.MANAGED_BY, crds.LABEL_KERNEL: name},
            "ownerReferences": [
                {
                    "apiVersion": crds.API_VERSION,
                    "kind": crds.JUPYTER_KERNEL.kind,
                    "name": name,
                    "uid": str(meta.get("uid")),
                    "controller": True,
                }
            ],
        },
        "data": {warm_pool.SECRET_CLAIM_KEY: base64.b64encode(claim_key.encode()).decode("ascii")},
    }


def pool_network_policy(kernelspec: Mapping[str, Any]) -> Obj:
    """``<kernelspec>-pool``: the pool's kernel pods take ingress only from gateway pods.

    A pool kernel carries no gateway label (nobody knows yet which gateway will claim it), so
    the per-gateway ``<gateway>-kernels`` policy does not select it; this one does: pods of any
    elastic-jupyter gateway (``component=gateway``), from any namespace (a gateway elsewhere
    may run kernels here with this namespace's consent), on the claim port and the kernel
    ports. Owned by the JupyterKernelSpec.
    """
    meta = kernelspec.get("metadata") or {}
    spec = kernelspec.get("spec") or {}
    ks_name = str(meta.get("name"))
    rule: Obj = {
        "from": [
            {
                "podSelector": {
                    "matchLabels": {
                        crds.LABEL_COMPONENT: crds.COMPONENT_GATEWAY,
                        crds.LABEL_MANAGED_BY: crds.MANAGED_BY,
                    }
                },
                "namespaceSelector": {},
            }
        ]
    }
    lower, _, upper = str(spec.get("portRange") or "0..0").partition("..")
    if lower.isdigit() and upper.isdigit() and int(upper) > 0:
        rule["ports"] = [
            {"protocol": "TCP", "port": warm_pool.DEFAULT_CLAIM_PORT},
            {"protocol": "TCP", "port": int(lower), "endPort": int(upper)},
        ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"{ks_name[:57]}-pool",
            "namespace": meta.get("namespace"),
            "labels": {crds.LABEL_MANAGED_BY: crds.MANAGED_BY, warm_pool.LABEL_POOL: ks_name},
            "ownerReferences": [
                {
                    "apiVersion": crds.API_VERSION,
                    "kind": crds.JUPYTER_KERNEL_SPEC.kind,
                    "name": ks_name,
                    "uid": str(meta.get("uid")),
                    "controller": True,
                }
            ],
        },
        "spec": {
            "podSelector": {
                "matchLabels": {
                    crds.LABEL_COMPONENT: crds.COMPONENT_KERNEL,
                    warm_pool.LABEL_POOL: ks_name,
                }
            },
            "policyTypes": ["Ingress"],
            "ingress": [rule],
        },
    }


def new_claim_key() -> str:
    return secrets.token_hex(32)


def gpus_of(template: Mapping[str, Any] | None) -> int:
    """GPUs a pod built from ``template`` holds (limits, else requests, summed)."""
    total = 0
    for container in ((template or {}).get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        value = (resources.get("limits") or {}).get(GPU_RESOURCE) or (
            resources.get("requests") or {}
        ).get(GPU_RESOURCE)
        try:
            total += int(str(value or 0))
        except ValueError:
            continue
    return total


@dataclass(frozen=True)
class Member:
    """One kernel of a pool, as the operator's index saw it."""

    name: str
    state: str  # pooled / claimed
    phase: str
    created: float
    deleting: bool = False
    claimed_at: float | None = None
    has_session: bool = False
    gpus: int = 0

    @classmethod
    def from_object(cls, obj: Mapping[str, Any], created: float) -> Member:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        claimed_at, completed = None, False
        try:
            claim = json.loads(annotations.get(warm_pool.ANNOTATION_CLAIM) or "null")
            if isinstance(claim, dict) and isinstance(claim.get("at"), (int, float)):
                claimed_at = float(claim["at"])
            completed = isinstance(claim, dict) and bool(claim.get("completed"))
        except ValueError:
            claimed_at = created
        return cls(
            name=str(meta.get("name")),
            state=str(labels.get(warm_pool.LABEL_POOL_STATE) or ""),
            phase=str((obj.get("status") or {}).get("phase") or ""),
            created=created,
            deleting=bool(meta.get("deletionTimestamp")),
            claimed_at=claimed_at,
            # The claiming gateway marks the claim completed once the kernel reported back
            # (a session annotation says the same where sessions persist).
            has_session=completed or bool(annotations.get(crds.ANNOTATION_KERNEL_SESSION)),
            gpus=gpus_of((obj.get("spec") or {}).get("template")),
        )


@dataclass
class PoolPlan:
    create: int = 0
    delete: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    gpu_limited: bool = False


def plan_pool(
    pool: PoolSpec | None,
    members: Sequence[Member],
    now: float,
    gpus_per_kernel: int = 0,
    gpu_budget: int | None = None,
    claim_timeout: float = DEFAULT_CLAIM_TIMEOUT,
) -> PoolPlan:
    """What one pool needs: kernels to create, kernels to delete and why.

    ``gpu_budget``: GPUs that pooled kernels may still take cluster-wide beyond those they hold
    (``None``: no cap).
    """
    plan = PoolPlan()
    waiting = 0
    for m in members:
        if m.deleting:
            continue
        if m.state == warm_pool.POOL_STATE_CLAIMED:
            if not m.has_session and now - (m.claimed_at or m.created) > claim_timeout:
                plan.delete.append((m.name, "its claim never completed"))
            continue
        if m.phase in (crds.PHASE_FAILED, crds.PHASE_SUCCEEDED, crds.PHASE_UNKNOWN):
            plan.delete.append((m.name, f"pool kernel {m.phase.lower()}"))
            continue
        if pool is None:
            plan.delete.append((m.name, "the pool was turned off"))
            continue
        if pool.max_idle_seconds is not None and now - m.created > pool.max_idle_seconds:
            plan.delete.append((m.name, "older than maxIdleAge"))
            continue
        waiting += 1
    if pool is not None:
        if waiting > pool.size:
            extra = [
                m
                for m in members
                if m.state == warm_pool.POOL_STATE_POOLED
                and not m.deleting
                and m.name not in {n for n, _ in plan.delete}
            ]
            for m in sorted(extra, key=lambda m: m.created)[: waiting - pool.size]:
                plan.delete.append((m.name, "the pool is smaller now"))
        want = max(0, pool.size - waiting)
        if gpus_per_kernel > 0 and gpu_budget is not None:
            allowed = max(0, gpu_budget) // gpus_per_kernel
            if allowed < want:
                plan.gpu_limited = True
                want = allowed
        plan.create = want
    return plan
