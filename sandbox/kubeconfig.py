"""The kubeconfig of a sandbox: one cluster, user and context named ``elastic-jupyter-sandbox``.

Written by ``elastic-jupyter-sandbox up`` (:mod:`.cli`) and read by :mod:`.cluster`; kubectl,
the ``kubernetes`` client and kopf all load it. The server URL is plain ``http://`` and the user
has a dummy token (the sandbox authenticates nobody; RBAC objects are stored, not enforced).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

NAME = "elastic-jupyter-sandbox"


def kubeconfig_dict(url: str, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NAME, "cluster": {"server": url}}],
        "users": [{"name": NAME, "user": {"token": "sandbox"}}],
        "contexts": [
            {"name": NAME, "context": {"cluster": NAME, "user": NAME, "namespace": namespace}}
        ],
        "current-context": NAME,
        "preferences": {},
    }


def write_kubeconfig(path: Path, url: str) -> Path:
    """Write the kubeconfig atomically, readable by pods running as other users."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(kubeconfig_dict(url), sort_keys=False), encoding="utf-8")
    os.chmod(tmp, 0o644)
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
