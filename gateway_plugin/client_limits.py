"""Limits on what a client's ``KERNEL_*`` env may ask for: pure functions, no I/O.

:mod:`.kernel_resource` calls these while it plans a kernel; each returns the refusal message
(the caller answers 403 with it) or ``None``.

* ``KERNEL_UID``/``KERNEL_GID`` must lie in the admin's range (``EJ_KERNEL_UID_RANGE``,
  default ``1000-65535``; ``EJ_KERNEL_GID_RANGE``, default ``100-65535``), so a client cannot
  pick a system account's id even where ``EG_PROHIBITED_UIDS`` lists only 0.
* ``KERNEL_CPUS``, ``KERNEL_MEMORY``, ``KERNEL_GPUS`` and their ``_LIMIT`` variants may not
  exceed the maximum the admin declared: the kernelspec's ``resources.limits`` (JupyterKernelSpec
  ``spec.resources``) and the template's kernel container ``resources.limits``. A resource with
  no declared limit has no maximum here (the namespace's ResourceQuota/LimitRange still apply).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

GPU_RESOURCE: Final = "nvidia.com/gpu"
DEFAULT_UID_RANGE: Final = (1000, 65535)
DEFAULT_GID_RANGE: Final = (100, 65535)
#: Client env → the resource it asks for.
RESOURCE_OF_VAR: Final = (
    ("KERNEL_CPUS", "cpu"),
    ("KERNEL_CPUS_LIMIT", "cpu"),
    ("KERNEL_MEMORY", "memory"),
    ("KERNEL_MEMORY_LIMIT", "memory"),
    ("KERNEL_GPUS", GPU_RESOURCE),
    ("KERNEL_GPUS_LIMIT", GPU_RESOURCE),
)


def parse_range(text: str, default: tuple[int, int]) -> tuple[int, int]:
    """``"1000-65535"`` → ``(1000, 65535)``; empty → ``default``; raise ValueError if malformed."""
    text = text.strip()
    if not text:
        return default
    low, sep, high = text.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise ValueError(f"{text!r} is not a range like 1000-65535")
    lower, upper = int(low), int(high)
    if lower > upper:
        raise ValueError(f"{text!r}: the lower bound is above the upper bound")
    return lower, upper


def id_refusal(name: str, value: int, allowed: tuple[int, int], setting: str) -> str | None:
    """Why ``KERNEL_UID``/``KERNEL_GID`` = ``value`` is refused, or None."""
    if allowed[0] <= value <= allowed[1]:
        return None
    return (
        f"{name}={value} is not allowed: kernels of this gateway may use ids "
        f"{allowed[0]}-{allowed[1]} (the gateway's admin sets {setting}); pick one in that range "
        "or remove it from the kernel start request's env"
    )


def maximum(where: str, resources: Any) -> dict[str, tuple[str, str]]:
    """Resource name → (limit, where it was declared) from a ``resources`` object's limits."""
    limits = resources.get("limits") if isinstance(resources, Mapping) else None
    if not isinstance(limits, Mapping):
        return {}
    return {str(k): (str(v), where) for k, v in limits.items() if isinstance(v, (str, int))}


def resource_refusal(
    client_env: Mapping[str, str],
    caps: Mapping[str, tuple[str, str]],
    quantity: Callable[[str, str], Decimal],
) -> str | None:
    """Why the client's resource env exceeds ``caps`` (see :func:`maximum`), or None."""
    for var, resource in RESOURCE_OF_VAR:
        asked = client_env.get(var, "").strip()
        if not asked or resource not in caps:
            continue
        cap, where = caps[resource]
        if quantity(var, asked) > quantity(f"{where} {resource}", cap):
            return (
                f"{var}={asked} is above this kernel's maximum {resource} of {cap} ({where}): "
                f"ask for at most {cap}"
            )
    return None
