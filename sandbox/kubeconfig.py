"""The kubeconfig of a sandbox: one cluster, user and context named ``elastic-jupyter-sandbox``.

Written by ``elastic-jupyter-sandbox up`` (:mod:`.cli`) and read by :mod:`.cluster`; kubectl,
the ``kubernetes`` client and kopf all load it. The server URL is plain ``http://``; the user
is the sandbox's admin (a bearer token of a ``system:masters`` member). Kubeconfigs of other
identities (named users, service accounts, a pod's own account) are written with the same
function and another token.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

NAME = "elastic-jupyter-sandbox"


def kubeconfig_dict(
    url: str, token: str, namespace: str = "default", user: str = NAME, ca_pem: bytes = b""
) -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": url}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NAME, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": NAME, "context": {"cluster": NAME, "user": user, "namespace": namespace}}
        ],
        "current-context": NAME,
        "preferences": {},
    }


def write_kubeconfig(
    path: Path,
    url: str,
    token: str,
    *,
    namespace: str = "default",
    user: str = NAME,
    mode: int = 0o600,
    ca_pem: bytes = b"",
) -> Path:
    """Write a kubeconfig atomically (``mode``: who may read the token in it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    data = kubeconfig_dict(url, token, namespace, user, ca_pem)
    tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    os.chmod(tmp, mode)
    tmp.replace(path)
    return path


def server_url(path: Path) -> str:
    """The server URL of a kubeconfig's current context."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    current = data.get("current-context")
    context: dict[str, Any] = next(
        (c["context"] for c in data.get("contexts") or [] if c["name"] == current), {}
    )
    cluster: dict[str, Any] = next(
        (c["cluster"] for c in data.get("clusters") or [] if c["name"] == context.get("cluster")),
        {},
    )
    return str(cluster.get("server") or "")


def token_of(path: Path) -> str:
    """The bearer token of a kubeconfig's current user ("" when it has none)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    current = data.get("current-context")
    context: dict[str, Any] = next(
        (c["context"] for c in data.get("contexts") or [] if c["name"] == current), {}
    )
    user: dict[str, Any] = next(
        (u["user"] for u in data.get("users") or [] if u["name"] == context.get("user")), {}
    )
    return str(user.get("token") or "")
