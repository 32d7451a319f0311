"""The default ClusterRoles and ClusterRoleBindings of a new cluster (kube-apiserver's bootstrap
policy, reduced to the resources the sandbox serves).

``cluster-admin`` (bound to ``system:masters``), ``system:discovery`` and ``system:basic-user``
(every authenticated user may read discovery and ask what it may do), and
``system:public-info-viewer`` (health and version, also for anonymous requests). ``admin``,
``edit`` and ``view`` are the user-facing roles meant for RoleBindings; Kubernetes aggregates
them from labelled roles, the sandbox states their rules directly (no aggregation).
"""

from __future__ import annotations

from typing import Any

from .rbac import AUTHENTICATED, MASTERS, UNAUTHENTICATED

JsonObj = dict[str, Any]

_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]

_DISCOVERY_URLS = [
    "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/readyz", "/version",
    "/version/", "/openapi", "/openapi/*",
]  # fmt: skip
_PUBLIC_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]

# what a namespace user reads (view) and writes (edit): workloads, config, services
_VIEW_CORE = [
    "configmaps", "endpoints", "persistentvolumeclaims", "pods", "pods/log", "pods/status",
    "services", "services/status", "serviceaccounts", "events", "namespaces/status",
    "persistentvolumeclaims/status",
]  # fmt: skip
_EDIT_CORE = [
    "configmaps", "endpoints", "persistentvolumeclaims", "pods", "secrets", "services",
    "serviceaccounts",
]  # fmt: skip
_APPS = ["deployments", "deployments/scale", "deployments/status", "replicasets",
         "replicasets/scale", "replicasets/status"]  # fmt: skip


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> JsonObj:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def _view_rules() -> list[JsonObj]:
    return [
        _rule([""], _VIEW_CORE, _READ),
        _rule([""], ["namespaces"], _READ),
        _rule(["apps"], _APPS, _READ),
        _rule(["events.k8s.io"], ["events"], _READ),
    ]


def _edit_rules() -> list[JsonObj]:
    return [
        _rule([""], _EDIT_CORE, _WRITE),
        _rule([""], ["secrets"], _READ),
        _rule([""], ["pods/exec", "pods/attach", "pods/portforward"], ["create", "get"]),
        _rule([""], ["serviceaccounts/token"], ["create"]),
        _rule([""], ["serviceaccounts"], ["impersonate"]),
        _rule(["apps"], _APPS, _WRITE),
        *_view_rules(),
    ]


def _admin_rules() -> list[JsonObj]:
    return [
        _rule(["rbac.authorization.k8s.io"], ["roles", "rolebindings"], _READ + _WRITE),
        _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
        *_edit_rules(),
    ]


def _cluster_role(name: str, rules: list[JsonObj], bootstrap: bool = True) -> JsonObj:
    labels = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels},
        "rules": rules,
    }


def _binding(name: str, groups: list[str]) -> JsonObj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g} for g in groups
        ],
    }


def cluster_roles() -> list[JsonObj]:
    """The default ClusterRoles, in creation order."""
    return [
        _cluster_role(
            "cluster-admin",
            [
                _rule(["*"], ["*"], ["*"]),
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ],
        ),
        _cluster_role("system:discovery", [{"nonResourceURLs": _DISCOVERY_URLS, "verbs": ["get"]}]),
        _cluster_role(
            "system:public-info-viewer", [{"nonResourceURLs": _PUBLIC_URLS, "verbs": ["get"]}]
        ),
        _cluster_role(
            "system:basic-user",
            [
                _rule(
                    ["authorization.k8s.io"],
                    ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    ["create"],
                ),
                _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"]),
            ],
        ),
        _cluster_role("admin", _admin_rules()),
        _cluster_role("edit", _edit_rules()),
        _cluster_role("view", _view_rules()),
    ]


def cluster_role_bindings() -> list[JsonObj]:
    """The default ClusterRoleBindings."""
    return [
        _binding("cluster-admin", [MASTERS]),
        _binding("system:discovery", [AUTHENTICATED]),
        _binding("system:basic-user", [AUTHENTICATED]),
        _binding("system:public-info-viewer", [AUTHENTICATED, UNAUTHENTICATED]),
    ]
