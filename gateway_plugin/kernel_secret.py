"""The kernel's Secret: named exactly like its JupyterKernel, owned by it, written by the gateway.

Everything the gateway keeps secret about one kernel lives in this one Secret, each under its own
key (names in :mod:`elastic_jupyter.crds`):

* ``launch-token``: makes the kernel's answer unforgeable. Every launcher reports its connection
  info to the gateway's response address, encrypted with the gateway's RSA *public* key; that key
  is in every kernel's env and kernel ids are in JupyterKernel labels, so anyone who can reach
  the response address could send "kernel X listens at my address" before X does, and receive
  the user's code. So for each launch the process proxy draws a random token, writes it here
  (the operator mounts the Secret into that kernel's pod only, see ``operator/kernel_pod.py``)
  and registers it with :func:`expect` (the table lives on EG's ResponseManager); the
  launcher puts it into the encrypted connection info;
  :func:`install` wraps Enterprise Gateway's ``ResponseManager._post_connection`` so that an
  answer for a kernel with a registered token is accepted only with that token, and only once.
  Kernels launched without a token (other process proxies) keep EG's behaviour.
* ``connection-key`` and ``launch-args``: the kernel's HMAC key and EG's launch arguments (they
  carry the client's env and headers), kept by the session store (:mod:`.session_store`) so any
  gateway process of the JupyterGateway can re-attach to the kernel.

Writes are create-or-merge: :func:`put_kernel_secret` never removes a key it was not given, so
independent writers share the object. The JupyterKernel is the Secret's controller owner, so
deleting the kernel (shutdown, culling, the operator's clean-up) deletes the Secret with it.

RBAC: the gateway's service account needs ``secrets`` create, get and patch in each kernel
namespace (``operator/gateway_objects.py`` grants exactly that); nothing else reads these.
"""

from __future__ import annotations

import base64
import functools
import hmac
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from elastic_jupyter import crds

from .kube import ApiError, KubeApi

log = logging.getLogger(__name__)

Obj = dict[str, Any]

#: The attribute of EG's ResponseManager holding its :class:`LaunchTokens`.
_TOKENS = "_elastic_jupyter_launch_tokens"
#: Set on the wrapped ``_post_connection``: the wrapper is in place.
_WRAPPED = "_elastic_jupyter_admits"
# Guards only the creation of a ResponseManager's token table; holds no state.
_create_lock = threading.Lock()


# --- the Secret ------------------------------------------------------------------------------


def secret_path(namespace: str, name: str | None = None) -> str:
    """REST path of the Secrets of ``namespace`` (or of one)."""
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets"
    return path if name is None else f"{path}/{quote(name, safe='')}"


def _encoded(data: Mapping[str, str]) -> dict[str, str]:
    return {k: base64.b64encode(v.encode("utf-8")).decode("ascii") for k, v in data.items()}


def kernel_secret_manifest(
    namespace: str, kernel_name: str, kernel_uid: str, data: Mapping[str, str]
) -> Obj:
    """The Secret of JupyterKernel ``namespace/kernel_name`` (uid ``kernel_uid``) holding
    ``data`` (plain text values, base64-encoded here)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": crds.kernel_secret_name(kernel_name),
            "namespace": namespace,
            "labels": {crds.LABEL_MANAGED_BY: crds.MANAGED_BY, crds.LABEL_KERNEL: kernel_name},
            "ownerReferences": [
                {
                    "apiVersion": crds.API_VERSION,
                    "kind": crds.JUPYTER_KERNEL.kind,
                    "name": kernel_name,
                    "uid": kernel_uid,
                    "controller": True,
                    # False: setting it needs update on jupyterkernels/finalizers in clusters
                    # that enforce owner-reference permissions, and nothing waits on it.
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "data": _encoded(data),
    }


def put_kernel_secret(
    api: KubeApi,
    namespace: str,
    kernel_name: str,
    kernel_uid: str,
    data: Mapping[str, str],
    exists: bool = False,
) -> None:
    """Create the kernel's Secret with ``data``, or merge ``data`` into the existing one (other
    keys are kept). Blocking. Raises :class:`~.kube.ApiError`.

    ``exists``: the caller expects the Secret to be there already (the session stores write
    after the launch created it), so the merge goes first and a create follows only on 404:
    one request instead of a refused create plus the merge.
    """
    manifest = kernel_secret_manifest(namespace, kernel_name, kernel_uid, data)
    merge: Callable[[], object] = functools.partial(
        api.request,
        "PATCH",
        secret_path(namespace, crds.kernel_secret_name(kernel_name)),
        body={"data": manifest["data"]},
        content_type="application/merge-patch+json",
        timeout=5.0,
    )
    if exists:
        try:
            merge()
            return
        except ApiError as err:
            if not err.not_found:
                raise
    try:
        api.request("POST", secret_path(namespace), body=manifest, timeout=5.0)
        return
    except ApiError as err:
        if not err.conflict:
            raise
    merge()


def read_kernel_secret(api: KubeApi, namespace: str, kernel_name: str) -> dict[str, str] | None:
    """The decoded keys of the kernel's Secret; ``None`` when there is none."""
    try:
        obj = api.request(
            "GET", secret_path(namespace, crds.kernel_secret_name(kernel_name)), timeout=5.0
        )
    except ApiError as err:
        if err.not_found:
            return None
        raise
    data = obj.get("data") or {}
    return {
        str(k): base64.b64decode(str(v)).decode("utf-8", "replace")
        for k, v in data.items()
        if isinstance(v, str)
    }


# --- the launch token ------------------------------------------------------------------------


def new_launch_token() -> str:
    return secrets.token_urlsafe(32)


def secret_manifest(kernel: Obj, launch_token: str) -> Obj:
    """The kernel's Secret with its launch token, for a created JupyterKernel (its uid)."""
    meta = kernel["metadata"]
    data = {crds.KERNEL_SECRET_LAUNCH_TOKEN_KEY: launch_token}
    return kernel_secret_manifest(str(meta["namespace"]), str(meta["name"]), meta["uid"], data)


def create_secret(api: KubeApi, kernel: Obj, launch_token: str) -> None:
    """Write the launch token into the kernel's Secret (blocking). Raises ``ApiError``."""
    meta = kernel["metadata"]
    data = {crds.KERNEL_SECRET_LAUNCH_TOKEN_KEY: launch_token}
    put_kernel_secret(api, str(meta["namespace"]), str(meta["name"]), meta["uid"], data)


class LaunchTokens:
    """The launch tokens one ResponseManager expects: kernel id → token, ``None`` once an
    answer was accepted.

    Enterprise Gateway has one ResponseManager per process (one RSA key, one response port),
    shared by every application in it; the tokens live with it, the object that receives the
    answers, not in a module global.
    """

    def __init__(self) -> None:
        self._expected: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def expect(self, kernel_id: str, launch_token: str) -> None:
        with self._lock:
            self._expected[kernel_id] = launch_token

    def forget(self, kernel_id: str) -> None:
        with self._lock:
            self._expected.pop(kernel_id, None)

    def admit(self, connection_info: dict[str, Any]) -> tuple[bool, str]:
        """Whether to pass ``connection_info`` on to EG; the reason when not. Consumes the
        token."""
        kernel_id = str(connection_info.get("kernel_id") or "")
        token = connection_info.pop("launch_token", None)
        with self._lock:
            if kernel_id not in self._expected:
                return True, ""
            wanted = self._expected[kernel_id]
            if wanted is None:
                return False, "a second answer (this kernel's connection info was accepted already)"
            if not isinstance(token, str) or not hmac.compare_digest(token, wanted):
                return False, "no or a wrong launch token (not from the kernel's own pod)"
            self._expected[kernel_id] = None
        return True, ""


def launch_tokens(response_manager: Any = None) -> LaunchTokens:
    """The token table of ``response_manager`` (default: EG's process-wide instance)."""
    if response_manager is None:
        from enterprise_gateway.services.processproxies.processproxy import ResponseManager

        response_manager = ResponseManager.instance()
    tokens = getattr(response_manager, _TOKENS, None)
    if isinstance(tokens, LaunchTokens):
        return tokens
    with _create_lock:
        tokens = getattr(response_manager, _TOKENS, None)
        if not isinstance(tokens, LaunchTokens):
            tokens = LaunchTokens()
            setattr(response_manager, _TOKENS, tokens)
    return tokens


def expect(kernel_id: str, launch_token: str, response_manager: Any = None) -> None:
    """The next answer for ``kernel_id`` must carry ``launch_token`` (each launch, restart).

    Called by the process proxy before each launch, with its ResponseManager."""
    launch_tokens(response_manager).expect(kernel_id, launch_token)


def forget(kernel_id: str, response_manager: Any = None) -> None:
    """Called by the process proxy's cleanup: the kernel expects no answer any more."""
    launch_tokens(response_manager).forget(kernel_id)


def install() -> None:
    """Wrap ``ResponseManager._post_connection`` once per process (see the module docstring).

    Called by every runtime's ``start_services`` and before every launch; later calls change
    nothing. The wrapper checks each answer against its own manager's :class:`LaunchTokens`.
    """
    from enterprise_gateway.services.processproxies.processproxy import ResponseManager

    manager: Any = ResponseManager
    with _create_lock:
        original = manager._post_connection
        if getattr(original, _WRAPPED, False):
            return

        def _post_connection(self: Any, connection_info: dict[str, Any]) -> None:
            ok, why = launch_tokens(self).admit(connection_info)
            if not ok:
                log.warning(
                    "response address: refused connection info for kernel %s: %s",
                    connection_info.get("kernel_id"),
                    why,
                )
                return
            original(self, connection_info)

        setattr(_post_connection, _WRAPPED, True)
        manager._post_connection = _post_connection
    # The same neighbours could stall the address itself: read it without EG's one-at-a-time loop.
    from . import response_reader

    response_reader.install()


__all__ = [
    "ApiError",
    "LaunchTokens",
    "create_secret",
    "expect",
    "forget",
    "install",
    "kernel_secret_manifest",
    "launch_tokens",
    "new_launch_token",
    "put_kernel_secret",
    "read_kernel_secret",
    "secret_manifest",
]
