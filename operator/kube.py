"""Credentials and the operator's small asynchronous Kubernetes API client.

Who calls what, and when:

* kopf calls :func:`elastic_jupyter.operator.lifecycle.login` (an ``@kopf.on.login`` handler) at
  startup; it calls :func:`load_configuration` and :func:`connection_info` here. Nothing is
  loaded at import time.
* The startup handler in :mod:`lifecycle` opens one :class:`KubeClient` for the operator's own
  writes (create a pod or ConfigMap, patch a status) and the cleanup handler closes it.

Why a small aiohttp client and not the ``kubernetes`` package's API classes: that client is
synchronous, so every call would cost a thread hop (``asyncio.to_thread``) plus building and
parsing its pydantic models for objects we only pass through as dicts. kopf already depends on
aiohttp and talks to the API with plain JSON; doing the same keeps one event loop, one
connection pool with keep-alive, and a create/patch at about the latency of the request itself.
The ``kubernetes`` package is still used for what it is good at: reading a kubeconfig or the
in-cluster service account.

Credentials: ``$KUBECONFIG`` set → that kubeconfig; otherwise the in-cluster service account
(falling back to ``~/.kube/config`` when there is none, for running from a laptop).
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from elastic_jupyter.crds import api_errors

#: Raised by :class:`KubeClient` for every non-2xx answer (shared with the gateway plugin).
ApiError = api_errors.ApiError


def load_configuration() -> Any:
    """Load a ``kubernetes.client.Configuration``: ``$KUBECONFIG`` first, else in-cluster."""
    configuration = k8s_client.Configuration()
    kubeconfig = os.environ.get("KUBECONFIG")
    if kubeconfig:
        # Passed explicitly: the kubernetes package reads $KUBECONFIG once, at its import.
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
        return configuration
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


def _authorization(configuration: Any) -> str | None:
    # kubernetes >= 36 keeps the bearer token under "BearerToken", older ones under
    # "authorization"; both getters call the refresh hook (in-cluster tokens rotate).
    header = configuration.get_api_key_with_prefix("BearerToken") or (
        configuration.get_api_key_with_prefix("authorization")
    )
    return str(header) if header else None


def connection_info(configuration: Any) -> kopf.ConnectionInfo:
    """kopf's credentials from a loaded configuration (what ``kopf.login_via_client`` does)."""
    header = _authorization(configuration)
    parts = header.split(" ", 1) if header else []
    scheme, token = (
        (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    )
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


class KubeClient:
    """Just the requests the operator makes itself, as JSON over one aiohttp session."""

    def __init__(self, configuration: Any, *, timeout: float = 30.0) -> None:
        self._configuration = configuration
        self._server = str(configuration.host).rstrip("/")
        self._auth: str | None = None
        self._auth_expires = 0.0
        ssl_context: ssl.SSLContext | bool = False
        if self._server.startswith("https"):
            if configuration.verify_ssl:
                ssl_context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
            else:
                ssl_context = ssl.create_default_context()
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
            if configuration.cert_file:
                ssl_context.load_cert_chain(configuration.cert_file, configuration.key_file)
        # Many kernels start at once: allow enough parallel connections, keep them alive.
        connector = aiohttp.TCPConnector(limit=64, ssl=ssl_context)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers={"User-Agent": "elastic-jupyter-operator", "Accept": "application/json"},
        )

    def _authorization(self) -> str | None:
        # Reading the header is not free (the configuration may call a refresh hook, e.g. for
        # rotating in-cluster tokens): read it once a minute, not per request.
        now = time.monotonic()
        if self._auth_expires <= now:
            self._auth = _authorization(self._configuration)
            self._auth_expires = now + 60.0
        return self._auth

    async def close(self) -> None:
        """Close the connection pool (the cleanup handler calls it)."""
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """Send one request; return the decoded JSON answer or raise :class:`ApiError`."""
        headers = {"Content-Type": content_type}
        authorization = self._authorization()
        if authorization:
            headers["Authorization"] = authorization
        data = None if body is None else json.dumps(body)
        async with self._session.request(
            method, self._server + path, data=data, headers=headers
        ) as response:
            text = await response.text()
            try:
                answer = json.loads(text) if text else {}
            except ValueError:
                answer = {"message": text}
            if response.status >= 400:
                raise ApiError(
                    response.status,
                    str(answer.get("reason") or response.reason or ""),
                    str(answer.get("message") or text),
                )
            return answer if isinstance(answer, dict) else {}

    async def get(self, path: str) -> dict[str, Any]:
        """GET one object."""
        return await self.request("GET", path)

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a new object to its collection ``path``."""
        return await self.request("POST", path, body)

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH with a JSON merge patch (RFC 7386)."""
        return await self.request("PATCH", path, body, content_type="application/merge-patch+json")


def pods_path(namespace: str) -> str:
    """The collection URL of pods in ``namespace``."""
    return f"/api/v1/namespaces/{namespace}/pods"


def configmaps_path(namespace: str, name: str | None = None) -> str:
    """The collection URL of ConfigMaps in ``namespace``, or one ConfigMap's URL."""
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{base}/{name}" if name else base
