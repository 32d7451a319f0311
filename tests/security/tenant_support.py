"""Shared by the tenant-policy attack tests: a real operator serving ``tpol-*`` namespaces.

The tests play a tenant who may write our custom resources (and ConfigMaps, RoleBindings…) in
their own namespace, and check what the operator does with hostile objects. The operator runs
as the CLI subprocess (``tests.operator.conftest.run_operator``) with the admin's default policy.
"""

from __future__ import annotations

import json
import urllib.error
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.helpers import wait_for
from tests.operator.conftest import OperatorProcess, get, run_operator

PREFIX = "tpol-"


def custom(plural: str, namespace: str, name: str = "") -> str:
    path = f"/apis/{crds.GROUP}/{crds.VERSION}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


@pytest.fixture(scope="module")
def policy_operator(
    sandbox: SandboxCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    tmp = tmp_path_factory.mktemp("tenant-policy")
    # Consent re-checked every 2 s (default 30) so that withdrawn consent shows quickly.
    env = {"ELASTIC_JUPYTER_CONSENT_RECHECK_SECONDS": "2"}
    with run_operator(sandbox, tmp, "--namespace", f"{PREFIX}*", env=env) as proc:
        yield proc


@pytest.fixture
def tenant_ns(sandbox: SandboxCluster, policy_operator: OperatorProcess) -> Iterator[str]:
    """The attacking tenant's own namespace, served by the operator."""
    name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    sandbox.create_namespace(name)
    yield name
    sandbox.delete_namespace(name)


def kubectl_apply(sandbox: SandboxCluster, namespace: str, manifest: dict[str, Any]) -> None:
    """What the tenant does: ``kubectl apply`` in their namespace."""
    sandbox.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))


def condition(body: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((body or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def wait_condition(
    sandbox: SandboxCluster, path: str, type_: str, reason: str, timeout: float = 20.0
) -> dict[str, Any]:
    """Wait until the object's condition ``type_`` has ``reason``; return the condition."""

    def check() -> dict[str, Any] | None:
        cond = condition(get(sandbox, path), type_)
        return cond if cond.get("reason") == reason else None

    found = wait_for(check, timeout=timeout, message=f"{type_}={reason} on {path}")
    assert found is not None
    return found


def exists(sandbox: SandboxCluster, path: str) -> bool:
    try:
        sandbox.request("GET", path)
        return True
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise
