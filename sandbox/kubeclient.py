"""A small asyncio Kubernetes API client for the sandbox's own components.

The kubelet, scheduler, Deployment/ReplicaSet controllers and the Service controller are
written as ordinary API clients: they speak HTTP to the sandbox API server exactly as real
components speak to a kube-apiserver (list + watch with ``resourceVersion``, status writes via
``/status``, binding via ``pods/{name}/binding``). This module gives them:

* :class:`KubeClient` - JSON requests, errors raised as :class:`ApiError` carrying the
  ``Status`` reason, and a watch stream;
* :class:`Informer` - a list+watch loop keeping a local cache and calling back on every change
  (relisting on ``410 Gone`` and reconnecting on stream end, as client-go's reflector does);
* :class:`WorkQueue` - a de-duplicating queue of keys for level-triggered reconcilers.

It deliberately does not use the official ``kubernetes`` package: that client is synchronous
and the sandbox must stay light.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import aiohttp

from .clock import now

Obj = dict[str, Any]
log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    """An HTTP error from the API server, with the ``Status`` body's reason and message."""

    def __init__(self, code: int, reason: str, message: str, body: Obj | None = None) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.body = body or {}


def resource_path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """Build the REST path of a collection or object (``v1`` core, else ``/apis/<g>/<v>``)."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    parts = [base]
    if namespace:
        parts.append(f"namespaces/{quote(namespace, safe='')}")
    parts.append(plural)
    if name:
        parts.append(quote(name, safe=""))
        if subresource:
            parts.append(subresource)
    return "/".join(parts)


def obj_key(obj: Obj) -> tuple[str, str]:
    """The ``(namespace, name)`` key of an object ('' namespace for cluster-scoped ones)."""
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class KubeClient:
    """JSON over HTTP to one API server. Owned by each sandbox component; close it when done."""

    def __init__(
        self, base_url: str, *, user_agent: str = "elastic-jupyter-sandbox", token: str = ""
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._user_agent = user_agent
        self._token = token

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": self._user_agent, "Accept": "application/json"}
                | ({"Authorization": f"Bearer {self._token}"} if self._token else {}),
                timeout=aiohttp.ClientTimeout(total=30, sock_connect=5),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        """Send one request; return the decoded JSON body or raise :class:`ApiError`."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(
            method, self.base_url + path, params=params, data=data, headers=headers
        ) as resp:
            text = await resp.text()
            payload: Any = None
            if text:
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = None
            if resp.status >= 400:
                status = payload if isinstance(payload, dict) else {}
                raise ApiError(
                    resp.status,
                    str(status.get("reason") or resp.reason or "Error"),
                    str(status.get("message") or text[:200]),
                    status,
                )
            return payload if isinstance(payload, dict) else {}

    async def get(self, path: str, params: dict[str, str] | None = None) -> Obj:
        return await self.request("GET", path, params=params)

    async def get_or_none(self, path: str) -> Obj | None:
        try:
            return await self.get(path)
        except ApiError as err:
            if err.code == 404:
                return None
            raise

    async def create(self, path: str, body: Obj) -> Obj:
        return await self.request("POST", path, body=body)

    async def replace(self, path: str, body: Obj) -> Obj:
        return await self.request("PUT", path, body=body)

    async def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> Obj:
        return await self.request("PATCH", path, body=body, content_type=content_type)

    async def post_pod_event(
        self, pod: Obj, etype: str, reason: str, message: str, component: str, host: str = ""
    ) -> None:
        """Post a core/v1 Event about a pod, as ``kubectl describe pod`` shows them.

        Best effort, as in real components: an Event that cannot be written is dropped.
        """
        meta = pod.get("metadata") or {}
        ns = str(meta.get("namespace") or "default")
        stamp = now()
        source = {"component": component, "host": host} if host else {"component": component}
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name')}.", "namespace": ns},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta.get("name"),
                "namespace": ns,
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message,
            "type": etype,
            "source": source,
            "reportingComponent": component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        if host:
            body["reportingInstance"] = host
        with contextlib.suppress(ApiError, aiohttp.ClientError, asyncio.TimeoutError):
            await self.create(resource_path("v1", "events", ns), body)

    async def delete(
        self, path: str, *, grace_period: int | None = None, propagation: str | None = None
    ) -> Obj | None:
        """Delete an object; a missing object is not an error (returns None)."""
        opts: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period is not None:
            opts["gracePeriodSeconds"] = grace_period
        if propagation is not None:
            opts["propagationPolicy"] = propagation
        try:
            return await self.request("DELETE", path, body=opts)
        except ApiError as err:
            if err.code == 404:
                return None
            raise

    async def watch(
        self, path: str, params: dict[str, str] | None = None, *, timeout_seconds: int = 290
    ) -> AsyncIterator[Obj]:
        """Yield watch events (``{"type", "object"}``) until the server ends the stream.

        Lines are split by hand instead of ``readline()`` because aiohttp limits a line to
        128 KiB and a CRD with a big schema is larger than that.
        """
        query = dict(params or {})
        query.update(
            {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_seconds)}
        )
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=timeout_seconds + 30)
        async with self.session.get(self.base_url + path, params=query, timeout=timeout) as resp:
            if resp.status >= 400:
                text = await resp.text()
                try:
                    status = json.loads(text)
                except ValueError:
                    status = {}
                raise ApiError(
                    resp.status,
                    str(status.get("reason") or resp.reason),
                    str(status.get("message") or text[:200]),
                    status,
                )
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                if b"\n" not in chunk:
                    continue
                # Split a chunk of many events at once (re-splitting the rest per line is
                # quadratic in the chunk's size).
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
            if buf.strip():
                yield json.loads(buf)


EventHandler = Callable[[str, Obj, "Obj | None"], Awaitable[None]]


class Informer:
    """List+watch one collection into :attr:`cache`, calling ``handler(type, obj, old)``.

    ``type`` is ``ADDED``, ``MODIFIED`` or ``DELETED``; a relist after a broken watch emits the
    differences as the same three event types, so handlers never miss a change. Handler
    exceptions are logged, never fatal. :attr:`synced` is set after the first list.
    """

    def __init__(
        self,
        client: KubeClient,
        path: str,
        handler: EventHandler | None = None,
        *,
        params: dict[str, str] | None = None,
        name: str = "",
    ) -> None:
        self.client = client
        self.path = path
        self.params = dict(params or {})
        self.handler = handler
        self.cache: dict[tuple[str, str], Obj] = {}
        self.synced = asyncio.Event()
        self.name = name or path
        self._rv = ""

    def get(self, namespace: str, name: str) -> Obj | None:
        return self.cache.get((namespace, name))

    def items(self) -> list[Obj]:
        return list(self.cache.values())

    async def _emit(self, etype: str, obj: Obj, old: Obj | None) -> None:
        if self.handler is None:
            return
        try:
            await self.handler(etype, obj, old)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: handler failed on %s %s", self.name, etype, obj_key(obj))

    async def _relist(self) -> None:
        listing = await self.client.get(self.path, self.params)
        self._rv = str((listing.get("metadata") or {}).get("resourceVersion") or "")
        fresh = {obj_key(o): o for o in listing.get("items") or []}
        old_cache = self.cache
        self.cache = dict(fresh)
        for key, obj in fresh.items():
            before = old_cache.get(key)
            if before is None:
                await self._emit("ADDED", obj, None)
            elif _rv_of(before) != _rv_of(obj):
                await self._emit("MODIFIED", obj, before)
        for key, before in old_cache.items():
            if key not in fresh:
                await self._emit("DELETED", before, before)
        self.synced.set()

    async def run(self) -> None:
        """Run until cancelled."""
        backoff = 0.2
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                params = dict(self.params)
                params["resourceVersion"] = self._rv
                async for event in self.client.watch(
                    self.path, params, timeout_seconds=random.randint(240, 300)
                ):
                    etype = str(event.get("type"))
                    obj = event.get("object") or {}
                    if etype == "ERROR":
                        # 410 Gone (history expired) and anything else: start over from a list.
                        need_list = True
                        break
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                    if rv:
                        self._rv = rv
                    if etype == "BOOKMARK":
                        continue
                    key = obj_key(obj)
                    old = self.cache.get(key)
                    if etype == "DELETED":
                        self.cache.pop(key, None)
                    else:
                        self.cache[key] = obj
                    await self._emit(etype, obj, old)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as err:  # connection refused, server restart, decode error...
                log.debug("%s: watch interrupted (%s); relisting", self.name, err)
                need_list = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


def _rv_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


K = TypeVar("K")


class WorkQueue(Generic[K]):
    """Keys to reconcile; a key queued twice before it is taken is reconciled once."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._pending: set[K] = set()

    def add(self, key: K) -> None:
        if key not in self._pending:
            self._pending.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.add, key)

    async def get(self) -> K:
        key = await self._queue.get()
        self._pending.discard(key)
        return key

    async def run(self, reconcile: Callable[[K], Awaitable[None]], name: str) -> None:
        """Reconcile keys one at a time until cancelled; failed keys are retried with backoff."""
        failures: dict[K, int] = {}
        while True:
            key = await self.get()
            try:
                await reconcile(key)
                failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                count = failures.get(key, 0) + 1
                failures[key] = count
                level = logging.DEBUG if isinstance(err, ApiError) and err.code == 409 else None
                if level is None:
                    log.warning("%s: reconcile %s failed: %s", name, key, err)
                self.add_after(key, min(0.05 * 2**count, 5.0))


async def cancel_tasks(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel tasks and wait for them, swallowing their cancellation."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
