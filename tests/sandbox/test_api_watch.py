"""Watch semantics: synthetic ADDED, replay from resourceVersion, 410, bookmarks, selectors."""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any
from urllib.parse import urlparse

from kubernetes import client, watch

from tests.sandbox.test_api_support import ServerThread, api, server

__all__ = ["api", "server"]


def _stream(server: ServerThread, path: str) -> list[dict[str, Any]]:
    """Read a watch stream to its end (the query must carry timeoutSeconds)."""
    url = urlparse(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("GET", path, headers={"Authorization": f"Bearer {server.token}"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type", "").startswith("application/json")
    events = [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]
    conn.close()
    return events


def _cm(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": {"k": name}}


def test_initial_added_then_live_events(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", _cm("before"))

    def later() -> None:
        time.sleep(0.3)
        # no metadata.namespace in the body: the namespaced watch must still see it
        core.create_namespaced_config_map("default", _cm("after"))
        core.patch_namespaced_config_map("after", "default", {"data": {"k": "v2"}})
        core.delete_namespaced_config_map("after", "default")

    threading.Thread(target=later).start()
    seen = []
    stream = watch.Watch()
    for ev in stream.stream(core.list_namespaced_config_map, "default", timeout_seconds=20):
        seen.append((ev["type"], ev["object"].metadata.name))
        if ev["type"] == "DELETED":
            stream.stop()
    assert seen == [
        ("ADDED", "before"),
        ("ADDED", "after"),
        ("MODIFIED", "after"),
        ("DELETED", "after"),
    ]


def test_replay_from_resource_version_and_gone(api: client.ApiClient, server: ServerThread) -> None:
    core = client.CoreV1Api(api)
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", _cm("one"))
    core.patch_namespaced_config_map("one", "default", {"data": {"k": "x"}})
    events = _stream(
        server,
        f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=0.3",
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "one"),
        ("MODIFIED", "one"),
    ]
    assert int(events[1]["object"]["metadata"]["resourceVersion"]) > int(rv)
    # the fixture keeps 50 events of history: push the first ones out
    for i in range(60):
        core.patch_namespaced_config_map("one", "default", {"data": {"k": str(i)}})
    events = _stream(
        server,
        f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1",
    )
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert status["kind"] == "Status" and status["code"] == 410
    assert status["reason"] == "Expired" and "too old resource version" in status["message"]


def test_bookmarks_timeout_and_selectors(api: client.ApiClient, server: ServerThread) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", _cm("a", {"app": "x"}))
    core.create_namespaced_config_map("default", _cm("b", {"app": "y"}))
    rv = core.list_namespaced_config_map("default").metadata.resource_version

    # replayed from the history: selector transitions apply to past events too
    core.patch_namespaced_config_map("b", "default", {"metadata": {"labels": {"app": "x"}}})
    core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"app": "z"}}})
    started = time.monotonic()
    events = _stream(
        server,
        "/api/v1/namespaces/default/configmaps?watch=true&labelSelector=app%3Dx"
        f"&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion={rv}",
    )
    assert time.monotonic() - started < 5
    changes = [
        (e["type"], e["object"]["metadata"]["name"]) for e in events if e["type"] != "BOOKMARK"
    ]
    # b starts matching (ADDED), a stops matching (DELETED)
    assert changes == [("ADDED", "b"), ("DELETED", "a")]
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) >= int(rv)
    assert bookmarks[0]["object"]["kind"] == "ConfigMap"
    # a single-object watch via fieldSelector
    events = _stream(
        server,
        "/api/v1/configmaps?watch=true&fieldSelector=metadata.name%3Da&timeoutSeconds=0.2",
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]


def test_watch_list_and_crd_removal_end_streams(
    api: client.ApiClient, server: ServerThread
) -> None:
    from tests.sandbox.test_api_support import WIDGET_CRD

    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", _cm("x"))
    events = _stream(
        server,
        "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true"
        "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=0.3",
    )
    assert events[0]["type"] == "ADDED" and events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(WIDGET_CRD)

    def later() -> None:
        time.sleep(0.3)
        ext.delete_custom_resource_definition("widgets.example.com")

    threading.Thread(target=later).start()
    started = time.monotonic()
    # without timeoutSeconds: only the CRD's removal ends this stream
    events = _stream(server, "/apis/example.com/v1/widgets?watch=true")
    assert events == [] and time.monotonic() - started < 5
