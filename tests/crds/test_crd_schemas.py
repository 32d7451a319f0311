"""The five CRDs, checked without a cluster: names, structure, original fields, docs, defaults."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from elastic_jupyter import crds
from tests.crds.schema_tools import (
    crds_by_kind,
    iter_fields,
    iter_nodes,
    node_at,
    pruned_paths,
    schema_of,
    structural_problems,
    value_problems,
    version_of,
)

CRD_DIR = Path(crds.__file__).resolve().parent
KINDS = [names.kind for names in crds.ALL_KINDS]

# Every spec field of the original Go project, with its OpenAPI type (original-operator.md §2).
ORIGINAL_SPEC_FIELDS: dict[str, dict[str, str]] = {
    "JupyterGateway": {
        "kernels": "array",
        "kernels[]": "string",
        "defaultKernel": "string",
        "cullIdleTimeout": "integer",
        "cullInterval": "integer",
        "logLevel": "string",
        "resources": "object",
        "resources.limits": "object",
        "resources.requests": "object",
        "image": "string",
        "clusterRole": "string",
    },
    "JupyterNotebook": {
        "gateway": "object",
        "gateway.name": "string",
        "gateway.namespace": "string",
        "auth": "object",
        "auth.mode": "string",
        "auth.token": "string",
        "auth.password": "string",
        "template": "object",
        "template.metadata": "object",
        "template.metadata.labels": "object",
        "template.metadata.annotations": "object",
        "template.spec": "object",
        "template.spec.containers": "array",
    },
    "JupyterKernel": {
        "template": "object",
        "template.metadata.labels": "object",
        "template.metadata.annotations": "object",
        "template.spec.containers": "array",
    },
    "JupyterKernelTemplate": {
        "template": "object",
        "template.metadata.labels": "object",
        "template.metadata.annotations": "object",
        "template.spec.containers": "array",
    },
    "JupyterKernelSpec": {
        "language": "string",
        "displayName": "string",
        "image": "string",
        "env": "array",
        "env[].name": "string",
        "env[].value": "string",
        "env[].valueFrom": "object",
        "command": "array",
        "command[]": "string",
        "className": "string",
        "template": "object",
        "template.name": "string",
        "template.namespace": "string",
    },
}

# Status fields the original declared (JupyterGateway inlined the Deployment's status).
ORIGINAL_STATUS_FIELDS: dict[str, dict[str, str]] = {
    "JupyterGateway": {
        "observedGeneration": "integer",
        "replicas": "integer",
        "updatedReplicas": "integer",
        "readyReplicas": "integer",
        "availableReplicas": "integer",
        "unavailableReplicas": "integer",
        "conditions": "array",
    },
    "JupyterKernel": {
        "conditions": "array",
        "conditions[].type": "string",
        "conditions[].status": "string",
        "conditions[].reason": "string",
        "conditions[].message": "string",
        "conditions[].lastUpdateTime": "string",
        "conditions[].lastTransitionTime": "string",
        "startTime": "string",
        "completionTime": "string",
        "lastReconcileTime": "string",
    },
}

# What each kind's status offers users and other parts of the project (docs/crds.md).
STATUS_FIELDS: dict[str, set[str]] = {
    "JupyterKernel": {
        "phase",
        "reason",
        "message",
        "podName",
        "podIP",
        "hostIP",
        "nodeName",
        "startTime",
        "completionTime",
        "lastReconcileTime",
        "exitCode",
        "observedGeneration",
        "conditions",
    },
    "JupyterGateway": {
        "phase",
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
        "url",
        "serviceName",
        "authSecretName",
        "kernelSpecs",
        "kernels",
        "observedGeneration",
        "conditions",
    },
    "JupyterNotebook": {
        "phase",
        "readyReplicas",
        "url",
        "serviceName",
        "gatewayURL",
        "tokenSecretName",
        "accessHint",
        "observedGeneration",
        "conditions",
    },
    "JupyterKernelTemplate": {"valid", "observedGeneration", "conditions"},
    "JupyterKernelSpec": {"valid", "configMapName", "image", "observedGeneration", "conditions"},
}

PRINTER_COLUMNS: dict[str, list[str]] = {
    "JupyterKernel": ["Phase", "Pod", "Node", "IP", "Reason", "Kernel", "User", "Age"],
    "JupyterGateway": ["Phase", "Ready", "Kernels", "URL", "KernelSpecs", "Age"],
    "JupyterNotebook": ["Phase", "Ready", "Gateway", "URL", "Access", "Age"],
    "JupyterKernelSpec": ["Language", "Image", "Valid", "Template", "ConfigMap", "Age"],
    "JupyterKernelTemplate": ["Valid", "Age"],
}


@pytest.fixture(scope="module")
def by_kind() -> dict[str, dict[str, Any]]:
    return crds_by_kind()


def test_crd_folder_holds_exactly_the_five_crds() -> None:
    """`kubectl apply -f crds/` reads every .yaml/.yml/.json at the top: only our CRDs."""
    manifests = sorted(p.name for p in CRD_DIR.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    assert manifests == sorted(names.crd_file for names in crds.ALL_KINDS)
    for name in manifests:
        documents = [d for d in yaml.safe_load_all((CRD_DIR / name).read_text()) if d]
        assert len(documents) == 1, name
        assert documents[0]["kind"] == "CustomResourceDefinition"
        assert documents[0]["apiVersion"] == "apiextensions.k8s.io/v1"


@pytest.mark.parametrize("names", crds.ALL_KINDS, ids=KINDS)
def test_names_match_the_shared_module(names: crds.ResourceNames) -> None:
    crd = yaml.safe_load(crds.crd_text(names))
    spec = crd["spec"]
    assert crd["metadata"]["name"] == names.crd_name
    assert spec["group"] == crds.GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": names.kind,
        "listKind": f"{names.kind}List",
        "plural": names.plural,
        "singular": names.singular,
        "shortNames": list(names.short_names),
        "categories": [crds.CATEGORY],
    }
    version = version_of(crd)
    assert version["name"] == crds.VERSION
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural(by_kind: dict[str, dict[str, Any]], kind: str) -> None:
    assert structural_problems(schema_of(by_kind[kind])) == []


def test_structural_check_catches_the_originals_pruning_defect() -> None:
    """The checker itself: a bare template.metadata (the original's bug) is reported."""
    bare_metadata: dict[str, Any] = {"type": "object"}
    template = {"type": "object", "properties": {"metadata": bare_metadata}}
    spec = {"type": "object", "properties": {"template": template}}
    schema = {"type": "object", "properties": {"spec": spec}}
    assert structural_problems(schema) == [
        "spec.template.metadata: a bare `type: object` would prune everything inside it"
    ]
    assert structural_problems({"type": "object", "properties": {"x": {"description": "?"}}})


@pytest.mark.parametrize("kind", KINDS)
def test_every_original_field_keeps_its_name_and_type(
    by_kind: dict[str, dict[str, Any]], kind: str
) -> None:
    schema = schema_of(by_kind[kind])
    for path, expected in ORIGINAL_SPEC_FIELDS[kind].items():
        node = node_at(schema, f"spec.{path}")
        if path.endswith("[]"):
            parent = node_at(schema, f"spec.{path[:-2]}")
            node = parent.get("items") if parent else None
        assert node is not None, f"{kind}.spec.{path} missing"
        assert node.get("type") == expected, f"{kind}.spec.{path}"
    for path, expected in ORIGINAL_STATUS_FIELDS.get(kind, {}).items():
        node = node_at(schema, f"status.{path}")
        assert node is not None, f"{kind}.status.{path} missing"
        assert node.get("type") == expected, f"{kind}.status.{path}"


@pytest.mark.parametrize("kind", KINDS)
def test_status_offers_the_designed_fields_and_is_closed(
    by_kind: dict[str, dict[str, Any]], kind: str
) -> None:
    status = schema_of(by_kind[kind])["properties"]["status"]
    assert set(status["properties"]) == STATUS_FIELDS[kind]
    # kopf keeps its progress in annotations (crds.KOPF_ANNOTATION_PREFIX): nothing else writes
    # status, so it is typed and closed.
    assert "x-kubernetes-preserve-unknown-fields" not in status
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert item["required"] == ["type", "status"]
    assert item["properties"]["status"]["enum"] == [
        crds.CONDITION_TRUE,
        crds.CONDITION_FALSE,
        crds.CONDITION_UNKNOWN,
    ]
    for name in ("type", "reason", "message", "lastTransitionTime", "observedGeneration"):
        assert name in item["properties"], name


def test_phase_enums_match_the_shared_module(by_kind: dict[str, dict[str, Any]]) -> None:
    def phases(kind: str) -> tuple[str, ...]:
        return tuple(
            schema_of(by_kind[kind])["properties"]["status"]["properties"]["phase"]["enum"]
        )

    assert phases("JupyterKernel") == crds.KERNEL_PHASES
    assert phases("JupyterGateway") == crds.GATEWAY_PHASES
    assert phases("JupyterNotebook") == crds.NOTEBOOK_PHASES


def test_enums_and_defaults_match_the_shared_module(by_kind: dict[str, dict[str, Any]]) -> None:
    gateway = schema_of(by_kind["JupyterGateway"])
    notebook = schema_of(by_kind["JupyterNotebook"])

    def at(schema: Any, path: str) -> Any:
        node = node_at(schema, path)
        assert node is not None, path
        return node

    assert tuple(at(gateway, "spec.logLevel")["enum"]) == crds.LOG_LEVELS
    assert "default" not in at(gateway, "spec.logLevel")
    assert at(gateway, "spec.cullIdleTimeout")["default"] == crds.DEFAULT_CULL_IDLE_TIMEOUT
    assert at(gateway, "spec.cullInterval")["default"] == crds.DEFAULT_CULL_INTERVAL
    assert at(gateway, "spec.kernelLaunchTimeout")["default"] == crds.DEFAULT_KERNEL_LAUNCH_TIMEOUT
    assert at(notebook, "spec.port")["default"] == crds.DEFAULT_NOTEBOOK_PORT
    for schema in (gateway, notebook):
        assert tuple(at(schema, "spec.auth.mode")["enum"]) == crds.AUTH_MODES
        assert at(schema, "spec.auth.mode")["default"] == crds.DEFAULT_AUTH_MODE


def test_defaults_are_deliberate(by_kind: dict[str, dict[str, Any]]) -> None:
    """A schema default is persisted into every object: the list of them is reviewed here."""
    found = {
        f"{kind}.{path}": node["default"]
        for kind, crd in by_kind.items()
        for path, node in iter_fields(schema_of(crd))
        if "default" in node
    }
    assert found == {
        "JupyterGateway.spec.cullIdleTimeout": 3600,
        "JupyterGateway.spec.cullInterval": 60,
        "JupyterGateway.spec.cullConnected": False,
        "JupyterGateway.spec.kernelLaunchTimeout": 60,
        "JupyterGateway.spec.allowKernelNamespace": False,
        "JupyterGateway.spec.auth.mode": "enable",
        "JupyterNotebook.spec.auth.mode": "enable",
        "JupyterNotebook.spec.port": 8888,
    }


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_satisfy_their_own_schema(by_kind: dict[str, dict[str, Any]], kind: str) -> None:
    for path, node in iter_nodes(schema_of(by_kind[kind])):
        if "default" in node:
            assert value_problems(node["default"], node, path) == []


@pytest.mark.parametrize("kind", KINDS)
def test_enum_values_satisfy_their_own_schema(
    by_kind: dict[str, dict[str, Any]], kind: str
) -> None:
    for path, node in iter_nodes(schema_of(by_kind[kind])):
        for value in node.get("enum") or ():
            assert value_problems(value, node, path) == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_has_a_description(by_kind: dict[str, dict[str, Any]], kind: str) -> None:
    """`kubectl explain` shows these; root metadata is ObjectMeta, described by Kubernetes."""
    schema = schema_of(by_kind[kind])
    assert schema.get("description")
    missing = [
        path
        for path, node in iter_fields(schema)
        if path != "metadata" and not path.endswith(("[]", "]")) and not node.get("description")
    ]
    assert missing == []


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns_resolve_to_schema_fields(
    by_kind: dict[str, dict[str, Any]], kind: str
) -> None:
    crd = by_kind[kind]
    columns = version_of(crd)["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == PRINTER_COLUMNS[kind]
    schema = schema_of(crd)
    expected_type = {"string": "string", "integer": "integer", "boolean": "boolean"}
    for column in columns:
        path = column["jsonPath"]
        assert path.startswith(".")
        if path == ".metadata.creationTimestamp":
            assert column["type"] == "date"
            continue
        node = node_at(schema, path[1:])
        assert node is not None, f"{kind} column {column['name']}: {path} is not in the schema"
        if node.get("type") in expected_type:
            assert column["type"] == expected_type[node["type"]], column["name"]
        assert column.get("description"), column["name"]


def test_kernel_columns_show_phase_pod_node_ip_by_default(
    by_kind: dict[str, dict[str, Any]],
) -> None:
    columns = version_of(by_kind["JupyterKernel"])["additionalPrinterColumns"]
    default = [c["name"] for c in columns if c.get("priority", 0) == 0]
    assert default == ["Phase", "Pod", "Node", "IP", "Age"]


@pytest.mark.parametrize("kind", ["JupyterKernel", "JupyterKernelTemplate", "JupyterNotebook"])
def test_pod_templates_keep_labels_and_annotations(
    by_kind: dict[str, dict[str, Any]], kind: str
) -> None:
    metadata = node_at(schema_of(by_kind[kind]), "spec.template.metadata")
    assert metadata is not None
    for name in ("labels", "annotations"):
        field = metadata["properties"][name]
        assert field["type"] == "object"
        assert field["additionalProperties"] == {"type": "string"}
    # the original sample's labels directly under metadata (issue #67) are accepted
    assert metadata["x-kubernetes-preserve-unknown-fields"] is True


def test_kernel_pod_templates_are_the_same_schema(by_kind: dict[str, dict[str, Any]]) -> None:
    """A JupyterKernelTemplate's template is copied into JupyterKernels: same checks on both."""
    kernel = node_at(schema_of(by_kind["JupyterKernel"]), "spec.template")
    template = node_at(schema_of(by_kind["JupyterKernelTemplate"]), "spec.template")
    assert kernel is not None and template is not None
    assert kernel["properties"] == template["properties"]
    assert kernel["required"] == template["required"] == ["spec"]


def test_containers_are_typed_enough_to_catch_mistakes(by_kind: dict[str, dict[str, Any]]) -> None:
    schema = schema_of(by_kind["JupyterKernel"])
    containers = node_at(schema, "spec.template.spec.containers")
    assert containers is not None
    assert containers["minItems"] == 1
    pod_spec = node_at(schema, "spec.template.spec")
    assert pod_spec is not None and pod_spec["required"] == ["containers"]
    good = {
        "name": "kernel",
        "image": "python:3.11",
        "command": ["python"],
        "args": ["-m", "ipykernel"],
        "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {}}}],
        "resources": {"limits": {"cpu": "500m", "nvidia.com/gpu": 1}, "requests": {"cpu": 1}},
        "ports": [{"containerPort": 8888}],
    }
    assert value_problems([good], containers) == []
    bad: list[tuple[dict[str, Any], str]] = [
        ({"name": "kernel", "image": 42}, "value[0].image"),
        ({"name": "kernel", "command": "python -m ipykernel"}, "value[0].command"),
        ({"name": "kernel", "env": [{"name": "A", "value": 1}]}, "value[0].env[0].value"),
        ({"name": "kernel", "resources": {"limits": {"cpu": "lots"}}}, "value[0].resources"),
        ({"image": "python"}, "value[0].name"),
        ({"name": "Kernel_1"}, "value[0].name"),
    ]
    for container, where in bad:
        problems = value_problems([container], containers)
        assert problems and problems[0].startswith(where), (container, problems)
    assert value_problems([], containers) == ["value: fewer than 1 items"]


def test_shared_vocabulary_is_consistent() -> None:
    assert crds.IMAGE_PULL_FAILURE_REASONS <= crds.LAUNCH_FAIL_FAST_REASONS
    assert crds.IMAGE_PULL_FAILURE_REASONS <= crds.KERNEL_FATAL_WAITING_REASONS
    assert crds.REASON_UNSCHEDULABLE not in crds.LAUNCH_FAIL_FAST_REASONS
    assert crds.REASON_UNSCHEDULABLE not in crds.KERNEL_FATAL_WAITING_REASONS
    assert not crds.BENIGN_WAITING_REASONS & crds.KERNEL_FATAL_WAITING_REASONS
    assert crds.gateway_auth_secret_name("gw") == "gw-auth"
    assert crds.notebook_token_secret_name("nb") == "nb-token"
    assert crds.KOPF_ANNOTATION_PREFIX == "kopf.kubeflow.tkestack.io"
    assert crds.FINALIZER == "kopf.kubeflow.tkestack.io/finalizer"


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "original"
ORIGINAL_MANIFESTS = sorted(FIXTURES.glob("*.yaml"))


def test_every_kind_has_an_original_manifest() -> None:
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in ORIGINAL_MANIFESTS}
    assert kinds == set(KINDS)
    assert len(ORIGINAL_MANIFESTS) == 14  # original-operator.md §8: 7 examples + 7 samples


@pytest.mark.parametrize("path", ORIGINAL_MANIFESTS, ids=[p.stem for p in ORIGINAL_MANIFESTS])
def test_original_manifest_is_valid_and_nothing_is_pruned(
    by_kind: dict[str, dict[str, Any]], path: Path
) -> None:
    manifest = yaml.safe_load(path.read_text())
    assert manifest["apiVersion"] == crds.API_VERSION
    schema = schema_of(by_kind[manifest["kind"]])
    assert value_problems(manifest["spec"], schema["properties"]["spec"], "spec") == []
    assert pruned_paths(manifest, schema) == []


def test_pruning_check_sees_what_the_original_lost(by_kind: dict[str, dict[str, Any]]) -> None:
    """The checker itself: under the original's bare metadata, template labels were pruned."""
    original = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "template": {
                        "type": "object",
                        "properties": {"metadata": {"type": "object"}, "spec": {"type": "object"}},
                    }
                },
            }
        },
    }
    manifest = {"spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {}}}}
    assert pruned_paths(manifest, original) == ["spec.template.metadata.labels"]
    assert pruned_paths(manifest, schema_of(by_kind["JupyterKernelTemplate"])) == []


DOCS = Path(__file__).resolve().parents[2] / "docs" / "crds.md"


@pytest.mark.parametrize("kind", KINDS)
def test_reference_docs_cover_every_field(by_kind: dict[str, dict[str, Any]], kind: str) -> None:
    text = DOCS.read_text()
    section = text.split(f"\n## {kind}\n", 1)[1].split("\n## ", 1)[0]
    schema = schema_of(by_kind[kind])
    names = set(schema["properties"]["spec"]["properties"]) | set(
        schema["properties"]["status"]["properties"]
    )
    missing = sorted(name for name in names if f"`{name}" not in section)
    assert missing == [], f"docs/crds.md, section {kind}"
    for column in version_of(by_kind[kind])["additionalPrinterColumns"]:
        assert column["name"].upper() in section, column["name"]


def test_rfc3339_timestamps() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=timezone.utc)
    assert crds.rfc3339(moment) == "2026-01-02T03:04:05Z"
    assert crds.rfc3339(moment.replace(tzinfo=None)) == "2026-01-02T03:04:05Z"
    assert crds.rfc3339(moment.astimezone(timezone(timedelta(hours=8)))) == "2026-01-02T03:04:05Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", crds.rfc3339())
