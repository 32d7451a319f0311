"""Shared fixtures for the API server tests: a server on its own loop thread, clients, kubeconfig.

Imported by the other ``test_api_*`` modules (it holds no tests itself). The server runs
in-process on a background thread so the synchronous official client, kubectl and kopf's
``KopfRunner`` can all talk to it over real HTTP.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from elastic_jupyter.sandbox import kubeconfig as sandbox_kubeconfig
from elastic_jupyter.sandbox.apiserver import ApiServerHandle, start_apiserver
from elastic_jupyter.sandbox.tls import make_serving_cert

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {
            "plural": "widgets",
            "singular": "widget",
            "kind": "Widget",
            "shortNames": ["wd"],
            "categories": ["toys"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "description": "A widget for tests.",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "description": "What the widget should be.",
                                "required": ["color"],
                                "properties": {
                                    "color": {
                                        "type": "string",
                                        "enum": ["red", "blue"],
                                        "description": "Paint.",
                                    },
                                    "size": {
                                        "type": "integer",
                                        "default": 3,
                                        "minimum": 1,
                                        "maximum": 10,
                                    },
                                    "ratio": {"type": "number"},
                                    "label": {
                                        "type": "string",
                                        "pattern": "^[a-z]+$",
                                        "maxLength": 8,
                                    },
                                    "port": {"x-kubernetes-int-or-string": True},
                                    "tags": {
                                        "type": "array",
                                        "maxItems": 2,
                                        "items": {"type": "string"},
                                    },
                                    "env": {
                                        "type": "object",
                                        "additionalProperties": {"type": "string"},
                                    },
                                    "note": {"type": "string", "nullable": True},
                                    "extra": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                    "template": {
                                        "type": "object",
                                        "properties": {
                                            "metadata": {"type": "object"},
                                            "spec": {
                                                "type": "object",
                                                "properties": {
                                                    "containers": {
                                                        "type": "array",
                                                        "items": {
                                                            "type": "object",
                                                            "required": ["name"],
                                                            "properties": {
                                                                "name": {"type": "string"},
                                                                "image": {"type": "string"},
                                                            },
                                                        },
                                                    }
                                                },
                                            },
                                        },
                                    },
                                    "embedded": {
                                        "type": "object",
                                        "x-kubernetes-embedded-resource": True,
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


# admin token per server URL, so the plain helpers below authenticate like a cluster admin
ADMIN_TOKENS: dict[str, str] = {}


class ServerThread:
    """The API server on a private asyncio loop in a daemon thread (RBAC on, plus a TLS
    listener for kubectl); these tests act as its admin."""

    def __init__(self, **kwargs: Any) -> None:
        self._pki = Path(tempfile.mkdtemp(prefix="ej-sandbox-pki-"))
        self.cert = make_serving_cert(self._pki)
        kwargs.setdefault("tls", self.cert)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.handle: ApiServerHandle | None = None
        self._kwargs = kwargs
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the sandbox API server did not start")
        assert self.handle is not None
        self.token = self.handle.access.admin_token
        ADMIN_TOKENS[self.handle.url] = self.token
        ADMIN_TOKENS[self.handle.secure_url] = self.token

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.handle = self.loop.run_until_complete(start_apiserver(**self._kwargs))
        self._ready.set()
        self.loop.run_forever()

    @property
    def url(self) -> str:
        assert self.handle is not None
        return self.handle.url

    @property
    def secure_url(self) -> str:
        assert self.handle is not None
        return self.handle.secure_url

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop (to inspect state without races)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        assert self.handle is not None
        asyncio.run_coroutine_threadsafe(self.handle.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        shutil.rmtree(self._pki, ignore_errors=True)


@pytest.fixture
def server() -> Iterator[ServerThread]:
    """A fresh, empty sandbox API server (fast bookmarks for watch tests)."""
    srv = ServerThread(bookmark_interval=0.2, history_size=50)
    yield srv
    srv.stop()


@pytest.fixture
def api(server: ServerThread) -> Iterator[client.ApiClient]:
    """The official client configured for the server."""
    cfg = client.Configuration()
    cfg.host = server.url
    cfg.api_key = {"authorization": f"Bearer {server.token}"}
    with client.ApiClient(cfg) as api_client:
        yield api_client


def write_kubeconfig(
    path: Path, server: ServerThread, namespace: str = "default", token: str | None = None
) -> Path:
    """A kubeconfig pointing kubectl (and kopf) at ``server``'s TLS listener, as its admin
    (or as the owner of ``token``)."""
    return sandbox_kubeconfig.write_kubeconfig(
        path,
        server.secure_url,
        token or server.token,
        namespace=namespace,
        ca_pem=server.cert.ca_pem,
    )


def raw(
    url: str,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """A plain HTTP request: ``(status, decoded JSON body or text, headers)``."""
    import json
    import urllib.error
    import urllib.request

    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    req = urllib.request.Request(url + path, data=data, method=method)
    if url in ADMIN_TOKENS and not any(k.lower() == "authorization" for k in headers or {}):
        req.add_header("Authorization", f"Bearer {ADMIN_TOKENS[url]}")
    if data is not None:
        req.add_header("Content-Type", content_type)
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            payload, code, hdrs = resp.read(), resp.status, resp.headers
    except urllib.error.HTTPError as exc:
        payload, code, hdrs = exc.read(), exc.code, exc.headers
    text = payload.decode()
    try:
        decoded: Any = json.loads(text) if text else None
    except ValueError:
        decoded = text
    return code, decoded, {k: ", ".join(hdrs.get_all(k) or ()) for k in set(hdrs.keys())}
