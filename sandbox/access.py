"""Who is asking, and may they: authentication, impersonation and authorization per request.

Authentication is by bearer token only (the sandbox serves plain HTTP on loopback):

* **static tokens** the sandbox mints: its admin user (``sandbox-admin`` in ``system:masters``,
  written to the kubeconfig of ``elastic-jupyter-sandbox up``), its own controllers (kubelet,
  scheduler, controller manager: each its own user, all in ``system:masters``), and users tests
  ask for through the admin-only ``POST /sandbox/tokens`` (``{"user": …, "groups": […]}``);
* **service account tokens** from the TokenRequest API (``POST …/serviceaccounts/<sa>/token``,
  what ``kubectl create token`` calls, and what the kubelet calls for every pod). A token is
  valid while its ServiceAccount (same uid) exists and, when bound to a pod, while that pod does.

Tokens are 256 random bits. A request without a token is anonymous: allowed only what
``system:unauthenticated`` may do (health, version), otherwise 401, as is a request with an
unknown token. Impersonation headers (``Impersonate-User``/``-Group``/``-Uid``, kubectl
``--as``/``--as-group``) need the ``impersonate`` verb on ``users``, ``groups`` or the named
``serviceaccounts``. Then :class:`.rbac.Authorizer` decides; a refusal answers 403 worded as
kube-apiserver words it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .errors import ApiError, bad_request, not_found
from .rbac import (
    ANONYMOUS,
    AUTHENTICATED,
    UNAUTHENTICATED,
    Attributes,
    Authorizer,
    Rule,
    UserInfo,
    describe,
    service_account_user,
    split_service_account,
)
from .store import Store

JsonObj = dict[str, Any]

ADMIN = UserInfo("sandbox-admin", ("system:masters", AUTHENTICATED))
ANONYMOUS_USER = UserInfo(ANONYMOUS, (UNAUTHENTICATED,))
UNRESTRICTED = UserInfo("sandbox-rbac-disabled", ("system:masters", AUTHENTICATED))
CONTROLLERS = {
    "kubelet": UserInfo("system:node:sandbox-node", ("system:nodes", "system:masters")),
    "scheduler": UserInfo("system:kube-scheduler", ("system:masters",)),
    "controller-manager": UserInfo("system:kube-controller-manager", ("system:masters",)),
}
TOKEN_TTL_SECONDS = 3600 * 24 * 365

_SA_KEY = ("", "serviceaccounts")
_POD_KEY = ("", "pods")
_REVIEW_GROUP = "authorization.k8s.io"


@dataclass(frozen=True)
class ServiceAccountToken:
    namespace: str
    name: str
    uid: str
    pod: tuple[str, str] | None = None  # (name, uid) of the pod the token is bound to


class TokenRegistry:
    """Tokens → identities; lookups are dictionary reads (every request authenticates)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.static: dict[str, UserInfo] = {}
        self.service_accounts: dict[str, ServiceAccountToken] = {}

    def mint(self, user: UserInfo) -> str:
        token = secrets.token_urlsafe(32)
        self.static[token] = user
        return token

    def mint_service_account(self, sa: ServiceAccountToken) -> str:
        token = "sa." + secrets.token_urlsafe(32)
        self.service_accounts[token] = sa
        return token

    def authenticate(self, token: str) -> UserInfo | None:
        user = self.static.get(token)
        if user is not None:
            return user
        sa = self.service_accounts.get(token)
        if sa is None:
            return None
        obj = self.store.get(_SA_KEY, sa.namespace, sa.name)
        if obj is None or obj["metadata"].get("uid") != sa.uid:
            return None  # the account was deleted (and maybe recreated): the token is dead
        if sa.pod is not None:
            pod = self.store.get(_POD_KEY, sa.namespace, sa.pod[0])
            if pod is None or pod["metadata"].get("uid") != sa.pod[1]:
                return None
        return service_account_user(sa.namespace, sa.name, sa.uid)


def forbidden_message(user: UserInfo, a: Attributes) -> str:
    """kube-apiserver's wording of an RBAC refusal."""
    if not a.resource_request:
        return f'forbidden: User "{user.name}" cannot {a.verb} path "{a.path}"'
    qualified = f"{a.resource}.{a.group}" if a.group else a.resource
    prefix = f'{qualified} "{a.name}"' if a.name else qualified
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    scope = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return (
        f'{prefix} is forbidden: User "{user.name}" cannot {a.verb} resource "{resource}" '
        f'in API group "{a.group}" {scope}'
    )


def forbidden(user: UserInfo, a: Attributes) -> ApiError:
    details: JsonObj = {}
    if a.resource_request:
        details = {"kind": a.resource}
        if a.name:
            details["name"] = a.name
        if a.group:
            details["group"] = a.group
    return ApiError(403, "Forbidden", forbidden_message(user, a), details)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized", {})


class Access:
    """Authentication, impersonation, authorization and the review APIs of one API server."""

    def __init__(self, store: Store, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tokens = TokenRegistry(store)
        self.authorizer = Authorizer(store)
        self.store = store
        self.admin_token = self.tokens.mint(ADMIN)
        self.controller_tokens = {k: self.tokens.mint(u) for k, u in CONTROLLERS.items()}

    # --- per request ------------------------------------------------------------------------
    def authenticate(self, request: web.Request) -> UserInfo | None:
        """The caller (``None``: no credentials); an unknown token raises 401."""
        if not self.enabled:
            return UNRESTRICTED
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            return None
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized()
        user = self.tokens.authenticate(token.strip())
        if user is None:
            raise unauthorized()
        return user

    def impersonate(self, user: UserInfo, request: web.Request) -> UserInfo:
        """Apply ``Impersonate-*`` headers after checking the ``impersonate`` verb."""
        headers = request.headers
        as_user = headers.get("Impersonate-User")
        as_groups = tuple(headers.getall("Impersonate-Group", []))
        as_uid = headers.get("Impersonate-Uid", "")
        if not as_user:
            if as_groups or as_uid:
                raise bad_request("requested impersonation of groups or uid without a user")
            return user
        sa = split_service_account(as_user)
        if sa is not None:
            self.require(user, Attributes("impersonate", sa[0], "", "serviceaccounts", "", sa[1]))
        else:
            self.require(user, Attributes("impersonate", "", "", "users", "", as_user))
        for group in as_groups:
            self.require(user, Attributes("impersonate", "", "", "groups", "", group))
        if as_uid:
            self.require(
                user, Attributes("impersonate", "", "authentication.k8s.io", "uids", "", as_uid)
            )
        if sa is not None and not as_groups:
            base = service_account_user(sa[0], sa[1])
            return UserInfo(base.name, base.groups, as_uid)
        groups = as_groups
        if as_user != ANONYMOUS and AUTHENTICATED not in groups:
            groups = (*groups, AUTHENTICATED)
        return UserInfo(as_user, groups, as_uid)

    def require(self, user: UserInfo, attrs: Attributes) -> None:
        if not self.authorizer.authorize(user, attrs):
            raise forbidden(user, attrs)

    # --- escalation prevention ------------------------------------------------------------
    def admit_rbac(self, user: UserInfo, plural: str, obj: JsonObj) -> None:
        """Refuse a Role/ClusterRole/binding granting what ``user`` does not hold."""
        if not self.enabled or user.is_superuser:
            return
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        name = str(meta.get("name") or "")
        group = "rbac.authorization.k8s.io"
        if plural in ("roles", "clusterroles"):
            wanted = [Rule.from_json(r) for r in obj.get("rules") or ()]
            if self.authorizer.authorize(
                user, Attributes("escalate", namespace, group, plural, "", name)
            ):
                return
        else:
            ref = obj.get("roleRef") or {}
            ref_plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            bind = Attributes("bind", namespace, group, ref_plural, "", str(ref.get("name") or ""))
            if self.authorizer.authorize(user, bind):
                return
            rules = self.authorizer.role_rules(namespace, ref)
            if rules is None:
                kind = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{plural}.{group} "{name}" is forbidden: {kind}.{group} '
                    f'"{ref.get("name")}" not found',
                    {"name": name, "group": group, "kind": plural},
                )
            wanted = list(rules)
        missing = self.authorizer.not_held(user, namespace, wanted)
        if missing:
            groups = "[" + " ".join(f'"{g}"' for g in user.groups) + "]"
            raise ApiError(
                403,
                "Forbidden",
                f'{plural}.{group} "{name}" is forbidden: user "{user.name}" (groups={groups}) '
                "is attempting to grant RBAC permissions not currently held:\n" + describe(missing),
                {"name": name, "group": group, "kind": plural},
            )

    # --- virtual resources ------------------------------------------------------------------
    def review(self, user: UserInfo, plural: str, namespace: str | None, body: Any) -> JsonObj:
        """SelfSubjectAccessReview, SubjectAccessReview, LocalSubjectAccessReview,
        SelfSubjectRulesReview, SelfSubjectReview: the filled-in object."""
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        raw_spec = body.get("spec")
        spec: JsonObj = raw_spec if isinstance(raw_spec, dict) else {}
        out: JsonObj = dict(body)
        out.setdefault("metadata", {})
        if plural == "selfsubjectreviews":
            out["status"] = {"userInfo": user.to_json()}
            return out
        if plural == "selfsubjectrulesreviews":
            ns = str(spec.get("namespace") or "")
            rules = (
                self.authorizer.rules_for(user, ns)
                if not user.is_superuser
                else (
                    Rule(frozenset("*"), frozenset("*"), frozenset("*")),
                    Rule(frozenset("*"), urls=("*",)),
                )
            )
            out["status"] = {
                "resourceRules": [r.to_json() for r in rules if not r.urls],
                "nonResourceRules": [r.to_json() for r in rules if r.urls],
                "incomplete": False,
            }
            return out
        subject = user
        if plural in ("subjectaccessreviews", "localsubjectaccessreviews"):
            name = str(spec.get("user") or "")
            groups = tuple(str(g) for g in spec.get("groups") or ())
            if not name and not groups:
                raise bad_request("spec.user or spec.groups: at least one must be set")
            subject = UserInfo(name, groups, str(spec.get("uid") or ""))
        res = spec.get("resourceAttributes")
        non_res = spec.get("nonResourceAttributes")
        if isinstance(res, dict):
            ns = str(res.get("namespace") or "")
            if plural == "localsubjectaccessreviews":
                ns = namespace or ""
            attrs = Attributes(
                str(res.get("verb") or ""),
                ns,
                str(res.get("group") or ""),
                str(res.get("resource") or ""),
                str(res.get("subresource") or ""),
                str(res.get("name") or ""),
            )
        elif isinstance(non_res, dict):
            attrs = Attributes(str(non_res.get("verb") or ""), path=str(non_res.get("path") or ""))
        else:
            raise bad_request("spec.resourceAttributes or spec.nonResourceAttributes is required")
        allowed = self.authorizer.authorize(subject, attrs)
        status: JsonObj = {"allowed": allowed}
        if allowed and not subject.is_superuser:
            status["reason"] = "RBAC: allowed by a RoleBinding or ClusterRoleBinding"
        out["status"] = status
        return out

    def token_request(self, namespace: str, name: str, body: Any) -> JsonObj:
        """TokenRequest (``serviceaccounts/<name>/token``): a token for that account."""
        sa = self.store.get(_SA_KEY, namespace, name)
        if sa is None:
            raise not_found("", "serviceaccounts", name)
        spec = (body or {}).get("spec") if isinstance(body, dict) else None
        spec = spec if isinstance(spec, dict) else {}
        pod: tuple[str, str] | None = None
        bound = spec.get("boundObjectRef")
        if isinstance(bound, dict) and bound.get("kind") == "Pod":
            pod_obj = self.store.get(_POD_KEY, namespace, str(bound.get("name") or ""))
            if pod_obj is None or (bound.get("uid") and bound["uid"] != pod_obj["metadata"]["uid"]):
                raise not_found("", "pods", str(bound.get("name") or ""))
            pod = (pod_obj["metadata"]["name"], pod_obj["metadata"]["uid"])
        token = self.tokens.mint_service_account(
            ServiceAccountToken(namespace, name, sa["metadata"]["uid"], pod)
        )
        ttl = int(spec.get("expirationSeconds") or TOKEN_TTL_SECONDS)
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + ttl))
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"audiences": spec.get("audiences") or [], "expirationSeconds": ttl}
            | ({"boundObjectRef": bound} if pod else {}),
            "status": {"token": token, "expirationTimestamp": expires},
        }

    def mint_user(self, body: Any) -> JsonObj:
        """``POST /sandbox/tokens``: a token for a named user (tests' kubeconfig users)."""
        if not isinstance(body, dict) or not str(body.get("user") or ""):
            raise bad_request('the body must be {"user": NAME, "groups": [GROUP, ...]}')
        groups = [str(g) for g in body.get("groups") or ()]
        if AUTHENTICATED not in groups:
            groups.append(AUTHENTICATED)
        user = UserInfo(str(body["user"]), tuple(groups))
        return {"token": self.tokens.mint(user), "user": user.to_json()}


REVIEW_PLURALS = {
    (_REVIEW_GROUP, "selfsubjectaccessreviews"),
    (_REVIEW_GROUP, "subjectaccessreviews"),
    (_REVIEW_GROUP, "localsubjectaccessreviews"),
    (_REVIEW_GROUP, "selfsubjectrulesreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
}
