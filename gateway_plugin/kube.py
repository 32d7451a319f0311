"""A small Kubernetes REST client for the gateway side: JSON requests and one watch stream.

The official ``kubernetes`` package is used only to *load* credentials (kubeconfig when
``KUBECONFIG`` is set, the pod's service account otherwise - never at import time); requests
go through one ``urllib3`` pool per client with a distinctive User-Agent so API servers (and the
sandbox's counters) attribute them to the gateway. Calls are synchronous; the process proxy
runs them on a small thread pool (:meth:`KubeApi.run`) so Enterprise Gateway's tornado loop
never waits on the network.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlencode

import urllib3

from elastic_jupyter import crds
from elastic_jupyter.crds import api_errors

from .settings import USER_AGENT

Obj = dict[str, Any]
T = TypeVar("T")


#: Raised for every error answer, and with status 0 when there was none (shared with the operator).
ApiError = api_errors.ApiError


def kernels_path(namespace: str | None, name: str | None = None) -> str:
    """REST path of JupyterKernels (all namespaces when ``namespace`` is ``None``)."""
    return crds.JUPYTER_KERNEL.path(namespace, name)


def templates_path(namespace: str, name: str) -> str:
    """REST path of one JupyterKernelTemplate."""
    return crds.JUPYTER_KERNEL_TEMPLATE.path(namespace, name)


def gateways_path(namespace: str, name: str) -> str:
    """REST path of one JupyterGateway."""
    return crds.JUPYTER_GATEWAY.path(namespace, name)


class KubeApi:
    """JSON over HTTP(S) to one API server, configured like the official client."""

    def __init__(
        self,
        host: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: Callable[[], str | None] | None = None,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        verify: bool = True,
        server_hostname: str | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.host = host.rstrip("/")
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        self._headers.update(headers or {})
        self._auth = auth
        # Retry only failed connects (never a request that may have reached the server).
        retries = urllib3.Retry(total=2, connect=2, read=0, status=0, redirect=0, other=0)
        pool_args: dict[str, Any] = {"maxsize": 8, "block": False, "retries": retries}
        if self.host.startswith("https"):
            pool_args["cert_reqs"] = "CERT_REQUIRED" if verify else "CERT_NONE"
            if ca_file:
                pool_args["ca_certs"] = ca_file
            if cert_file:
                pool_args["cert_file"] = cert_file
            if key_file:
                pool_args["key_file"] = key_file
            if server_hostname:
                pool_args["server_hostname"] = server_hostname
            if not verify:
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._pool = urllib3.PoolManager(num_pools=2, **pool_args)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    @classmethod
    def from_environment(
        cls, user_agent: str = USER_AGENT, env: Mapping[str, str] | None = None
    ) -> KubeApi:
        """Load credentials: ``KUBECONFIG`` of ``env`` (default ``os.environ``) when set, else
        the in-cluster service account."""
        from kubernetes import client, config

        configuration = client.Configuration()
        kubeconfig = (os.environ if env is None else env).get("KUBECONFIG")
        if kubeconfig:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
        else:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]

        def auth() -> str | None:
            token: str | None = configuration.get_api_key_with_prefix(
                "BearerToken", alias="authorization"
            )
            if token:
                return token
            if configuration.username or configuration.password:
                basic: str | None = configuration.get_basic_auth_token()
                return basic
            return None

        return cls(
            configuration.host,
            auth=auth,
            ca_file=configuration.ssl_ca_cert,
            cert_file=configuration.cert_file,
            key_file=configuration.key_file,
            verify=bool(configuration.verify_ssl),
            server_hostname=getattr(configuration, "tls_server_name", None),
            user_agent=user_agent,
        )

    def _request_headers(self, content_type: str | None) -> dict[str, str]:
        headers = dict(self._headers)
        if content_type:
            headers["Content-Type"] = content_type
        if self._auth is not None:
            token = self._auth()
            if token:
                headers["Authorization"] = token
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Obj | None = None,
        timeout: float = 10.0,
        content_type: str = "application/json",
    ) -> Obj:
        """Send one request and return the decoded JSON answer; raise :class:`ApiError`."""
        url = self.host + path + (f"?{urlencode(query)}" if query else "")
        data = json.dumps(body).encode("utf-8") if body is not None else None
        try:
            response = self._pool.request(
                method,
                url,
                body=data,
                headers=self._request_headers(content_type if data is not None else None),
                timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
                preload_content=True,
            )
        except urllib3.exceptions.HTTPError as err:
            raise ApiError(0, "ConnectionError", str(err)) from err
        return _decode(response.status, response.data)

    def stream(self, path: str, query: Mapping[str, str], read_timeout: float) -> Iterator[Obj]:
        """Yield the JSON lines of a watch; ends when the server closes the stream."""
        url = f"{self.host}{path}?{urlencode(query)}"
        try:
            response = self._pool.request(
                "GET",
                url,
                headers=self._request_headers(None),
                timeout=urllib3.Timeout(connect=5.0, read=read_timeout),
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as err:
            raise ApiError(0, "ConnectionError", str(err)) from err
        try:
            if response.status >= 400:
                _decode(response.status, response.read())
            buffer = b""
            for chunk in response.stream(8192, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
            if buffer.strip():
                yield json.loads(buffer)
        except urllib3.exceptions.ReadTimeoutError:
            return  # silent for read_timeout: a stalled stream ends like a closed one
        except urllib3.exceptions.HTTPError as err:
            raise ApiError(0, "ConnectionError", str(err)) from err
        finally:
            response.release_conn()

    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call (e.g. :meth:`request`) on this client's thread pool."""
        if self._executor is None:
            with self._executor_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(4, thread_name_prefix="ej-kube")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(func, *args, **kwargs))


def _decode(status: int, data: bytes) -> Obj:
    try:
        payload = json.loads(data) if data else {}
    except ValueError:
        payload = {"message": data[:200].decode("utf-8", "replace")}
    if not isinstance(payload, dict):
        payload = {"message": str(payload)}
    if status >= 400:
        raise ApiError(
            status, str(payload.get("reason") or "Error"), str(payload.get("message") or "")
        )
    return payload
