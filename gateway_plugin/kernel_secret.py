"""The kernel's Secret and the launch token that makes a kernel's answer unforgeable.

Every kernel's launcher reports its connection info to the gateway's response address,
encrypted with the gateway's RSA *public* key. That key is in every kernel's env, and kernel ids
are in JupyterKernel labels, so anyone who can reach the response address could send "kernel
X listens at my address" before X does, and receive the user's code. So:

* for each launch the process proxy draws a random launch token, creates *the kernel's Secret*
  (named exactly like the JupyterKernel, owned by it, key ``launch-token``; the operator mounts it
  into that kernel's pod only, see ``operator/kernel_pod.py``) and registers the token here;
* the launcher puts the token into the encrypted connection info;
* :func:`install` wraps Enterprise Gateway's ``ResponseManager._post_connection``: connection info
  for a kernel with a registered token is accepted only with that token, and only once (a replay
  or a second answer is dropped). Kernels launched without a token (other process proxies) keep
  EG's behaviour.

Another key of the same Secret may be added later (e.g. ``connection-key``): build and read the
Secret only through this module.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from typing import Any

from elastic_jupyter import crds

from .kube import ApiError, KubeApi

log = logging.getLogger(__name__)

Obj = dict[str, Any]

#: kernel id → the token its answer must carry; ``None`` once an answer was accepted.
_expected: dict[str, str | None] = {}
_lock = threading.Lock()
_installed = False


def new_launch_token() -> str:
    return secrets.token_urlsafe(32)


def secret_manifest(kernel: Obj, launch_token: str) -> Obj:
    """The kernel's Secret for a created JupyterKernel (needs its uid for the owner ref)."""
    meta = kernel["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": crds.kernel_secret_name(str(meta["name"])),
            "namespace": meta["namespace"],
            "labels": {
                crds.LABEL_MANAGED_BY: crds.MANAGED_BY,
                crds.LABEL_KERNEL: str(meta["name"]),
            },
            "ownerReferences": [
                {
                    "apiVersion": crds.API_VERSION,
                    "kind": crds.JUPYTER_KERNEL.kind,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "stringData": {crds.KERNEL_SECRET_LAUNCH_TOKEN_KEY: launch_token},
    }


def create_secret(api: KubeApi, kernel: Obj, launch_token: str) -> None:
    """Create the kernel's Secret (blocking). Raises ``ApiError``."""
    manifest = secret_manifest(kernel, launch_token)
    namespace = manifest["metadata"]["namespace"]
    api.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body=manifest, timeout=10.0)


def expect(kernel_id: str, launch_token: str) -> None:
    """The next answer for ``kernel_id`` must carry ``launch_token`` (each launch, restart)."""
    with _lock:
        _expected[kernel_id] = launch_token


def forget(kernel_id: str) -> None:
    with _lock:
        _expected.pop(kernel_id, None)


def admit(connection_info: dict[str, Any]) -> tuple[bool, str]:
    """Whether to pass ``connection_info`` on to EG; the reason when not. Consumes the token."""
    kernel_id = str(connection_info.get("kernel_id") or "")
    token = connection_info.pop("launch_token", None)
    with _lock:
        if kernel_id not in _expected:
            return True, ""
        wanted = _expected[kernel_id]
        if wanted is None:
            return False, "a second answer (this kernel's connection info was accepted already)"
        if not isinstance(token, str) or not hmac.compare_digest(token, wanted):
            return False, "no or a wrong launch token (not from the kernel's own pod)"
        _expected[kernel_id] = None
    return True, ""


def install() -> None:
    """Wrap ``ResponseManager._post_connection`` once per process (see the module docstring)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    from enterprise_gateway.services.processproxies.processproxy import ResponseManager

    manager: Any = ResponseManager
    original = manager._post_connection

    def _post_connection(self: Any, connection_info: dict[str, Any]) -> None:
        ok, why = admit(connection_info)
        if not ok:
            log.warning(
                "response address: refused connection info for kernel %s: %s",
                connection_info.get("kernel_id"),
                why,
            )
            return
        original(self, connection_info)

    manager._post_connection = _post_connection


__all__ = [
    "ApiError",
    "admit",
    "create_secret",
    "expect",
    "forget",
    "install",
    "new_launch_token",
    "secret_manifest",
]
