"""The kernelspec mirror: the namespace's kernelspec ConfigMaps → ``<dir>/kernels/<name>/``.

The part of kernelspec hot reload that needs no Enterprise Gateway, shared by the gateway
(:mod:`.kernelspec_sync`, whose managers boot the plugin) and the direct-mode notebook server
(:mod:`elastic_jupyter.provisioner.kernelspecs`, on jupyter_server 2 where EG cannot be
imported). :class:`KernelSpecSync` watches the kernelspec ConfigMaps of one namespace (and, for
a gateway, its JupyterGateway's ``spec.kernels``) and writes the selection into a directory,
each file passed through an optional ``transform`` (direct mode renames the kernel.json's
``process_proxy`` stanza). Imports only the standard library, ``crds`` and, lazily, the
kubernetes client.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from elastic_jupyter import crds

log = logging.getLogger(__name__)

KERNEL_JSON = "kernel.json"
WATCH_TIMEOUT_SECONDS = 300
RETRY_SECONDS = 1.0
LEGACY_DEFAULT_KERNEL = crds.LEGACY_DEFAULT_KERNEL
ALLOWED_PROXIES_ENV = "EJ_ALLOWED_PROCESS_PROXIES"
#: A kernel.json rewrite applied before writing: (name, text) → text, or None to skip it.
Transform = Callable[[str, str], str | None]

# --- Pure part -------------------------------------------------------------------------------


def kernel_name(configmap: Mapping[str, Any]) -> str:
    """The kernel name a kernelspec ConfigMap stands for: its label value, else its name."""
    meta = configmap.get("metadata") or {}
    label = (meta.get("labels") or {}).get(crds.LABEL_KERNELSPEC)
    return str(label or meta.get("name") or "")


def wanted_kernels(gateway: Mapping[str, Any] | None) -> list[str]:
    """``spec.kernels`` of a JupyterGateway; empty means all kernelspecs of the namespace."""
    if not gateway:
        return []
    return [str(k) for k in (gateway.get("spec") or {}).get("kernels") or []]


def builtin_kernel_json() -> str:
    """The built-in kernelspec's kernel.json: Python through our proxy, no template (the default
    kernel pod) and no image (the operator's default kernel image)."""
    document = {
        "display_name": crds.BUILTIN_KERNELSPEC_DISPLAY_NAME,
        "language": crds.DEFAULT_KERNEL_LANGUAGE,
        "env": {},
        "argv": ["kubeflow-launcher", *crds.KERNELSPEC_LAUNCHER_ARGS],
        "metadata": {
            "process_proxy": {"class_name": crds.DEFAULT_PROCESS_PROXY_CLASS, "config": {}}
        },
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def allowed_process_proxies(env: Mapping[str, str]) -> frozenset[str]:
    """Process-proxy classes a served kernel.json may name: ours, the original's name for it,
    and the admin's extra classes in ``EJ_ALLOWED_PROCESS_PROXIES`` (comma-separated)."""
    extra = {part.strip() for part in env.get(ALLOWED_PROXIES_ENV, "").split(",") if part.strip()}
    return frozenset({crds.DEFAULT_PROCESS_PROXY_CLASS}) | crds.LEGACY_PROCESS_PROXY_CLASSES | extra


def owned_by_kernelspec(configmap: Mapping[str, Any]) -> bool:
    """Whether a ConfigMap was rendered by the operator: controlled by a JupyterKernelSpec.

    Anyone who may create ConfigMaps in the namespace can put the kernelspec label on one; only
    the operator's carry a controller owner reference to a JupyterKernelSpec.
    """
    refs = (configmap.get("metadata") or {}).get("ownerReferences") or []
    return any(
        ref.get("controller")
        and ref.get("kind") == crds.JUPYTER_KERNEL_SPEC.kind
        and str(ref.get("apiVersion") or "").split("/")[0] == crds.GROUP
        for ref in refs
    )


def _process_proxy(document: Any) -> str:
    metadata = document.get("metadata") if isinstance(document, Mapping) else None
    proxy = metadata.get("process_proxy") if isinstance(metadata, Mapping) else None
    return str(proxy.get("class_name") or "") if isinstance(proxy, Mapping) else ""


def desired_files(
    configmaps: Iterable[Mapping[str, Any]],
    wanted: Sequence[str],
    allowed_proxies: frozenset[str] | None = None,
) -> dict[str, str]:
    """Kernel name → kernel.json text for the kernelspecs to serve.

    Served: ConfigMaps owned by a JupyterKernelSpec whose ``kernel.json`` parses and names an
    allowed process proxy (``allowed_proxies``, default ours only). A kernel.json without one
    would run its ``argv`` inside the gateway pod (EG's local launch), so it is never served.
    Skipped ones are logged; the operator reports them on the JupyterKernelSpec. Names in
    ``wanted`` without a ConfigMap are simply absent. A gateway that names no kernels, in a
    namespace without any JupyterKernelSpec's ConfigMap, serves the built-in
    :data:`crds.BUILTIN_KERNELSPEC`, so that the article's bare JupyterGateway runs Python kernels.
    """
    allowed = allowed_proxies if allowed_proxies is not None else allowed_process_proxies({})
    configmaps = list(configmaps)
    if not wanted and not any(kernel_name(cm) and owned_by_kernelspec(cm) for cm in configmaps):
        return {crds.BUILTIN_KERNELSPEC: builtin_kernel_json()}
    selected = set(wanted)
    files: dict[str, str] = {}
    for cm in configmaps:
        name = kernel_name(cm)
        text = (cm.get("data") or {}).get(KERNEL_JSON)
        if not name or not text or (selected and name not in selected):
            continue
        if not owned_by_kernelspec(cm):
            log.warning("kernelspec %s: ConfigMap not owned by a JupyterKernelSpec; ignored", name)
            continue
        try:
            document = json.loads(text)
        except ValueError:
            log.warning("kernelspec %s: kernel.json is not JSON; not served", name)
            continue
        proxy = _process_proxy(document)
        if proxy not in allowed:
            log.warning(
                "kernelspec %s: process proxy %r is not allowed (%s); not served",
                name,
                proxy,
                ALLOWED_PROXIES_ENV,
            )
            continue
        files[name] = text
    return files


def apply_files(kernels_dir: Path, files: Mapping[str, str]) -> list[str]:
    """Make ``kernels_dir`` hold exactly ``files``; return what changed (for the log).

    Every kernel.json is written to a temporary file and renamed into place, so a reader
    (jupyter_client on a request) never sees a half-written spec.
    """
    kernels_dir.mkdir(parents=True, exist_ok=True)
    changes: list[str] = []
    for name, text in sorted(files.items()):
        target = kernels_dir / name / KERNEL_JSON
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".kernel.json.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
        changes.append(f"wrote {name}")
    for entry in sorted(kernels_dir.iterdir()):
        if entry.is_dir() and entry.name not in files:
            (entry / KERNEL_JSON).unlink(missing_ok=True)
            shutil.rmtree(entry, ignore_errors=True)
            changes.append(f"removed {entry.name}")
    return changes


# --- Kubernetes side -------------------------------------------------------------------------


def default_kernel_name(served: Sequence[str]) -> str | None:
    """The default kernel when ``spec.defaultKernel`` is unset: the original's
    ``python_kubernetes`` if served, else the first served name in alphabetical order."""
    if LEGACY_DEFAULT_KERNEL in served:
        return LEGACY_DEFAULT_KERNEL
    return min(served) if served else None


#: Seconds after a kernelspec manager is built before it first sets the default kernel: the
#: server (EG or jupyter_server) builds its kernel manager right after the kernelspec manager.
DEFAULT_KERNEL_DELAY = 1.0


def follow_default_soon(list_kernelspecs: Callable[[], object]) -> None:
    """Call ``list_kernelspecs`` once, :data:`DEFAULT_KERNEL_DELAY` seconds from now, on a
    daemon thread. Both kernelspec managers (the gateway's and direct mode's) call it from their
    constructor: their listing makes the server's default kernel follow the kernelspecs served,
    and the first listing should not wait for a user's request."""

    def run() -> None:
        try:
            list_kernelspecs()
        except Exception as error:  # a timer thread must not die noisily; listings retry it
            log.debug("kernelspec mirror: default kernel not set yet: %s", error)

    timer = threading.Timer(DEFAULT_KERNEL_DELAY, run)
    timer.daemon = True
    timer.start()


def load_api_client(env: Mapping[str, str] | None = None) -> Any:
    """A kubernetes ApiClient: in-cluster config inside a pod, else the kubeconfig (both as
    ``env``, default ``os.environ``, says)."""
    from kubernetes import client, config

    env = os.environ if env is None else env
    if env.get("KUBECONFIG") or not env.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=env.get("KUBECONFIG") or None, client_configuration=configuration
        )
    else:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


ListFn = Callable[..., Any]


class KernelSpecSync:
    """Watches kernelspec ConfigMaps and the gateway's ``spec.kernels``; mirrors them to disk."""

    def __init__(
        self,
        directory: Path,
        namespace: str,
        gateway_name: str | None,
        api_client: Any,
        fixed_kernels: Sequence[str] = (),
        allowed_proxies: frozenset[str] | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.kernels_dir = directory / "kernels"
        self._transform = transform
        self.namespace = namespace
        self.gateway_name = gateway_name
        self.api_client = api_client
        self._fixed_kernels = list(fixed_kernels)
        self._allowed_proxies = allowed_proxies
        self._configmaps: dict[str, Mapping[str, Any]] | None = None
        self._gateway: Mapping[str, Any] | None = None
        self._gateway_known = gateway_name is None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.synced = threading.Event()
        self._threads: list[threading.Thread] = []
        #: Kernel names written by the last render (sorted).
        self.served: list[str] = []
        self.kernels_dir.mkdir(parents=True, exist_ok=True)

    # Watch loops ------------------------------------------------------------------------------

    def start(self) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.api_client)
        self._spawn(
            "configmaps",
            lambda: self._watch(
                core.list_namespaced_config_map,
                self._replace_configmaps,
                self._update_configmap,
                namespace=self.namespace,
                label_selector=crds.LABEL_KERNELSPEC,
            ),
        )
        if self.gateway_name:
            custom = client.CustomObjectsApi(self.api_client)
            self._spawn(
                "gateway",
                lambda: self._watch(
                    custom.list_namespaced_custom_object,
                    self._replace_gateway,
                    self._update_gateway,
                    group=crds.GROUP,
                    version=crds.VERSION,
                    namespace=self.namespace,
                    plural=crds.JUPYTER_GATEWAY.plural,
                    field_selector=f"metadata.name={self.gateway_name}",
                ),
            )

    def _spawn(self, what: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"kernelspec-sync-{what}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()

    def _watch(
        self,
        list_fn: ListFn,
        replace: Callable[[list[Mapping[str, Any]]], None],
        update: Callable[[str, Mapping[str, Any]], None],
        **kwargs: Any,
    ) -> None:
        """List, then watch from the list's resourceVersion; relist on any error or expiry."""
        from kubernetes import watch

        while not self._stop.is_set():
            try:
                response = list_fn(_preload_content=False, **kwargs)
                listing = json.loads(response.data)
                replace(list(listing.get("items") or []))
                version = (listing.get("metadata") or {}).get("resourceVersion")
                stream = watch.Watch()  # type: ignore[no-untyped-call]
                for event in stream.stream(  # type: ignore[no-untyped-call]
                    list_fn,
                    resource_version=version,
                    timeout_seconds=WATCH_TIMEOUT_SECONDS,
                    deserialize=False,
                    **kwargs,
                ):
                    if self._stop.is_set():
                        stream.stop()  # type: ignore[no-untyped-call]
                        break
                    kind = str(event.get("type"))
                    # deserialize=False: the event is the JSON line itself ("object", no
                    # "raw_object").
                    obj = event.get("raw_object") or event.get("object") or {}
                    if kind == "ERROR":
                        log.info("kernelspec sync: watch ended (%s); relisting", obj.get("message"))
                        break
                    if kind in ("ADDED", "MODIFIED", "DELETED") and obj.get("metadata"):
                        update(kind, obj)
            except Exception as error:  # the watch must survive API hiccups
                log.warning("kernelspec sync: %s; retrying in %.0f s", error, RETRY_SECONDS)
                self._stop.wait(RETRY_SECONDS)

    def _replace_configmaps(self, items: list[Mapping[str, Any]]) -> None:
        with self._lock:
            self._configmaps = {item["metadata"]["name"]: item for item in items}
            self._render_locked()

    def _update_configmap(self, kind: str, obj: Mapping[str, Any]) -> None:
        with self._lock:
            if self._configmaps is None:
                return
            name = obj["metadata"]["name"]
            if kind == "DELETED":
                self._configmaps.pop(name, None)
            else:
                self._configmaps[name] = obj
            self._render_locked()

    def _replace_gateway(self, items: list[Mapping[str, Any]]) -> None:
        with self._lock:
            self._gateway = items[0] if items else None
            self._gateway_known = True
            self._render_locked()

    def _update_gateway(self, kind: str, obj: Mapping[str, Any]) -> None:
        with self._lock:
            self._gateway = None if kind == "DELETED" else obj
            self._render_locked()

    def _render_locked(self) -> None:
        if self._configmaps is None or not self._gateway_known:
            return  # wait for both initial listings: never serve a wrong selection
        wanted = wanted_kernels(self._gateway) if self.gateway_name else self._fixed_kernels
        allowed = self._allowed_proxies or allowed_process_proxies(os.environ)
        files = desired_files(self._configmaps.values(), wanted, allowed)
        if self._transform is not None:
            rewritten = {name: self._transform(name, text) for name, text in files.items()}
            files = {name: text for name, text in rewritten.items() if text is not None}
        for change in apply_files(self.kernels_dir, files):
            log.info("kernelspec sync: %s", change)
        self.served = sorted(files)
        self.synced.set()
