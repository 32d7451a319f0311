"""The sandbox's RBAC: Kubernetes semantics of rules and bindings, 401/403 as kube-apiserver
answers them, escalation prevention, impersonation, access reviews and TokenRequest.

Unit tests drive :class:`elastic_jupyter.sandbox.rbac.Authorizer` over a real ``ApiState``; the
HTTP tests talk to an in-process API server as the admin and as users it minted tokens for.
"""

from __future__ import annotations

from typing import Any

import pytest

from elastic_jupyter.sandbox.rbac import Attributes, Authorizer, UserInfo, service_account_user
from elastic_jupyter.sandbox.state import ApiState
from tests.sandbox.test_api_support import ServerThread, raw, server

__all__ = ["server"]

RBAC = "rbac.authorization.k8s.io"
TENANT = UserInfo("tenant-a", ("system:authenticated",))


def _state() -> ApiState:
    state = ApiState()
    for ns in ("team", "other"):
        state.create(state.rt(("", "namespaces")), None, {"metadata": {"name": ns}})
    return state


def _put(state: ApiState, plural: str, obj: dict[str, Any], namespace: str | None = None) -> None:
    state.create(state.rt((RBAC, plural)), namespace, obj)


def _role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "rules": rules}


def _binding(name: str, kind: str, role: str, subjects: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": kind, "name": role},
        "subjects": subjects,
    }


def _can(
    authz: Authorizer,
    user: UserInfo,
    verb: str,
    resource: str,
    namespace: str = "team",
    *,
    group: str = "",
    sub: str = "",
    name: str = "",
) -> bool:
    return authz.authorize(user, Attributes(verb, namespace, group, resource, sub, name))


def test_role_binding_scopes_a_cluster_role_to_its_namespace() -> None:
    state = _state()
    _put(state, "clusterroles", _role("reader", [{"apiGroups": [""], "resources": ["pods"],
                                                   "verbs": ["get", "list"]}]))  # fmt: skip
    user = {"kind": "User", "name": "tenant-a"}
    _put(state, "rolebindings", _binding("r", "ClusterRole", "reader", [user]), "team")
    authz = Authorizer(state.store)
    assert _can(authz, TENANT, "list", "pods", "team")
    assert not _can(authz, TENANT, "list", "pods", "other")
    assert not _can(authz, TENANT, "list", "pods", ""), "cluster scope from a RoleBinding"
    assert not _can(authz, TENANT, "delete", "pods", "team", name="p")
    assert not _can(authz, TENANT, "get", "secrets", "team", name="s")


def test_resource_names_never_allow_list_watch_or_create() -> None:
    state = _state()
    rule = {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["mine"],
            "verbs": ["get", "list", "watch", "create", "update"]}  # fmt: skip
    _put(state, "roles", _role("one", [rule]), "team")
    subject = {"kind": "User", "name": "tenant-a"}
    _put(state, "rolebindings", _binding("one", "Role", "one", [subject]), "team")
    authz = Authorizer(state.store)
    assert _can(authz, TENANT, "get", "secrets", name="mine")
    assert _can(authz, TENANT, "update", "secrets", name="mine")
    assert not _can(authz, TENANT, "get", "secrets", name="theirs")
    for verb in ("list", "watch", "create"):
        assert not _can(authz, TENANT, verb, "secrets"), verb


def test_subresources_and_groups_match_exactly() -> None:
    state = _state()
    rules = [
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": ["kubeflow.tkestack.io"], "resources": ["*/status"], "verbs": ["patch"]},
    ]
    _put(state, "roles", _role("subs", rules), "team")
    group = {"kind": "Group", "name": "system:serviceaccounts:team"}
    _put(state, "rolebindings", _binding("subs", "Role", "subs", [group]), "team")
    authz = Authorizer(state.store)
    sa = service_account_user("team", "gw")
    assert _can(authz, sa, "get", "pods", sub="log", name="p")
    assert not _can(authz, sa, "get", "pods", name="p"), "pods/log does not grant pods"
    kf = "kubeflow.tkestack.io"
    assert _can(authz, sa, "patch", "jupyterkernels", group=kf, sub="status", name="k")
    assert not _can(authz, sa, "patch", "jupyterkernels", group=kf, name="k")
    assert not _can(authz, sa, "patch", "jupyterkernels", group="other.io", sub="status", name="k")
    # the group binding covers every account of the namespace, and only those
    assert not _can(authz, service_account_user("other", "gw"), "get", "pods", sub="log", name="p")
    assert not _can(authz, TENANT, "get", "pods", sub="log", name="p")


def test_service_account_subjects_and_superusers() -> None:
    state = _state()
    _put(state, "clusterroles", _role("all-pods", [{"apiGroups": [""], "resources": ["pods"],
                                                     "verbs": ["*"]}]))  # fmt: skip
    subject = {"kind": "ServiceAccount", "name": "op", "namespace": "team"}
    _put(state, "clusterrolebindings", _binding("op", "ClusterRole", "all-pods", [subject]))
    authz = Authorizer(state.store)
    assert _can(authz, service_account_user("team", "op"), "delete", "pods", "other", name="x")
    assert not _can(authz, service_account_user("other", "op"), "delete", "pods", name="x")
    admin = UserInfo("root", ("system:masters",))
    assert _can(authz, admin, "delete", "nodes", "", name="n")


def test_a_new_binding_takes_effect_at_once() -> None:
    state = _state()
    authz = Authorizer(state.store)
    assert not _can(authz, TENANT, "get", "configmaps", name="c")  # and cached
    _put(state, "roles", _role("cm", [{"apiGroups": [""], "resources": ["configmaps"],
                                        "verbs": ["get"]}]), "team")  # fmt: skip
    subject = {"kind": "User", "name": "tenant-a"}
    _put(state, "rolebindings", _binding("cm", "Role", "cm", [subject]), "team")
    assert _can(authz, TENANT, "get", "configmaps", name="c")


# --- over HTTP ----------------------------------------------------------------------------------


def _token(server: ServerThread, user: str, groups: tuple[str, ...] = ()) -> dict[str, str]:
    code, body, _ = raw(server.url, "POST", "/sandbox/tokens", {"user": user, "groups": groups})
    assert code == 201, body
    return {"Authorization": f"Bearer {body['token']}"}


def _as(server: ServerThread, headers: dict[str, str], method: str, path: str, body: Any = None):  # type: ignore[no-untyped-def]
    return raw(server.url, method, path, body, headers=headers)


@pytest.mark.parametrize(
    ("path", "authorization", "expected"),
    [
        ("/api/v1/namespaces", "", 401),
        ("/apis", "", 401),
        ("/sandbox/stats", "", 401),
        ("/api/v1/pods", "Bearer nope", 401),
        ("/version", "", 200),
        ("/healthz", "", 200),
    ],
)
def test_unauthenticated_requests_get_401(
    server: ServerThread, path: str, authorization: str, expected: int
) -> None:
    code, body, _ = raw(server.url, "GET", path, headers={"Authorization": authorization})
    assert code == expected
    if expected == 401:
        assert body["reason"] == "Unauthorized"


def test_forbidden_bodies_are_worded_like_kube_apiserver(server: ServerThread) -> None:
    tenant = _token(server, "tenant-a")
    code, body, _ = _as(server, tenant, "GET", "/api/v1/namespaces/default/pods")
    assert code == 403
    assert body["message"] == (
        'pods is forbidden: User "tenant-a" cannot list resource "pods" in API group "" in the '
        'namespace "default"'
    )
    assert body["reason"] == "Forbidden" and body["details"] == {"kind": "pods"}
    code, body, _ = _as(server, tenant, "GET", "/api/v1/namespaces/default/pods/p/log")
    assert body["message"] == (
        'pods "p" is forbidden: User "tenant-a" cannot get resource "pods/log" in API group "" '
        'in the namespace "default"'
    )
    code, body, _ = _as(server, tenant, "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles")
    assert body["message"] == (
        'clusterroles.rbac.authorization.k8s.io is forbidden: User "tenant-a" cannot list '
        'resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope'
    )
    # discovery is open to every authenticated user; the sandbox's own endpoints are not
    assert _as(server, tenant, "GET", "/apis")[0] == 200
    code, body, _ = _as(server, tenant, "GET", "/sandbox/stats")
    assert code == 403 and body["message"].startswith('forbidden: User "tenant-a" cannot get path')


def test_escalation_is_refused_and_bind_escalate_verbs_allow_it(server: ServerThread) -> None:
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
    # the tenant may manage RBAC in its namespace but holds only read access to pods
    role = {"metadata": {"name": "tenant-rbac"}, "rules": [
        # not "*": that would include the escalate and bind verbs
        {"apiGroups": [RBAC], "resources": ["roles", "rolebindings"],
         "verbs": ["get", "list", "create", "update", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    ]}  # fmt: skip
    assert raw(server.url, "POST", f"{rbac}/roles", role)[0] == 201
    binding = _binding("tenant-rbac", "Role", "tenant-rbac", [{"kind": "User", "name": "tenant-a"}])
    assert raw(server.url, "POST", f"{rbac}/rolebindings", binding)[0] == 201
    tenant = _token(server, "tenant-a")
    grab = _binding("grab", "ClusterRole", "cluster-admin", [{"kind": "User", "name": "tenant-a"}])
    code, body, _ = _as(server, tenant, "POST", f"{rbac}/rolebindings", grab)
    assert code == 403, body
    assert body["message"].startswith(
        'rolebindings.rbac.authorization.k8s.io "grab" is forbidden: user "tenant-a" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
        "currently held:"
    )
    wider = {"metadata": {"name": "wider"}, "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}  # fmt: skip
    code, body, _ = _as(server, tenant, "POST", f"{rbac}/roles", wider)
    assert code == 403 and 'Resources:["secrets"]' in body["message"], body
    # within what it holds: fine
    narrow = {"metadata": {"name": "narrow"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}  # fmt: skip
    assert _as(server, tenant, "POST", f"{rbac}/roles", narrow)[0] == 201
    # a patch that widens an existing role is checked too
    patch = {"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
    code, _, _ = raw(
        server.url, "PATCH", f"{rbac}/roles/narrow", patch,
        content_type="application/merge-patch+json", headers=tenant,
    )  # fmt: skip
    assert code == 403
    # "bind" on a ClusterRole lets a user bind it without holding it (Kubernetes semantics)
    bind_view = {"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["bind"]}
    binder = {"metadata": {"name": "binder"}, "rules": [bind_view | {"resourceNames": ["view"]}]}
    assert raw(server.url, "POST", f"{rbac}/roles", binder)[0] == 201
    b2 = _binding("binder", "Role", "binder", [{"kind": "User", "name": "tenant-a"}])
    assert raw(server.url, "POST", f"{rbac}/rolebindings", b2)[0] == 201
    viewer = _binding("viewer", "ClusterRole", "view", [{"kind": "User", "name": "x"}])
    assert _as(server, tenant, "POST", f"{rbac}/rolebindings", viewer)[0] == 201


def test_impersonation_needs_the_impersonate_verb(server: ServerThread) -> None:
    tenant = _token(server, "tenant-a")
    code, body, _ = _as(server, {**tenant, "Impersonate-User": "admin"}, "GET", "/api/v1/pods")
    assert code == 403
    assert body["message"] == (
        'users "admin" is forbidden: User "tenant-a" cannot impersonate resource "users" in API '
        'group "" at the cluster scope'
    )
    admin_as_tenant = {"Impersonate-User": "tenant-a"}
    code, body, _ = raw(
        server.url, "GET", "/api/v1/namespaces/default/pods", headers=admin_as_tenant
    )
    assert code == 403 and 'User "tenant-a"' in body["message"]


def test_access_reviews_and_token_request(server: ServerThread) -> None:
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": {"verb": "list", "resource": "pods",
                                              "namespace": "default"}}}  # fmt: skip
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    tenant = _token(server, "tenant-a")
    code, body, _ = _as(server, tenant, "POST", path, review)
    assert code == 201 and body["status"]["allowed"] is False
    assert raw(server.url, "POST", path, review)[1]["status"]["allowed"] is True
    # TokenRequest: a token of the namespace's default account, which may do nothing yet
    code, body, _ = raw(
        server.url, "POST", "/api/v1/namespaces/default/serviceaccounts/default/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )  # fmt: skip
    assert code == 201
    sa = {"Authorization": f"Bearer {body['status']['token']}"}
    whoami = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    code, me, _ = _as(
        server, sa, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", whoami
    )
    assert me["status"]["userInfo"]["username"] == "system:serviceaccount:default:default"
    assert "system:serviceaccounts:default" in me["status"]["userInfo"]["groups"]
    assert _as(server, sa, "GET", "/api/v1/namespaces/default/secrets")[0] == 403
    # the token dies with its account
    raw(server.url, "DELETE", "/api/v1/namespaces/default/serviceaccounts/default")
    assert _as(server, sa, "GET", "/apis")[0] == 401


def test_pods_need_an_existing_service_account(server: ServerThread) -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"serviceAccountName": "ghost",
           "containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip
    code, body, _ = raw(server.url, "POST", "/api/v1/namespaces/default/pods", pod)
    assert code == 403
    assert body["message"] == (
        'pods "p" is forbidden: error looking up service account default/ghost: '
        'serviceaccount "ghost" not found'
    )


@pytest.mark.parametrize("path", ["/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1"])
def test_watches_are_authorized(server: ServerThread, path: str) -> None:
    code, body, _ = _as(server, _token(server, "tenant-a"), "GET", path)
    assert code == 403 and "cannot watch resource" in body["message"]
