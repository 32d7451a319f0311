"""Which namespaces accept kernels from which gateways: pure functions, no I/O.

A JupyterGateway may name other namespaces for its kernels (``spec.kernelNamespace``, and with
``allowKernelNamespace`` each of ``spec.kernelNamespaces``). The operator then creates a Role and
RoleBinding there for the gateway's service account. Whoever may create a JupyterGateway in one
namespace must not thereby get rights in another (``kube-system``…), so the target namespace has
to consent, in one of two ways a tenant cannot forge:

* the annotation ``kubeflow.tkestack.io/accept-kernels-from`` on the target Namespace, a
  comma-separated list of gateway namespaces (``*`` for any). Writing it needs ``patch`` on
  Namespaces, a cluster-admin right;
* the operator's environment, ``ELASTIC_JUPYTER_KERNEL_NAMESPACE_GRANTS``:
  ``target=source,source;target2=*`` (set by whoever deploys the operator).

Without either, the operator creates nothing in the target namespace and the gateway's status
says ``NamespaceNotAccepted`` with the annotation to add. The gateway's own namespace always
accepts its gateway. Consent is re-checked at every reconcile of the gateway and, for gateways
with other kernel namespaces, every ``ELASTIC_JUPYTER_CONSENT_RECHECK_SECONDS`` (30): a
withdrawn consent removes the gateway's Role and RoleBinding there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from elastic_jupyter import crds

ENV_GRANTS: Final = "ELASTIC_JUPYTER_KERNEL_NAMESPACE_GRANTS"
ENV_RECHECK: Final = "ELASTIC_JUPYTER_CONSENT_RECHECK_SECONDS"
DEFAULT_RECHECK_SECONDS: Final = 30.0
ANY: Final = "*"


def _names(text: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (text or "").split(",") if part.strip())


def parse_grants(text: str | None) -> dict[str, frozenset[str]]:
    """``target=a,b;other=*`` → ``{"target": {"a", "b"}, "other": {"*"}}`` (bad parts ignored)."""
    grants: dict[str, frozenset[str]] = {}
    for part in (text or "").split(";"):
        target, sep, sources = part.partition("=")
        if sep and target.strip():
            grants[target.strip()] = grants.get(target.strip(), frozenset()) | _names(sources)
    return grants


def admin_grants(env: Mapping[str, str] | None = None) -> dict[str, frozenset[str]]:
    """The operator admin's grants (from ``env``, default this process's environment)."""
    return parse_grants((os.environ if env is None else env).get(ENV_GRANTS))


def recheck_seconds(env: Mapping[str, str] | None = None) -> float:
    """How often a gateway with other kernel namespaces re-checks their consent (seconds)."""
    text = (os.environ if env is None else env).get(ENV_RECHECK, "")
    try:
        value = float(text) if text.strip() else DEFAULT_RECHECK_SECONDS
    except ValueError:
        return DEFAULT_RECHECK_SECONDS
    return value if value > 0 else DEFAULT_RECHECK_SECONDS


def accepted_sources(namespace: Mapping[str, Any] | None) -> frozenset[str]:
    """The gateway namespaces a Namespace object's annotation accepts."""
    annotations = ((namespace or {}).get("metadata") or {}).get("annotations") or {}
    return _names(annotations.get(crds.ANNOTATION_ACCEPT_KERNELS_FROM))


def accepts(
    namespace: Mapping[str, Any] | None,
    target: str,
    source: str,
    grants: Mapping[str, frozenset[str]],
) -> bool:
    """Whether namespace ``target`` (its object as read, None if absent) accepts kernels from a
    gateway in namespace ``source``."""
    if target == source:
        return True
    if namespace is None:
        return False  # a namespace that does not exist consents to nothing
    allowed = accepted_sources(namespace) | grants.get(target, frozenset())
    return source in allowed or ANY in allowed


def refusal_message(target: str, source: str) -> str:
    """What the gateway's status says for a namespace that did not accept it."""
    return (
        f"namespace {target} does not accept kernels from gateways in namespace {source}: "
        f"nothing was created there. A cluster admin can allow it with "
        f"`kubectl annotate namespace {target} {crds.ANNOTATION_ACCEPT_KERNELS_FROM}={source}` "
        f"(or {ENV_GRANTS} on the operator)"
    )
