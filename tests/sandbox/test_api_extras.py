"""Sandbox extras: request stats and log, fault injection, and the pods/log proxy to a kubelet."""

from __future__ import annotations

import asyncio
import http.client
import json
from typing import Any
from urllib.parse import urlparse

from aiohttp import web
from kubernetes import client

from elastic_jupyter.sandbox.stats import FaultConfig
from tests.sandbox.test_api_support import ServerThread, api, raw, server

__all__ = ["api", "server"]


def test_stats_and_request_log(api: client.ApiClient, server: ServerThread) -> None:
    core = client.CoreV1Api(api)
    assert raw(server.url, "POST", "/sandbox/stats/reset", {})[0] == 200
    core.create_namespaced_config_map("default", {"metadata": {"name": "s"}})
    core.read_namespaced_config_map("s", "default")
    core.list_namespaced_config_map("default")
    core.patch_namespaced_config_map("s", "default", {"data": {"a": "b"}})
    core.delete_namespaced_config_map("s", "default")
    code, stats, _ = raw(server.url, "GET", "/sandbox/stats")
    assert code == 200 and stats["total"] == 5
    assert stats["byVerb"] == {"create": 1, "get": 1, "list": 1, "patch": 1, "delete": 1}
    row = next(r for r in stats["counts"] if r["verb"] == "create")
    assert row["resource"] == "configmaps" and row["userAgent"] == "OpenAPI-Generator"
    code, log, _ = raw(server.url, "GET", "/sandbox/requests?limit=2")
    assert [r["verb"] for r in log["items"]] == ["patch", "delete"]
    assert log["items"][0]["name"] == "s" and log["items"][0]["status"] == 200


def test_fault_injection(api: client.ApiClient, server: ServerThread) -> None:
    core = client.CoreV1Api(api)
    assert raw(server.url, "GET", "/sandbox/faults")[1]["errorRate"] == 0.0
    code, faults, _ = raw(
        server.url,
        "POST",
        "/sandbox/faults",
        {"errorRate": 1.0, "errorCode": 503, "resources": ["configmaps"]},
    )
    assert code == 200 and faults["resources"] == ["configmaps"]
    code, status, headers = raw(server.url, "GET", "/api/v1/namespaces/default/configmaps")
    assert code == 503 and status["reason"] == "ServiceUnavailable" and headers["Retry-After"]
    assert core.list_namespaced_pod("default").items == []  # other resources unaffected
    raw(server.url, "POST", "/sandbox/faults", {"dropWatchesAfterSeconds": 0.2})
    url = urlparse(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    auth = {"Authorization": f"Bearer {server.token}"}
    conn.request("GET", "/api/v1/namespaces/default/pods?watch=true", headers=auth)
    assert conn.getresponse().read() == b""  # the stream ends on its own
    conn.close()
    assert raw(server.url, "POST", "/sandbox/faults", {"errorRate": 2})[0] == 400
    raw(server.url, "POST", "/sandbox/faults", {})
    assert core.list_namespaced_config_map("default").items is not None
    assert FaultConfig.from_json({"errorRate": 0.5}).error_rate == 0.5


async def _fake_kubelet() -> tuple[web.AppRunner, int]:
    async def logs(request: web.Request) -> web.Response:
        info = request.match_info
        tail = request.query.get("tailLines", "all")
        return web.Response(text=f"{info['ns']}/{info['pod']}/{info['container']} tail={tail}\n")

    app = web.Application()
    app.router.add_get("/containerLogs/{ns}/{pod}/{container}", logs)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


def test_pod_log_proxy(api: client.ApiClient, server: ServerThread) -> None:
    core = client.CoreV1Api(api)
    future = asyncio.run_coroutine_threadsafe(_fake_kubelet(), server.loop)
    runner, port = future.result(10)
    try:
        node: dict[str, Any] = {
            "metadata": {"name": "n1"},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            },
        }
        core.create_node(node)
        core.create_node(
            {
                "metadata": {"name": "dead"},
                "status": {
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 1}},
                },
            }
        )
        for name, node_name in (("p", "n1"), ("q", "dead")):
            core.create_namespaced_pod(
                "default",
                {
                    "metadata": {"name": name},
                    "spec": {"nodeName": node_name, "containers": [{"name": "main", "image": "i"}]},
                },
            )
        text = core.read_namespaced_pod_log("p", "default", tail_lines=5)
        assert text.strip() == "default/p/main tail=5"
        code, status, _ = raw(server.url, "GET", "/api/v1/namespaces/default/pods/q/log")
        assert code == 400 and "unreachable" in status["message"]
        code, status, _ = raw(
            server.url, "GET", "/api/v1/namespaces/default/pods/p/log?container=nope"
        )
        assert code == 400 and status["reason"] == "BadRequest"
        code, status, _ = raw(server.url, "GET", "/api/v1/namespaces/default/pods/zzz/log")
        assert code == 404
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), server.loop).result(10)
    assert json.loads(json.dumps(node))  # the node body is plain JSON
