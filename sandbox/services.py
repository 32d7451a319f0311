"""Services in the sandbox: the Endpoints controller, a TCP proxy per port, and DNS names.

Started by :mod:`.cli`; an API client over HTTP (list+watch of services, endpoints and pods).

* **Endpoints**: for every Service with a selector, an Endpoints object of the same name lists
  the matching pods with a pod IP - ready ones in ``addresses``, others in
  ``notReadyAddresses`` (all of them with ``publishNotReadyAddresses``) - with named
  ``targetPort``\\ s resolved against each pod's container ports, as the real controller does.
* **Proxy** (the kube-proxy part): the API server allocates each Service a clusterIP from
  127.96.0.0/16; for every TCP port the controller listens on ``clusterIP:port`` (and on
  ``127.0.0.1:nodePort`` when one is set) and forwards each connection to a ready endpoint
  (round robin) - plain byte copying, so HTTP, websockets and ZeroMQ all pass. Without a ready
  endpoint a connection is closed at once.
* **DNS** (:mod:`.etchosts`): ``name``, ``name.ns``, ``name.ns.svc`` and
  ``name.ns.svc.cluster.local`` resolve to the clusterIP (headless Services: to the ready pod
  IPs) for processes on this machine, i.e. sandbox pods. The short ``name`` is global in a hosts
  file, so when two namespaces have a Service of the same name the newest one gets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from .etchosts import HostsFile
from .kubeclient import ApiError, Informer, KubeClient, Obj, WorkQueue, cancel_tasks, resource_path

log = logging.getLogger(__name__)
CLUSTER_DOMAIN = "cluster.local"


def selector_matches(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def resolve_target_port(port: Obj, pod: Obj) -> int | None:
    """A Service port's ``targetPort`` on one pod (a named port looked up in its containers)."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int) or str(target).isdigit():
        return int(str(target))
    for container in (pod.get("spec") or {}).get("containers") or []:
        for cport in container.get("ports") or []:
            if cport.get("name") == target:
                return int(cport["containerPort"])
    return None


def build_subsets(service: Obj, pods: list[Obj]) -> list[Obj]:
    """The Endpoints ``subsets`` of a Service for the given pods of its namespace."""
    spec = service.get("spec") or {}
    selector = spec.get("selector") or {}
    publish_all = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple[tuple[str, int, str], ...], dict[str, list[Obj]]] = {}
    for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        if not selector_matches(selector, meta.get("labels") or {}):
            continue
        if meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        if not status.get("podIP"):
            continue
        ports = []
        for port in spec.get("ports") or []:
            resolved = resolve_target_port(port, pod)
            if resolved is not None:
                ports.append(
                    (str(port.get("name") or ""), resolved, str(port.get("protocol") or "TCP"))
                )
        key = tuple(ports)
        address = {
            "ip": status["podIP"],
            "nodeName": (pod.get("spec") or {}).get("nodeName"),
            "targetRef": {
                "kind": "Pod",
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
            },
        }
        bucket = groups.setdefault(key, {"addresses": [], "notReadyAddresses": []})
        if pod_ready(pod) or publish_all:
            bucket["addresses"].append(address)
        else:
            bucket["notReadyAddresses"].append(address)
    subsets = []
    for ports_key, addresses in groups.items():
        subset: Obj = {
            "ports": [
                {**({"name": n} if n else {}), "port": p, "protocol": proto}
                for n, p, proto in ports_key
            ]
        }
        for field in ("addresses", "notReadyAddresses"):
            if addresses[field]:
                subset[field] = addresses[field]
        subsets.append(subset)
    return subsets


def dns_names(name: str, namespace: str) -> list[str]:
    base = f"{name}.{namespace}"
    return [base, f"{base}.svc", f"{base}.svc.{CLUSTER_DOMAIN}"]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


class PortProxy:
    """One listening socket forwarding to the ready endpoints of one Service port."""

    def __init__(self, controller: ServiceController, key: tuple[str, str], port: Obj) -> None:
        self.controller = controller
        self.key = key
        self.port = port
        self.server: asyncio.Server | None = None
        self._next = 0
        self._conns: set[asyncio.Task[None]] = set()

    async def listen(self, host: str, number: int) -> None:
        self.server = await asyncio.start_server(self._handle, host, number, reuse_address=True)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1.0)
        await cancel_tasks(list(self._conns))

    def _backends(self) -> list[tuple[str, int]]:
        endpoints = self.controller.endpoints.get(*self.key)
        name = str(self.port.get("name") or "")
        result = []
        for subset in (endpoints or {}).get("subsets") or []:
            ports = subset.get("ports") or []
            match = next(
                (p for p in ports if str(p.get("name") or "") == name),
                ports[0] if len(ports) == 1 else None,
            )
            if match is None:
                continue
            for address in subset.get("addresses") or []:
                result.append((str(address["ip"]), int(match["port"])))
        return result

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        try:
            backends = self._backends()
            if not backends:
                return
            self._next = (self._next + 1) % len(backends)
            host, port = backends[self._next]
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), 5
                )
            except (OSError, asyncio.TimeoutError):
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()
            if task is not None:
                self._conns.discard(task)


class ServiceController:
    """Endpoints, proxies and DNS for every Service; ``await start()`` then ``await stop()``."""

    def __init__(
        self, api_url: str, *, dns: bool = True, hosts_tag: str = "", token: str = ""
    ) -> None:
        self.client = KubeClient(api_url, user_agent="sandbox-service-controller", token=token)
        self.services = Informer(
            self.client, resource_path("v1", "services"), self._on_service, name="services"
        )
        self.endpoints = Informer(self.client, resource_path("v1", "endpoints"), name="endpoints")
        self.pods = Informer(self.client, resource_path("v1", "pods"), self._on_pod, name="pods")
        self.queue: WorkQueue[tuple[str, str]] = WorkQueue()
        self.proxies: dict[tuple[str, str], tuple[str, list[PortProxy]]] = {}
        self.hosts = HostsFile(hosts_tag or api_url.rsplit(":", 1)[-1]) if dns else None
        self._dns_dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        informers = (self.services, self.endpoints, self.pods)
        self._tasks = [asyncio.create_task(i.run()) for i in informers]
        for informer in informers:
            await asyncio.wait_for(informer.synced.wait(), 30)
        self._tasks.append(asyncio.create_task(self.queue.run(self.sync, "services")))
        if self.hosts is not None:
            self._dns_dirty.set()
            self._tasks.append(asyncio.create_task(self._dns_loop()))

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        for _, proxies in self.proxies.values():
            for proxy in proxies:
                await proxy.close()
        self.proxies.clear()
        if self.hosts is not None:
            await asyncio.to_thread(self.hosts.remove)
        await self.client.close()

    # -- routing --

    async def _on_service(self, etype: str, obj: Obj, old: Obj | None) -> None:
        self.queue.add((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
        self._dns_dirty.set()

    async def _on_pod(self, etype: str, obj: Obj, old: Obj | None) -> None:
        ns = obj["metadata"].get("namespace", "")
        labels = obj["metadata"].get("labels") or {}
        old_labels = ((old or {}).get("metadata") or {}).get("labels") or {}
        headless_changed = False
        for svc in self.services.items():
            if svc["metadata"].get("namespace") != ns:
                continue
            selector = (svc.get("spec") or {}).get("selector") or {}
            if selector_matches(selector, labels) or selector_matches(selector, old_labels):
                self.queue.add((ns, svc["metadata"]["name"]))
                headless_changed |= (svc.get("spec") or {}).get("clusterIP") == "None"
        if headless_changed:
            self._dns_dirty.set()

    # -- reconcile --

    async def sync(self, key: tuple[str, str]) -> None:
        service = self.services.get(*key)
        if service is None:
            await self._close_proxies(key)
            if self.endpoints.get(*key) is not None:
                # As the endpoints controller does: Endpoints go with their Service.
                await self.client.delete(resource_path("v1", "endpoints", key[0], key[1]))
            return
        spec = service.get("spec") or {}
        if spec.get("selector"):
            await self._sync_endpoints(service)
        await self._sync_proxies(key, service)

    async def _sync_endpoints(self, service: Obj) -> None:
        ns, name = service["metadata"].get("namespace", ""), service["metadata"]["name"]
        pods = [p for p in self.pods.items() if p["metadata"].get("namespace") == ns]
        subsets = build_subsets(service, pods)
        current = self.endpoints.get(ns, name)
        if current is not None and (current.get("subsets") or []) == subsets:
            return
        labels = dict(service["metadata"].get("labels") or {})
        body = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "subsets": subsets,
        }
        path = resource_path("v1", "endpoints", ns)
        created_now = False
        if current is None:
            try:
                created = await self.client.create(path, body)
                self.endpoints.cache[(ns, name)] = created
                created_now = True
            except ApiError as err:
                if err.code != 409:
                    raise
        if not created_now:
            updated = await self.client.patch(
                resource_path("v1", "endpoints", ns, name), {"subsets": subsets}
            )
            self.endpoints.cache[(ns, name)] = updated
        if (service.get("spec") or {}).get("clusterIP") == "None":
            self._dns_dirty.set()  # headless names resolve to the endpoints just written

    async def _close_proxies(self, key: tuple[str, str]) -> None:
        entry = self.proxies.pop(key, None)
        if entry is not None:
            for proxy in entry[1]:
                await proxy.close()

    async def _sync_proxies(self, key: tuple[str, str], service: Obj) -> None:
        spec = service.get("spec") or {}
        cluster_ip = str(spec.get("clusterIP") or "")
        ports = [p for p in spec.get("ports") or [] if (p.get("protocol") or "TCP") == "TCP"]
        signature = repr((cluster_ip, ports))
        existing = self.proxies.get(key)
        if existing is not None and existing[0] == signature:
            for proxy in existing[1]:
                proxy.port = next(
                    (p for p in ports if p.get("port") == proxy.port.get("port")), proxy.port
                )
            return
        await self._close_proxies(key)
        if not cluster_ip or cluster_ip == "None":
            return
        proxies = []
        for port in ports:
            listeners = [(cluster_ip, int(port["port"]))]
            if port.get("nodePort"):
                listeners.append(("127.0.0.1", int(port["nodePort"])))
            for host, number in listeners:
                proxy = PortProxy(self, key, port)
                try:
                    await proxy.listen(host, number)
                except OSError as err:
                    log.warning(
                        "service %s/%s: cannot listen on %s:%s: %s", *key, host, number, err
                    )
                    continue
                proxies.append(proxy)
        self.proxies[key] = (signature, proxies)

    # -- DNS --

    def hosts_entries(self) -> list[tuple[str, list[str]]]:
        """(ip, names) lines for every Service, newest first so it wins the short name."""
        services = sorted(
            self.services.items(),
            key=lambda s: (str(s["metadata"].get("creationTimestamp", "")), s["metadata"]["name"]),
            reverse=True,
        )
        short_taken: set[str] = set()
        entries: list[tuple[str, list[str]]] = []
        for svc in services:
            ns, name = svc["metadata"].get("namespace", ""), svc["metadata"]["name"]
            spec = svc.get("spec") or {}
            names = dns_names(name, ns)
            if name not in short_taken:
                short_taken.add(name)
                names = [name, *names]
            if spec.get("clusterIP") == "None":
                endpoints = self.endpoints.get(ns, name) or {}
                ips = sorted(
                    {
                        str(a["ip"])
                        for subset in endpoints.get("subsets") or []
                        for a in subset.get("addresses") or []
                    }
                )
                entries.extend((ip, names) for ip in ips)
            elif spec.get("clusterIP"):
                entries.append((str(spec["clusterIP"]), names))
        return sorted(entries)

    async def _dns_loop(self) -> None:
        assert self.hosts is not None
        while True:
            await self._dns_dirty.wait()
            await asyncio.sleep(0.02)  # coalesce bursts of changes into one rewrite
            self._dns_dirty.clear()
            entries = self.hosts_entries()
            await asyncio.to_thread(self.hosts.write, entries)
            if not self.hosts.enabled:
                return
