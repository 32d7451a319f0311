"""Fixtures for the attacker's side: tenants with their own namespace and kubeconfig user.

* ``tenant`` - namespace ``sec-a-…`` whose user ``tenant-a-…`` holds the ``admin`` ClusterRole
  there (through a RoleBinding, as a platform team gives a team its namespace) and nothing
  anywhere else; :class:`Tenant` runs kubectl as that user.
* ``victim`` - another team's namespace holding what a tenant must not reach: a Secret, a pod,
  a JupyterKernel (created by the admin).

Setup is done as the sandbox admin, explicitly; every attack runs with the tenant's kubeconfig.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from elastic_jupyter import crds
from elastic_jupyter.sandbox.cluster import SandboxCluster


@dataclass
class Tenant:
    sandbox: SandboxCluster
    namespace: str
    user: str
    kubeconfig: Path

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """kubectl as this tenant (never raises: attacks are expected to fail)."""
        return self.sandbox.kubectl(*args, check=False, kubeconfig=self.kubeconfig)

    def can_i(self, *args: str) -> bool:
        """``kubectl auth can-i …`` as this tenant."""
        result = self.kubectl("auth", "can-i", *args)
        answer = result.stdout.strip()
        assert answer in ("yes", "no"), result.stderr
        return answer == "yes"


def _namespace(sandbox: SandboxCluster, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    sandbox.create_namespace(name)
    return name


@pytest.fixture
def tenant(sandbox: SandboxCluster, kubectl: object) -> Iterator[Tenant]:
    namespace = _namespace(sandbox, "sec-a")
    user = f"tenant-{namespace}"
    sandbox.kubectl(
        "create", "rolebinding", "team-admin", "-n", namespace, "--clusterrole=admin",
        f"--user={user}",
    )  # fmt: skip
    yield Tenant(sandbox, namespace, user, sandbox.user_kubeconfig(user, namespace=namespace))
    sandbox.delete_namespace(namespace)


@pytest.fixture
def victim(sandbox: SandboxCluster) -> Iterator[str]:
    namespace = _namespace(sandbox, "sec-b")
    sandbox.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": "db-password"}, "stringData": {"password": "hunter2"}},
    )
    sandbox.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        {
            "metadata": {"name": "work"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "60"]}]},
        },
    )
    sandbox.request(
        "POST",
        f"/apis/{crds.API_VERSION}/namespaces/{namespace}/{crds.JUPYTER_KERNEL.plural}",
        {
            "apiVersion": crds.API_VERSION,
            "kind": crds.JUPYTER_KERNEL.kind,
            "metadata": {"name": "their-kernel"},
            "spec": {"template": {"spec": {"containers": [{"name": "k", "image": "busybox"}]}}},
        },
    )
    yield namespace
    sandbox.delete_namespace(namespace)
