"""Warm kernel pools: the names and the pool key shared by the operator and the gateway.

A JupyterKernelSpec with ``spec.warmPool.size > 0`` has the operator keep that many kernels
started and waiting (``status.phase: Pooled``); a gateway claims one on a start request of that
kernelspec (``gateway_plugin/warm_pool.py``) and hands it the user's identity over the kernel's
comm port, signed with the pool kernel's claim key. The operator's side is
``operator/warm_pools.py`` (handlers) and ``operator/warm_pool_objects.py`` (pure manifests).

The *pool key* is what a kernel pod cannot change once it runs: its pod template without the
kernel container's literal env (the identity, delivered at claim time) and without metadata.
Image, resources, uid/gid, volumes, node selectors, tolerations, service account: all in it.
Both sides compute it with :func:`pool_key` from the JupyterKernel's ``spec.template``; a start
request whose template differs from the pool's starts cold, and :func:`first_difference` names
the field for the log and the metric.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Final

from . import GROUP, PHASE_POOLED

#: On pool kernels: the JupyterKernelSpec (name) whose pool the kernel belongs to (or belonged).
LABEL_POOL: Final = f"{GROUP}/pool"
#: On pool kernels: ``pooled`` (waiting, claimable) or ``claimed`` (never pooled again).
LABEL_POOL_STATE: Final = f"{GROUP}/pool-state"
POOL_STATE_POOLED: Final = "pooled"
POOL_STATE_CLAIMED: Final = "claimed"
#: On pool kernels: :func:`pool_key` of its template (a label, so a claimer selects by it).
LABEL_POOL_KEY: Final = f"{GROUP}/pool-key"
#: On claimed kernels: JSON ``{"gateway": ..., "replica": ..., "kernelId": ..., "at": epoch}``.
ANNOTATION_CLAIM: Final = f"{GROUP}/claim"
#: The JupyterKernel phase of a pool kernel that waits for its claim (pod Running).
POOLED_PHASE: Final = PHASE_POOLED
#: Key of the pool kernel's Secret holding the claim key (HMAC key of the claim request).
SECRET_CLAIM_KEY: Final = "claim-key"
#: kernel.json ``metadata.process_proxy.config`` key: the kernelspec has a warm pool.
CONFIG_WARM_POOL: Final = "warm_pool"
#: Port of a pool kernel's comm port (a fixed port: the claimer must reach it before it has
#: any connection info). Inside the default kernel port range the NetworkPolicy opens.
DEFAULT_CLAIM_PORT: Final = 40000

_DURATION = re.compile(r"^([0-9]+)(s|m|h)$")


def parse_duration(text: str | int | None) -> float | None:
    """``"90s"``, ``"30m"``, ``"2h"`` (or an integer of seconds) in seconds; ``None``: unset."""
    if text is None or text == "":
        return None
    if isinstance(text, int) and not isinstance(text, bool):
        return float(text)
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError(
            f"spec.warmPool.maxIdleAge {text!r} is not a duration: use e.g. 90s, 30m or 2h"
        )
    return float(int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)])


def _container_key(container: Mapping[str, Any], kernel: bool) -> dict[str, Any]:
    out = copy.deepcopy(dict(container))
    if kernel:
        # Literal env is the identity (delivered at claim); valueFrom entries are not.
        env = [e for e in out.get("env") or [] if isinstance(e, Mapping) and "value" not in e]
        env += [
            e
            for e in out.get("env") or []
            if isinstance(e, Mapping) and e.get("name") == "KERNEL_ARGV"
        ]
        if env:
            out["env"] = sorted(env, key=lambda e: str(e.get("name")))
        else:
            out.pop("env", None)
    return out


def pool_key_fields(template: Mapping[str, Any] | None) -> dict[str, Any]:
    """The part of a JupyterKernel's ``spec.template`` that a running pod cannot change."""
    spec = dict((template or {}).get("spec") or {})
    containers = list(spec.get("containers") or [])
    index = next((i for i, c in enumerate(containers) if c.get("name") == "kernel"), 0)
    spec["containers"] = [_container_key(c, i == index) for i, c in enumerate(containers)]
    return spec


def pool_key(template: Mapping[str, Any] | None) -> str:
    """A label-safe digest of :func:`pool_key_fields`."""
    text = json.dumps(pool_key_fields(template), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def first_difference(a: Any, b: Any, path: str = "spec") -> str | None:
    """The first field path where two :func:`pool_key_fields` differ (``None``: equal)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b)):
            found = first_difference(a.get(key), b.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            name = x.get("name") if isinstance(x, Mapping) else None
            found = first_difference(x, y, f"{path}[{name or i}]")
            if found:
                return found
        return None
    return None if a == b else path
