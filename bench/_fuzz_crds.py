"""Every field of the five CRDs, broken one at a time, sent by a tenant: how is each answered?

The cases come from the CRDs' own ``openAPIV3Schema`` (``crds/*.yaml``): for each field a
value of the wrong type, a value just outside each bound the schema states (minimum, maximum,
maxLength, minLength, pattern, enum), an unknown field inside each closed object, and a huge
string in each string field the schema leaves unbounded. A seeded RNG picks the values, so a
failure reproduces with the same ``--seed``.

Each case is one object POSTed by a tenant (a user with a Role on our CRDs in its own namespace
only) to the sandbox API server, as ``kubectl create`` does. An answer is good when it names the
field: a 4xx whose message holds the field's path; an unknown field dropped with a ``Warning``
naming it (kube-apiserver prunes unknown fields unless the client asks for strict validation);
or, for an object the schema let through, a status reason or condition message that names the
field once the operator has seen it. Anything else is a miss, listed by path.
"""

from __future__ import annotations

import copy
import json
import random
import string
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from elastic_jupyter import crds
from elastic_jupyter.sandbox.cluster import SandboxCluster, SandboxError

CRD_DIR = Path(crds.__file__).resolve().parent
UNKNOWN_KEY = "zzFuzzUnknown"
MAP_KEY = "fuzzkey"
# A kernel or notebook pod no node can take: the operator still builds and creates it (so its
# checks run), but no process starts for hundreds of cases.
NOWHERE = {"fuzz.elastic-jupyter/nowhere": "true"}

BASES: dict[str, dict[str, Any]] = {
    # An image no node can pull: the operator builds the whole gateway, no EG process starts.
    "JupyterGateway": {"cullIdleTimeout": 3600, "image": "fuzz.invalid/no-such-gateway:0"},
    "JupyterNotebook": {
        "gateway": {"name": "fuzz-gateway"},
        "template": {"spec": {"containers": [{"name": "notebook"}], "nodeSelector": NOWHERE}},
    },
    "JupyterKernel": {
        "template": {
            "spec": {
                "containers": [{"name": "kernel", "image": "busybox", "command": ["sleep", "60"]}],
                "nodeSelector": NOWHERE,
            }
        }
    },
    "JupyterKernelTemplate": {"template": {"spec": {"containers": [{"name": "kernel"}]}}},
    "JupyterKernelSpec": {"language": "python", "displayName": "Fuzz"},
}


@dataclass
class Case:
    kind: str
    plural: str
    path: str  # e.g. spec.template.spec.containers[0].name
    mutation: str  # wrong-type | bound:<keyword> | unknown-field | huge-string
    value_repr: str
    manifest: dict[str, Any]
    name: str = ""
    # filled in when sent
    http_status: int = 0
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    outcome: str = ""  # refused-named, pruned-warned, reported, accepted-unbounded, miss:...

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "mutation": self.mutation,
            "value": self.value_repr,
            "http_status": self.http_status,
            "outcome": self.outcome,
            "message": self.message[:300],
        }


def crd_schemas() -> dict[str, tuple[str, dict[str, Any]]]:
    """kind -> (plural, the ``spec`` schema) for the five CRDs."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for path in sorted(CRD_DIR.glob("kubeflow.tkestack.io_*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        version = crd["spec"]["versions"][0]
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        out[crd["spec"]["names"]["kind"]] = (crd["spec"]["names"]["plural"], spec)
    return out


def _walk(schema: dict[str, Any], path: str, out: list[tuple[str, dict[str, Any]]]) -> None:
    out.append((path, schema))
    for key, sub in (schema.get("properties") or {}).items():
        _walk(sub, f"{path}.{key}", out)
    if isinstance(schema.get("items"), dict):
        _walk(schema["items"], f"{path}[0]", out)
    if isinstance(schema.get("additionalProperties"), dict):
        _walk(schema["additionalProperties"], f"{path}[{MAP_KEY}]", out)  # kube's spelling


def _steps(path: str) -> list[str | int]:
    """``spec.a[0].b`` -> ``["a", 0, "b"]`` (below ``spec``)."""
    steps: list[str | int] = []
    for part in path.split(".")[1:]:
        while "[" in part:
            head, _, rest = part.partition("[")
            if head:
                steps.append(head)
            index, _, part = rest.partition("]")
            steps.append(int(index) if index.isdigit() else index)  # a list index or a map key
            part = part.lstrip(".")
        if part:
            steps.append(part)
    return steps


def set_at(spec: dict[str, Any], path: str, value: Any) -> None:
    """Put ``value`` at ``path`` inside ``spec``, creating what leads there."""
    steps = _steps(path)
    node: Any = spec
    for here, nxt in zip(steps, steps[1:]):
        if isinstance(here, int):
            while len(node) <= here:
                node.append([] if isinstance(nxt, int) else {})
            node = node[here]
        else:
            if not isinstance(node.get(here), (dict, list)):
                node[here] = [] if isinstance(nxt, int) else {}
            node = node[here]
    last = steps[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
    node[last] = value


def fill_required(node: Any, schema: dict[str, Any]) -> None:
    """Give every object on the way the fields its schema requires (placeholders), so that a
    case breaks only its own field."""
    if isinstance(node, list) and isinstance(schema.get("items"), dict):
        for item in node:
            fill_required(item, schema["items"])
        return
    if not isinstance(node, dict):
        return
    props = schema.get("properties") or {}
    for key in schema.get("required") or []:
        if key not in node:
            kind = (props.get(key) or {}).get("type")
            node[key] = {"integer": 1, "boolean": False, "object": {}, "array": []}.get(
                str(kind), "fuzz"
            )
    for key, value in node.items():
        if key in props:
            fill_required(value, props[key])
        elif isinstance(schema.get("additionalProperties"), dict):
            fill_required(value, schema["additionalProperties"])


def _junk(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(string.punctuation + " ") for _ in range(length))


def _huge(rng: random.Random, size: int) -> str:
    chunk = "".join(rng.choice(string.ascii_letters) for _ in range(64))
    return (chunk * (size // 64 + 1))[:size]


def wrong_type(schema: dict[str, Any], rng: random.Random) -> Any:
    kind = schema.get("type")
    if schema.get("x-kubernetes-int-or-string") or kind is None:
        return rng.choice([{"a": 1}, [1], True])
    choices: dict[str, list[Any]] = {
        "string": [12345, True, {"a": 1}, ["x"]],
        "integer": ["ten", 1.5, True, {"a": 1}],
        "number": ["ten", True, [1]],
        "boolean": ["yes", 1, ["x"]],
        "object": ["text", 7, ["x"]],
        "array": ["text", 7, {"a": 1}],
    }
    return rng.choice(choices.get(str(kind), ["text"]))


def bound_breakers(schema: dict[str, Any], rng: random.Random) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if "minimum" in schema:
        out.append(("bound:minimum", int(schema["minimum"]) - 1 - rng.randrange(3)))
    if "maximum" in schema:
        out.append(("bound:maximum", int(schema["maximum"]) + 1 + rng.randrange(3)))
    if schema.get("type") == "integer":
        out.append(("bound:int64", 2**64 + rng.randrange(1000)))
    if "maxLength" in schema:
        out.append(("bound:maxLength", "a" * (int(schema["maxLength"]) + 1)))
    if int(schema.get("minLength", 0)) > 0:
        out.append(("bound:minLength", ""))
    if "pattern" in schema:
        out.append(("bound:pattern", _junk(rng, 12)))
    if "enum" in schema:
        out.append(("bound:enum", f"NotOneOf{rng.randrange(10**6)}"))
    return out


def build_cases(rng: random.Random, huge_size: int, limit: int | None = None) -> list[Case]:
    """All cases for the five CRDs (a seeded sample of ``limit`` of them when given)."""
    cases: list[Case] = []
    for kind, (plural, spec_schema) in crd_schemas().items():
        fields: list[tuple[str, dict[str, Any]]] = []
        _walk(spec_schema, "spec", fields)
        for path, schema in fields:
            tries: list[tuple[str, Any]] = []
            if path != "spec":
                tries.append(("wrong-type", wrong_type(schema, rng)))
                tries += bound_breakers(schema, rng)
                bounded = any(k in schema for k in ("maxLength", "enum", "pattern"))
                if schema.get("type") == "string" and not bounded:
                    tries.append(("huge-string", _huge(rng, huge_size)))
            closed = schema.get("type") == "object" and not schema.get(
                "x-kubernetes-preserve-unknown-fields"
            )
            if closed and schema.get("properties"):
                tries.append(("unknown-field", {UNKNOWN_KEY: rng.randrange(10**6)}))
            for mutation, value in tries:
                spec = copy.deepcopy(BASES[kind])
                if mutation == "unknown-field":
                    target = f"{path}.{UNKNOWN_KEY}"
                    set_at(spec, target, value[UNKNOWN_KEY])
                else:
                    target = path
                    set_at(spec, path, value)
                fill_required(spec, spec_schema)
                shown = json.dumps(value)
                shown = shown if len(shown) <= 40 else f"{shown[:20]}... ({len(shown)} chars)"
                manifest = {
                    "apiVersion": crds.API_VERSION,
                    "kind": kind,
                    "metadata": {},
                    "spec": spec,
                }
                cases.append(Case(kind, plural, target, mutation, shown, manifest))
    if limit is not None and limit < len(cases):
        cases = rng.sample(cases, limit)
    for index, case in enumerate(cases):
        case.name = f"fuzz-{index:04d}"
        case.manifest["metadata"] = {"name": case.name}
    return cases


# --- sending ------------------------------------------------------------------------------------


def make_tenant(sandbox: SandboxCluster, namespace: str, user: str) -> str:
    """A Role on our CRDs in ``namespace`` bound to ``user``; return a bearer token for it."""
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    sandbox.request(
        "POST",
        f"{rbac}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "crd-author"},
            "rules": [{"apiGroups": [crds.GROUP], "resources": ["*"], "verbs": ["*"]}],
        },
    )
    sandbox.request(
        "POST",
        f"{rbac}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "crd-author"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "crd-author",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )
    answer = sandbox.request("POST", "/sandbox/tokens", {"user": user, "groups": []})
    return str(answer["token"])


def _objects(namespace: str, plural: str) -> str:
    return f"/apis/{crds.GROUP}/{crds.VERSION}/namespaces/{namespace}/{plural}"


def send(sandbox: SandboxCluster, token: str, namespace: str, case: Case) -> None:
    """POST the case's object as the tenant; record the status, message and warnings."""
    data = json.dumps(case.manifest).encode()
    req = urllib.request.Request(
        sandbox.url + _objects(namespace, case.plural),
        data=data,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            case.http_status = resp.status
            case.warnings = resp.headers.get_all("Warning") or []
            resp.read()
    except urllib.error.HTTPError as err:
        case.http_status = err.code
        body = err.read().decode("utf-8", "replace")
        try:
            case.message = str(json.loads(body).get("message", body))
        except ValueError:
            case.message = body
    except OSError as err:  # the API server did not answer at all
        case.http_status = -1
        case.message = f"{type(err).__name__}: {err}"


def _status_text(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    return json.dumps(status)


def judge(sandbox: SandboxCluster, namespace: str, cases: list[Case], wait: float) -> None:
    """Give each case its outcome; objects the API accepted get ``wait`` s for a status."""
    accepted = [c for c in cases if 200 <= c.http_status < 300]
    baseline: dict[str, str] = {}
    for kind, spec in BASES.items():
        plural = crd_schemas()[kind][0]
        name = f"fuzz-base-{kind.lower()}"
        body = {"apiVersion": crds.API_VERSION, "kind": kind, "metadata": {"name": name}}
        body["spec"] = copy.deepcopy(spec)
        sandbox.request("POST", _objects(namespace, plural), body)
        baseline[kind] = name
    deadline = time.monotonic() + wait
    statuses: dict[str, str] = {}
    while True:
        statuses = {}
        for plural in {c.plural for c in accepted} | {v[0] for v in crd_schemas().values()}:
            for obj in sandbox.request("GET", _objects(namespace, plural))["items"]:
                statuses[obj["metadata"]["name"]] = _status_text(obj)
        pending = [c for c in accepted if statuses.get(c.name, "{}") == "{}"]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    stored = {}
    for case in accepted:
        stored[case.name] = sandbox.request(
            "GET", f"{_objects(namespace, case.plural)}/{case.name}"
        )
    for case in cases:
        case.outcome = _outcome(case, statuses, baseline, stored)


def _outcome(
    case: Case,
    statuses: dict[str, str],
    baseline: dict[str, str],
    stored: dict[str, dict[str, Any]],
) -> str:
    if case.http_status < 0 or case.http_status >= 500:
        return f"miss:server-error {case.http_status}"
    if case.http_status >= 400:
        return "refused-named" if case.path in case.message else "miss:refused-without-the-field"
    if case.mutation == "unknown-field":
        spec = stored[case.name].get("spec") or {}
        if UNKNOWN_KEY not in json.dumps(spec) and any(case.path in w for w in case.warnings):
            return "pruned-warned"
        return "miss:unknown-field-kept-or-unwarned"
    text = statuses.get(case.name, "")
    base_text = statuses.get(baseline[case.kind], "")
    leaf = case.path.rsplit(".", 1)[-1].split("[")[0]
    if case.path in text or (leaf in text and leaf not in base_text):
        return "reported"
    if case.mutation == "huge-string":
        return "accepted-unbounded"
    return "miss:accepted-silently"


def kubectl_sample(
    sandbox: SandboxCluster,
    namespace: str,
    user: str,
    cases: list[Case],
    rng: random.Random,
    n: int,
) -> list[dict[str, Any]]:
    """``kubectl apply`` (strict field validation, as kubectl 1.32 does) for ``n`` refused cases:
    the tenant must see the field's path in kubectl's error."""
    pool = [c for c in cases if c.outcome in ("refused-named", "pruned-warned")]
    pool = [c for c in pool if c.mutation != "huge-string"]
    sample = rng.sample(pool, min(n, len(pool)))
    kubeconfig = sandbox.user_kubeconfig(user, namespace=namespace)
    results = []
    for case in sample:
        manifest = copy.deepcopy(case.manifest)
        manifest["metadata"]["name"] = case.name + "-kubectl"
        try:
            out = sandbox.kubectl(
                "apply", "-n", namespace, "-f", "-", input=json.dumps(manifest),
                kubeconfig=kubeconfig, check=False,
            )  # fmt: skip
            refused = out.returncode != 0
            text = out.stderr
        except (SandboxError, OSError) as err:
            refused, text = False, str(err)
        leaf = case.path.replace("spec.", "", 1)
        named = case.path in text or leaf in text or UNKNOWN_KEY in text
        results.append(
            {"path": case.path, "mutation": case.mutation, "refused": refused, "named": named,
             "stderr": text.strip()[:300]}
        )  # fmt: skip
    return results


def clean_up(sandbox: SandboxCluster, namespace: str) -> None:
    for plural, _ in crd_schemas().values():
        try:
            sandbox.request("DELETE", _objects(namespace, plural))
        except urllib.error.HTTPError:
            for obj in sandbox.request("GET", _objects(namespace, plural))["items"]:
                sandbox.request(
                    "DELETE", f"{_objects(namespace, plural)}/{obj['metadata']['name']}"
                )
