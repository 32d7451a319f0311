"""CRD registration and openAPIV3Schema semantics: validation (422 naming the field),
defaulting, pruning and fieldValidation=Strict|Warn|Ignore."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.sandbox.test_api_support import WIDGET_CRD, ServerThread, api, raw, server

__all__ = ["api", "server"]

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"


@pytest.fixture
def widgets(api: client.ApiClient) -> client.CustomObjectsApi:
    client.ApiextensionsV1Api(api).create_custom_resource_definition(WIDGET_CRD)
    return client.CustomObjectsApi(api)


def _widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"color": "red", **spec},
    }


def _create(server: ServerThread, body: Any, query: str = "") -> tuple[int, Any, dict[str, str]]:
    return raw(server.url, "POST", WIDGETS + query, body)


def test_registration_and_discovery(api: client.ApiClient, server: ServerThread) -> None:
    crd = client.ApiextensionsV1Api(api).create_custom_resource_definition(WIDGET_CRD)
    conditions = {c.type: c.status for c in crd.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd.status.accepted_names.list_kind == "WidgetList"
    code, doc, _ = raw(server.url, "GET", "/apis/example.com/v1")
    assert code == 200 and doc["groupVersion"] == "example.com/v1"
    entries = {r["name"]: r for r in doc["resources"]}
    assert entries["widgets"]["shortNames"] == ["wd"] and entries["widgets"]["categories"] == [
        "toys"
    ]
    assert entries["widgets"]["namespaced"] is True and "widgets/status" in entries
    code, groups, _ = raw(server.url, "GET", "/apis")
    assert "example.com" in {g["name"] for g in groups["groups"]}
    code, listing, _ = raw(server.url, "GET", WIDGETS)
    assert code == 200 and listing["kind"] == "WidgetList"
    assert listing["apiVersion"] == "example.com/v1"
    code, index, _ = raw(server.url, "GET", "/openapi/v3")
    assert "apis/example.com/v1" in index["paths"]
    code, gv_doc, _ = raw(server.url, "GET", "/openapi/v3/apis/example.com/v1")
    schema = gv_doc["components"]["schemas"]["com.example.v1.Widget"]
    assert schema["x-kubernetes-group-version-kind"][0]["kind"] == "Widget"
    assert schema["properties"]["spec"]["description"] == "What the widget should be."
    code, body, _ = raw(server.url, "GET", "/openapi/v2")
    assert code == 200 and body is None


def test_validation_names_the_field(widgets: client.CustomObjectsApi, server: ServerThread) -> None:
    code, status, _ = _create(server, _widget("w", size="big"))
    assert code == 422 and status["reason"] == "Invalid"
    assert status["message"] == (
        'Widget.example.com "w" is invalid: spec.size: Invalid value: "string": spec.size in '
        'body must be of type integer: "string"'
    )
    assert status["details"]["causes"][0]["field"] == "spec.size"
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"color": "green"},
            'spec.color: Unsupported value: "green": supported values: "red", "blue"',
        ),
        ({"size": 11}, "spec.size in body should be less than or equal to 10"),
        ({"size": 0}, "spec.size in body should be greater than or equal to 1"),
        ({"size": 1.5}, 'spec.size in body must be of type integer: "number"'),
        ({"ratio": "x"}, 'spec.ratio in body must be of type number: "string"'),
        ({"label": "ABC"}, "spec.label in body should match '^[a-z]+$'"),
        ({"label": "abcdefghij"}, "spec.label: Too long: may not be more than 8 bytes"),
        ({"tags": ["a", "b", "c"]}, "spec.tags: Too many: 3: must have at most 2 items"),
        ({"tags": [1]}, 'spec.tags[0]: Invalid value: "integer"'),
        ({"env": {"A": 1}}, "spec.env[A] in body must be of type string"),
        ({"port": 1.5}, "spec.port in body must be of type integer,string"),
        (
            {"template": {"spec": {"containers": [{"image": "x"}]}}},
            "spec.template.spec.containers[0].name: Required value",
        ),
        (
            {"template": {"spec": {"containers": [{"name": "a", "image": 5}]}}},
            "spec.template.spec.containers[0].image: Invalid value",
        ),
        ({"embedded": {"foo": 1}}, "spec.embedded.apiVersion: Required value"),
    ]
    for spec, expected in cases:
        code, status, _ = _create(server, _widget("w", **spec))
        assert code == 422, spec
        assert expected in status["message"], (spec, status["message"])
    body = _widget("w")
    del body["spec"]["color"]
    code, status, _ = _create(server, body)
    assert code == 422 and "spec.color: Required value" in status["message"]
    # valid edge cases
    for i, ok in enumerate(({"port": 8080}, {"port": "http"}, {"note": None}, {"ratio": 2})):
        name = f"ok-{i}"
        code, status, _ = _create(server, _widget(name, **ok))
        assert code == 201, status
    code, status, _ = _create(server, _widget("Bad.Name"))
    assert code == 422 and "metadata.name: Invalid value" in status["message"]
    # updates are validated too
    obj = widgets.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "ok-1")
    code, status, _ = raw(
        server.url,
        "PATCH",
        f"{WIDGETS}/ok-1",
        {"spec": {"size": "x"}},
        "application/merge-patch+json",
    )
    assert code == 422 and "spec.size" in status["message"]
    obj["metadata"].pop("resourceVersion")
    code, status, _ = raw(server.url, "PUT", f"{WIDGETS}/ok-1", obj)
    assert code == 422 and "metadata.resourceVersion" in status["message"]


def test_defaulting_and_pruning(widgets: client.CustomObjectsApi, server: ServerThread) -> None:
    body = _widget(
        "w",
        junk=1,
        extra={"free": {"form": True}},
        template={"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}},
        embedded={
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "bogus": 1},
            "spec": {"any": "thing"},
        },
    )
    code, obj, headers = _create(server, body)
    assert code == 201, obj
    spec = obj["spec"]
    assert spec["size"] == 3  # default applied
    assert "junk" not in spec  # pruned
    assert spec["extra"] == {"free": {"form": True}}  # preserved
    assert spec["template"]["metadata"] == {}  # metadata: {type: object} prunes its content
    assert spec["embedded"]["metadata"] == {"name": "p"} and spec["embedded"]["spec"] == {
        "any": "thing"
    }
    assert 'unknown field \\"spec.junk\\"' in headers.get("Warning", "")  # Warn is the default
    stored = widgets.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "w")
    assert stored["spec"] == spec


def test_field_validation_modes(widgets: client.CustomObjectsApi, server: ServerThread) -> None:
    code, status, _ = _create(server, _widget("s", foo=1), "?fieldValidation=Strict")
    assert code == 400 and status["reason"] == "BadRequest"
    assert 'strict decoding error: unknown field "spec.foo"' in status["message"]
    code, status, _ = _create(server, _widget("s", foo=1), "?fieldValidation=Ignore")
    assert code == 201 and "foo" not in status["spec"]
    dup = (
        b'{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"d"},'
        b'"spec":{"color":"red","color":"blue"}}'
    )
    code, status, _ = _create(server, dup, "?fieldValidation=Strict")
    assert code == 400 and 'duplicate field "color"' in status["message"]
    code, status, _ = _create(
        server, _widget("m") | {"metadata": {"name": "m", "bogus": 1}}, "?fieldValidation=Strict"
    )
    assert code == 400 and 'unknown field "metadata.bogus"' in status["message"]


def test_crd_update_changes_schema(api: client.ApiClient, server: ServerThread) -> None:
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(WIDGET_CRD)
    crd = ext.read_custom_resource_definition("widgets.example.com")
    changed = copy.deepcopy(WIDGET_CRD)
    changed["metadata"]["resourceVersion"] = crd.metadata.resource_version
    changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "size"
    ]["maximum"] = 100
    ext.replace_custom_resource_definition("widgets.example.com", changed)
    code, obj, _ = _create(server, _widget("big", size=50))
    assert code == 201 and obj["spec"]["size"] == 50
    bad = copy.deepcopy(WIDGET_CRD)
    bad["metadata"]["name"] = "wrong.example.com"
    with pytest.raises(client.ApiException) as err:
        ext.create_custom_resource_definition(bad)
    assert err.value.status == 422 and "spec.names.plural" in err.value.body


@pytest.mark.skipif(
    not list(CRD_DIR.glob("*.yaml")), reason="the project's CRDs are not written yet"
)
def test_project_crds_register(api: client.ApiClient, server: ServerThread) -> None:
    ext = client.ApiextensionsV1Api(api)
    plurals = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        ext.create_custom_resource_definition(crd)
        plurals.append(
            (
                crd["spec"]["group"],
                crd["spec"]["versions"][0]["name"],
                crd["spec"]["names"]["plural"],
            )
        )
    for group, version, plural in plurals:
        code, listing, _ = raw(
            server.url, "GET", f"/apis/{group}/{version}/namespaces/default/{plural}"
        )
        assert code == 200 and listing["items"] == []


def test_formats_and_list_maps(api: client.ApiClient, server: ServerThread) -> None:
    crd = copy.deepcopy(WIDGET_CRD)
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]
    props["when"] = {"type": "string", "format": "date-time"}
    props["conditions"] = {
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {"type": "object", "properties": {"type": {"type": "string"}}},
    }
    client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
    code, _, _ = _create(server, _widget("a", when="2026-01-02T03:04:05Z"))
    assert code == 201
    code, status, _ = _create(server, _widget("b", when="yesterday"))
    assert (
        code == 422
        and 'spec.when in body must be of type date-time: "yesterday"' in status["message"]
    )
    code, status, _ = _create(server, _widget("c", conditions=[{"type": "A"}, {"type": "A"}]))
    assert code == 422 and "spec.conditions[1]: Duplicate value" in status["message"]
