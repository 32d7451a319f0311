"""A tenant (admin of its own namespace, nothing else) tries to reach beyond its namespace.

Every attack runs through kubectl with the tenant's own kubeconfig, against the sandbox with
RBAC on, and must be refused with the API server's own words.
"""

from __future__ import annotations

import pytest

from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.security.conftest import Tenant

pytestmark = pytest.mark.kubectl


def _refused(result: object, message: str) -> None:
    stderr = getattr(result, "stderr", "")
    assert getattr(result, "returncode", 0) != 0, f"the attack succeeded: {result}"
    # kubectl prefixes "Error from server (Forbidden): " or "error: failed to create …: "
    assert message in stderr, stderr


def test_tenant_cannot_read_another_namespace(tenant: Tenant, victim: str) -> None:
    user = tenant.user
    _refused(
        tenant.kubectl("get", "secret", "db-password", "-n", victim, "-o", "yaml"),
        f'secrets "db-password" is forbidden: User "{user}" cannot get resource "secrets" in '
        f'API group "" in the namespace "{victim}"',
    )
    _refused(
        tenant.kubectl("get", "pods", "-n", victim),
        f'pods is forbidden: User "{user}" cannot list resource "pods" in API group "" in the '
        f'namespace "{victim}"',
    )
    _refused(
        tenant.kubectl("logs", "work", "-n", victim),
        f'pods "work" is forbidden: User "{user}" cannot get resource "pods" in API group "" in '
        f'the namespace "{victim}"',
    )
    _refused(
        tenant.kubectl("get", "jupyterkernels", "-n", victim),
        f'jupyterkernels.kubeflow.tkestack.io is forbidden: User "{user}" cannot list resource '
        f'"jupyterkernels" in API group "kubeflow.tkestack.io" in the namespace "{victim}"',
    )
    _refused(
        tenant.kubectl("get", "secrets", "--all-namespaces"),
        f'secrets is forbidden: User "{user}" cannot list resource "secrets" in API group "" at '
        "the cluster scope",
    )
    _refused(
        tenant.kubectl("delete", "pod", "work", "-n", victim, "--wait=false"),
        f'pods "work" is forbidden: User "{user}" cannot delete resource "pods"',
    )
    # a watch is authorized like a list
    _refused(
        tenant.kubectl("get", "secrets", "-n", victim, "--watch", "--request-timeout=5s"),
        f'secrets is forbidden: User "{user}" cannot',
    )
    # while its own namespace is its own
    assert tenant.kubectl("get", "pods").returncode == 0


def test_tenant_cannot_grant_itself_more_than_it_holds(tenant: Tenant, victim: str) -> None:
    ns = tenant.namespace
    result = tenant.kubectl(
        "create", "rolebinding", "grab", "-n", ns, "--clusterrole=cluster-admin",
        f"--user={tenant.user}",
    )  # fmt: skip
    assert result.returncode != 0
    assert (
        f'rolebindings.rbac.authorization.k8s.io "grab" is forbidden: user "{tenant.user}" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
        "currently held:" in result.stderr
    ), result.stderr
    # a Role wider than what it holds in its own namespace (it cannot touch nodes or CRDs)
    result = tenant.kubectl(
        "create", "role", "wide", "-n", ns, "--verb=*", "--resource=*.*",
    )  # fmt: skip
    assert result.returncode != 0 and "not currently held" in result.stderr, result.stderr
    # a binding in another namespace
    _refused(
        tenant.kubectl(
            "create",
            "rolebinding",
            "in",
            "-n",
            victim,
            "--clusterrole=view",
            f"--user={tenant.user}",
        ),
        f'rolebindings.rbac.authorization.k8s.io is forbidden: User "{tenant.user}" cannot '
        f'create resource "rolebindings" in API group "rbac.authorization.k8s.io" in the '
        f'namespace "{victim}"',
    )
    # a ClusterRoleBinding at all
    _refused(
        tenant.kubectl(
            "create", "clusterrolebinding", "grab", "--clusterrole=view", f"--user={tenant.user}"
        ),
        f'clusterrolebindings.rbac.authorization.k8s.io is forbidden: User "{tenant.user}" '
        'cannot create resource "clusterrolebindings"',
    )
    # what it holds, it may hand on inside its namespace
    assert (
        tenant.kubectl(
            "create", "rolebinding", "viewer", "-n", ns, "--clusterrole=view", "--user=colleague"
        ).returncode
        == 0
    )


def test_tenant_cannot_impersonate(tenant: Tenant, victim: str) -> None:
    _refused(
        tenant.kubectl("get", "pods", "-n", victim, "--as=sandbox-admin"),
        f'users "sandbox-admin" is forbidden: User "{tenant.user}" cannot impersonate resource '
        '"users" in API group "" at the cluster scope',
    )
    _refused(
        tenant.kubectl("get", "pods", "-n", victim, "--as=x", "--as-group=system:masters"),
        f'User "{tenant.user}" cannot impersonate resource',
    )
    _refused(
        tenant.kubectl(
            "get", "secrets", "-n", victim, f"--as=system:serviceaccount:{victim}:default"
        ),
        f'serviceaccounts "default" is forbidden: User "{tenant.user}" cannot impersonate '
        f'resource "serviceaccounts" in API group "" in the namespace "{victim}"',
    )


def test_can_i_answers_for_the_tenant(tenant: Tenant, victim: str) -> None:
    ns = tenant.namespace
    assert tenant.can_i("create", "pods", "-n", ns)
    assert tenant.can_i("get", "secrets", "-n", ns)
    assert tenant.can_i("create", "rolebindings", "-n", ns)
    assert not tenant.can_i("get", "secrets", "-n", victim)
    assert not tenant.can_i("list", "pods", "-n", victim)
    assert not tenant.can_i("list", "jupyterkernels", "-n", victim)
    assert not tenant.can_i("list", "pods", "--all-namespaces")
    assert not tenant.can_i("create", "clusterrolebindings")
    assert not tenant.can_i("impersonate", "users")
    assert not tenant.can_i("escalate", "roles", "-n", ns)


def test_the_admin_kubeconfig_is_admin_and_anonymous_is_nobody(sandbox: SandboxCluster) -> None:
    assert sandbox.kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"
    whoami = sandbox.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}").stdout
    assert "system:masters" in whoami
    anonymous = sandbox.state_dir / "anonymous.kubeconfig"
    text = sandbox.kubeconfig.read_text(encoding="utf-8")
    token_line = next(line for line in text.splitlines() if "token:" in line)
    anonymous.write_text(text.replace(token_line, "    token: not-a-real-token"), encoding="utf-8")
    result = sandbox.kubectl("get", "pods", check=False, kubeconfig=anonymous)
    assert result.returncode != 0 and "Unauthorized" in result.stderr + result.stdout
