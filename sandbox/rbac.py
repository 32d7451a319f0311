"""Kubernetes RBAC for the sandbox API server: rules, the authorizer, escalation checks.

The semantics are those of kube-apiserver's RBAC authorizer (``rbac.authorization.k8s.io/v1``):

* a request is allowed when any rule of any role bound to the user or one of its groups allows
  it: ClusterRoleBindings everywhere, RoleBindings (to a Role or a ClusterRole) only in their
  namespace; members of ``system:masters`` are allowed everything (the superuser group);
* a rule matches on ``verbs``, ``apiGroups`` and ``resources`` (``*`` anywhere, subresources as
  ``pods/log``, ``*/status``), optionally narrowed by ``resourceNames``: a request without an
  object name (list, watch, create, deletecollection) never matches a rule with names, unless a
  list or watch selects ``metadata.name=<name>``; non-resource requests match
  ``nonResourceURLs`` (exact, or a prefix ending in ``*``);
* escalation prevention: writing a Role/ClusterRole needs every permission it grants (or the
  ``escalate`` verb on it), writing a binding needs every permission of the role it references
  in the binding's scope (or the ``bind`` verb on that role).

Bindings are indexed by subject and namespace and the rules a user holds in a namespace are
cached; both are rebuilt when any RBAC object changes (the store's change counters), so an
authorization is a few dictionary lookups on the hot path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .resources import ResKey
from .store import Store

JsonObj = dict[str, Any]

GROUP = "rbac.authorization.k8s.io"
ROLES: ResKey = (GROUP, "roles")
ROLE_BINDINGS: ResKey = (GROUP, "rolebindings")
CLUSTER_ROLES: ResKey = (GROUP, "clusterroles")
CLUSTER_ROLE_BINDINGS: ResKey = (GROUP, "clusterrolebindings")
RBAC_KEYS = (ROLES, ROLE_BINDINGS, CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS)

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
SA_PREFIX = "system:serviceaccount:"
SA_GROUP = "system:serviceaccounts"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated identity: user name, groups and (for service accounts) the uid."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    @property
    def is_superuser(self) -> bool:
        return MASTERS in self.groups

    def to_json(self) -> JsonObj:
        out: JsonObj = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        return out


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    """The identity of a service account token (the groups every SA has)."""
    return UserInfo(
        f"{SA_PREFIX}{namespace}:{name}",
        (SA_GROUP, f"{SA_GROUP}:{namespace}", AUTHENTICATED),
        uid,
    )


def split_service_account(user_name: str) -> tuple[str, str] | None:
    """``system:serviceaccount:<ns>:<name>`` → ``(ns, name)``."""
    if not user_name.startswith(SA_PREFIX):
        return None
    ns, sep, name = user_name[len(SA_PREFIX) :].partition(":")
    return (ns, name) if sep and ns and name else None


@dataclass(frozen=True)
class Attributes:
    """What one request (or access review) asks to do."""

    verb: str
    namespace: str = ""
    group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""  # non-resource requests only

    @property
    def resource_request(self) -> bool:
        return bool(self.resource)


def _matches_url(patterns: Iterable[str], path: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == path:
            return True
        if pattern.endswith("*") and path.startswith(pattern[:-1]):
            return True
    return False


@dataclass(frozen=True)
class Rule:
    """One PolicyRule, with sets for O(1) membership tests."""

    verbs: frozenset[str]
    api_groups: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    resource_names: frozenset[str] = frozenset()
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw: Any) -> Rule:
        raw = raw if isinstance(raw, dict) else {}

        def strings(key: str) -> list[str]:
            value = raw.get(key) or []
            return [str(v) for v in value] if isinstance(value, list) else []

        return cls(
            frozenset(strings("verbs")),
            frozenset(strings("apiGroups")),
            frozenset(strings("resources")),
            frozenset(strings("resourceNames")),
            tuple(strings("nonResourceURLs")),
        )

    def allows(self, a: Attributes) -> bool:
        if "*" not in self.verbs and a.verb not in self.verbs:
            return False
        if not a.resource_request:
            return _matches_url(self.urls, a.path)
        if "*" not in self.api_groups and a.group not in self.api_groups:
            return False
        if not self._matches_resource(a.resource, a.subresource):
            return False
        return not self.resource_names or a.name in self.resource_names

    def _matches_resource(self, resource: str, subresource: str) -> bool:
        if "*" in self.resources:
            return True
        if subresource:
            return (
                f"{resource}/{subresource}" in self.resources
                or f"*/{subresource}" in self.resources
            )
        return resource in self.resources

    def to_json(self) -> JsonObj:
        out: JsonObj = {"verbs": sorted(self.verbs)}
        if self.urls:
            out["nonResourceURLs"] = list(self.urls)
            return out
        out["apiGroups"] = sorted(self.api_groups)
        out["resources"] = sorted(self.resources)
        if self.resource_names:
            out["resourceNames"] = sorted(self.resource_names)
        return out


class RuleSet:
    """Rules indexed by ``(apiGroup, resource)`` (``*`` included) so one authorization is a
    handful of dictionary lookups however many rules a user holds."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self.urls = [r for r in rules if r.urls]
        self.by_key: dict[tuple[str, str], list[Rule]] = {}
        for rule in rules:
            for group in rule.api_groups:
                for resource in rule.resources:
                    self.by_key.setdefault((group, resource), []).append(rule)

    def allows(self, a: Attributes) -> bool:
        if not a.resource_request:
            return any(rule.allows(a) for rule in self.urls)
        combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        keys = [(a.group, combined), ("*", combined), (a.group, "*"), ("*", "*")]
        if a.subresource:
            keys += [(a.group, f"*/{a.subresource}"), ("*", f"*/{a.subresource}")]
        for key in keys:
            for rule in self.by_key.get(key, ()):
                if ("*" in rule.verbs or a.verb in rule.verbs) and (
                    not rule.resource_names or a.name in rule.resource_names
                ):
                    return True
        return False


def rules_of(role: JsonObj | None) -> tuple[Rule, ...]:
    if role is None:
        return ()
    return tuple(Rule.from_json(r) for r in role.get("rules") or ())


def _subject_keys(user: UserInfo) -> list[tuple[str, str]]:
    return [("User", user.name), *(("Group", g) for g in user.groups)]


def _binding_subjects(binding: JsonObj) -> list[tuple[str, str]]:
    keys = []
    default_ns = (binding.get("metadata") or {}).get("namespace") or ""
    for subject in binding.get("subjects") or ():
        if not isinstance(subject, dict):
            continue
        kind, name = subject.get("kind"), str(subject.get("name") or "")
        if kind == "ServiceAccount":
            keys.append(("User", f"{SA_PREFIX}{subject.get('namespace') or default_ns}:{name}"))
        elif kind in ("User", "Group"):
            keys.append((str(kind), name))
    return keys


@dataclass
class _Index:
    generation: int = -1
    # subject → ClusterRole names (ClusterRoleBindings)
    cluster: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # (namespace, subject) → (roleRef kind, name)
    local: dict[tuple[str, tuple[str, str]], list[tuple[str, str]]] = field(default_factory=dict)
    rules: dict[tuple[str, tuple[str, ...], str], RuleSet] = field(default_factory=dict)


class Authorizer:
    """RBAC over the objects of one :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._index = _Index()

    def _current(self) -> _Index:
        changes = self.store.changes
        generation = (
            changes.get(ROLES, 0)
            + changes.get(ROLE_BINDINGS, 0)
            + changes.get(CLUSTER_ROLES, 0)
            + changes.get(CLUSTER_ROLE_BINDINGS, 0)
        )
        if generation == self._index.generation:
            return self._index
        index = _Index(generation)
        for crb in self.store.iter(CLUSTER_ROLE_BINDINGS):
            ref = crb.get("roleRef") or {}
            if ref.get("kind") != "ClusterRole":
                continue
            for key in _binding_subjects(crb):
                index.cluster.setdefault(key, []).append(str(ref.get("name") or ""))
        for rb in self.store.iter(ROLE_BINDINGS):
            ref = rb.get("roleRef") or {}
            target = (str(ref.get("kind") or ""), str(ref.get("name") or ""))
            ns = rb["metadata"].get("namespace") or ""
            for key in _binding_subjects(rb):
                index.local.setdefault((ns, key), []).append(target)
        self._index = index
        return index

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[Rule, ...]:
        """Every rule ``user`` holds in ``namespace`` ("": cluster-wide rules only)."""
        return self._rule_set(user, namespace).rules

    def _rule_set(self, user: UserInfo, namespace: str) -> RuleSet:
        index = self._current()
        cache_key = (user.name, user.groups, namespace)
        cached = index.rules.get(cache_key)
        if cached is not None:
            return cached
        rules: list[Rule] = []
        seen: set[tuple[str, str, str]] = set()
        for key in _subject_keys(user):
            for name in index.cluster.get(key, ()):
                if ("", "ClusterRole", name) not in seen:
                    seen.add(("", "ClusterRole", name))
                    rules += rules_of(self.store.get(CLUSTER_ROLES, "", name))
            if not namespace:
                continue
            for kind, name in index.local.get((namespace, key), ()):
                if (namespace, kind, name) in seen:
                    continue
                seen.add((namespace, kind, name))
                if kind == "ClusterRole":
                    rules += rules_of(self.store.get(CLUSTER_ROLES, "", name))
                elif kind == "Role":
                    rules += rules_of(self.store.get(ROLES, namespace, name))
        result = RuleSet(tuple(rules))
        index.rules[cache_key] = result
        return result

    def authorize(self, user: UserInfo, attrs: Attributes) -> bool:
        if user.is_superuser:
            return True
        return self._rule_set(user, attrs.namespace).allows(attrs)

    # --- escalation prevention -------------------------------------------------------------
    def not_held(self, user: UserInfo, namespace: str, wanted: Iterable[Rule]) -> list[Rule]:
        """The parts of ``wanted`` that ``user`` does not hold in ``namespace``."""
        if user.is_superuser:
            return []
        held = self.rules_for(user, namespace)
        missing: list[Rule] = []
        for rule in wanted:
            for simple in _atoms(rule):
                if not any(_covers(owner, simple) for owner in held):
                    missing.append(simple)
        return missing

    def role_rules(self, namespace: str, ref: Any) -> tuple[Rule, ...] | None:
        """The rules a ``roleRef`` names (``None``: the role does not exist)."""
        ref = ref if isinstance(ref, dict) else {}
        kind, name = ref.get("kind"), str(ref.get("name") or "")
        if kind == "ClusterRole":
            role = self.store.get(CLUSTER_ROLES, "", name)
        elif kind == "Role" and namespace:
            role = self.store.get(ROLES, namespace, name)
        else:
            role = None
        return None if role is None else rules_of(role)


def _atoms(rule: Rule) -> list[Rule]:
    """A rule broken into one-verb, one-resource, one-name rules (as Kubernetes compares)."""
    if rule.urls:
        return [Rule(frozenset([v]), urls=(u,)) for v in sorted(rule.verbs) for u in rule.urls]
    names = sorted(rule.resource_names) or [""]
    return [
        Rule(
            frozenset([v]),
            frozenset([g]),
            frozenset([r]),
            frozenset([n]) if n else frozenset(),
        )
        for g in sorted(rule.api_groups)
        for r in sorted(rule.resources)
        for v in sorted(rule.verbs)
        for n in names
    ]


def _covers(owner: Rule, atom: Rule) -> bool:
    (verb,) = atom.verbs
    if "*" not in owner.verbs and verb not in owner.verbs:
        return False
    if atom.urls:
        return _matches_url(owner.urls, atom.urls[0])
    (group,) = atom.api_groups
    (resource,) = atom.resources
    if "*" not in owner.api_groups and group not in owner.api_groups:
        return False
    if "*" not in owner.resources and resource not in owner.resources:
        sub = resource.partition("/")[2]
        if not sub or f"*/{sub}" not in owner.resources:
            return False
    if not owner.resource_names:
        return True
    return bool(atom.resource_names) and atom.resource_names <= owner.resource_names


def describe(rules: Iterable[Rule]) -> str:
    """Rules as kube-apiserver lists them in an escalation error."""
    lines = []
    for rule in rules:
        if rule.urls:
            lines.append(
                f"{{NonResourceURLs:{_go_list(rule.urls)}, Verbs:{_go_list(sorted(rule.verbs))}}}"
            )
            continue
        text = (
            f"{{APIGroups:{_go_list(sorted(rule.api_groups))}, "
            f"Resources:{_go_list(sorted(rule.resources))}"
        )
        if rule.resource_names:
            text += f", ResourceNames:{_go_list(sorted(rule.resource_names))}"
        lines.append(text + f", Verbs:{_go_list(sorted(rule.verbs))}}}")
    return "\n".join(lines)


def _go_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"
