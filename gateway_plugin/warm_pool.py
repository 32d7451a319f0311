"""Claim a warm-pool kernel for a start request, instead of creating a new JupyterKernel.

:meth:`KubeflowProcessProxy.launch_process` calls :func:`start_warm` first when the kernelspec's
``process_proxy.config`` carries ``warm_pool`` (the operator renders it from
``JupyterKernelSpec.spec.warmPool``). Steps, all after EG registered the kernel id and the
launch token, so the pool kernel's answer is accepted exactly like a cold kernel's:

1. **Plan as for a cold start.** The gateway's policy (:func:`plan_kernel`) and manifest
   builder run unchanged, so a refused request is refused the same way, and the pod template
   a cold start would create is known.
2. **Match.** One LIST of the pool's waiting kernels (label ``…/pool-state=pooled``, phase
   ``Pooled``). A kernel matches when its :func:`~elastic_jupyter.crds.warm_pool.pool_key`
   (image, resources, uid/gid, volumes, node selectors... everything but the identity env)
   equals the request's. None matches: the start is cold and the first differing field (or
   "pool empty") is logged and counted (``elastic_jupyter_warm_pool_starts_total``).
3. **Claim atomically.** A merge patch carrying the listed ``metadata.resourceVersion``: the
   API server refuses it with 409 when anybody (another replica, another gateway, the
   operator) changed the kernel since, so two claimers never both win; the loser tries the
   next kernel. The patch makes it this gateway's kernel: ``pool-state=claimed`` (never pooled
   again), the kernel labels (kernel id, gateway, gateway uid, user), the owner annotation,
   the claim annotation (who, when) and the JupyterGateway as owner.
4. **Identity.** The claim key from the kernel's Secret signs (``comm_auth``) one request to the
   kernel's claim port: the env a cold pod would have had (``KERNEL_USERNAME``, ``KERNEL_ID``,
   the client env the gateway allowed, the kernelspec's env), ``KERNEL_WORKING_DIR`` as the
   working directory, the response address, public key and launch token. The launcher applies
   it before the kernel serves (``kernel_launcher/warm.py``) and answers like any kernel.
5. **Wait** with the cold path's own :meth:`confirm_remote_startup`. A claim that cannot be
   delivered deletes the claimed kernel (no user code ran) and starts cold. Once the kernel
   reported back, the claim annotation gets ``completed`` (one more patch, off the start's
   path): from then on it is an ordinary kernel of this gateway.

A gateway that dies between 3 and 5 leaves a claimed kernel whose claim never completed: the
operator deletes it after its claim timeout (``operator/warm_pools.py``), and this gateway's
orphan sweep would too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from elastic_jupyter import crds
from elastic_jupyter.crds import warm_pool
from elastic_jupyter.kernel_launcher import comm_auth
from elastic_jupyter.kernel_launcher import env as launcher_env

from .kernel_manifest import build_kernel_manifest
from .kernel_resource import (
    GatewayRef,
    KernelPlan,
    LaunchInput,
    label_value,
    plan_kernel,
)
from .kernel_secret import read_kernel_secret
from .kube import ApiError, KubeApi, kernels_path
from .launcher import delete_kernel, gateway_ref, read_template
from .settings import GatewaySettings

if TYPE_CHECKING:
    from .process_proxy import KubeflowProcessProxy

Obj = dict[str, Any]
log = logging.getLogger(__name__)

#: Starts by (kernelspec, "warm" or "cold", reason) since the gateway started.
STARTS: Counter[tuple[str, str, str]] = Counter()
#: Seconds to connect to (retrying while its launcher starts) and write a claim to a pool kernel.
CLAIM_SEND_TIMEOUT = 10.0

try:  # EG serves prometheus_client's default registry at /metrics
    from prometheus_client import Counter as _PromCounter

    _PROM: Any = _PromCounter(
        "elastic_jupyter_warm_pool_starts",
        "Kernel starts of kernelspecs with a warm pool: warm (claimed) or cold, and why cold",
        ["kernelspec", "result", "reason"],
    )
except Exception:  # pragma: no cover - a second import in one process, or no prometheus
    _PROM = None


def _count(kernelspec: str, result: str, reason: str) -> None:
    STARTS[(kernelspec, result, reason)] += 1
    if _PROM is not None:
        _PROM.labels(kernelspec, result, reason).inc()


@dataclass(frozen=True)
class Claimed:
    """The outcome of a claim attempt: the claimed JupyterKernel, or why there is none."""

    obj: Obj | None
    reason: str
    plan: KernelPlan | None = None
    env: tuple[tuple[str, str], ...] = ()


def _kernel_container(template: Obj) -> Obj:
    containers = (template.get("spec") or {}).get("containers") or [{}]
    return next((c for c in containers if c.get("name") == "kernel"), containers[0])


def _literal_env(template: Obj) -> tuple[tuple[str, str], ...]:
    return tuple(
        (str(e["name"]), str(e["value"]))
        for e in _kernel_container(template).get("env") or []
        if isinstance(e, dict) and "value" in e and e.get("name")
    )


def claim_patch(
    obj: Obj, manifest: Obj, plan: KernelPlan, gateway_uid: str | None, replica: str
) -> Obj:
    """The resourceVersion-guarded merge patch that makes a pool kernel this request's."""
    meta = obj.get("metadata") or {}
    labels = dict(manifest["metadata"]["labels"])
    labels[warm_pool.LABEL_POOL_STATE] = warm_pool.POOL_STATE_CLAIMED
    claim = {
        "gateway": gateway_uid or "",
        "replica": replica,
        "kernelId": plan.kernel_id,
        "at": time.time(),
    }
    annotations = {warm_pool.ANNOTATION_CLAIM: json.dumps(claim, sort_keys=True)}
    annotations.update(manifest["metadata"].get("annotations") or {})
    patch: Obj = {
        "metadata": {
            "resourceVersion": meta.get("resourceVersion"),
            "labels": labels,
            "annotations": annotations,
        }
    }
    if manifest["metadata"].get("ownerReferences"):
        patch["metadata"]["ownerReferences"] = manifest["metadata"]["ownerReferences"]
    return patch


def claim_kernel(
    api: KubeApi,
    settings: GatewaySettings,
    inp: LaunchInput,
    pool_namespace: str,
    replica: str,
    gateway_of: Callable[[], GatewayRef] | None = None,
) -> Claimed:
    """Plan the start, find a matching pool kernel and claim it (blocking; API thread pool).

    ``replica`` is the claiming gateway replica's name and ``gateway_of`` its runtime's cached
    JupyterGateway lookup (without one, the JupyterGateway is read here).

    Raises :class:`~.kernel_resource.KernelRequestError` for a request the gateway refuses
    (the cold path would refuse it the same way).
    """
    plan = plan_kernel(inp, settings)
    template = read_template(api, plan.template) if plan.template else None
    gateway = gateway_of() if gateway_of is not None else gateway_ref(api, settings)
    manifest = build_kernel_manifest(plan, template, gateway)
    pod_template = manifest["spec"]["template"]
    env = _literal_env(pod_template)
    if plan.namespace != pool_namespace:
        return Claimed(None, f"namespace {plan.namespace} is not the pool's ({pool_namespace})")
    selector = (
        f"{warm_pool.LABEL_POOL}={label_value(inp.kernelspec_name)},"
        f"{warm_pool.LABEL_POOL_STATE}={warm_pool.POOL_STATE_POOLED}"
    )
    items = (
        api.request(
            "GET", kernels_path(plan.namespace), query={"labelSelector": selector}, timeout=5.0
        ).get("items")
        or []
    )
    ready = [
        o
        for o in items
        if (o.get("status") or {}).get("phase") == crds.PHASE_POOLED
        and (o.get("status") or {}).get("podIP")
        and not (o.get("metadata") or {}).get("deletionTimestamp")
    ]
    key = warm_pool.pool_key(pod_template)
    matching = [
        o
        for o in ready
        if ((o.get("metadata") or {}).get("labels") or {}).get(warm_pool.LABEL_POOL_KEY) == key
    ]
    if not matching:
        if not ready:
            return Claimed(None, "pool empty", plan, env)
        theirs = warm_pool.pool_key_fields((ready[0].get("spec") or {}).get("template"))
        field = warm_pool.first_difference(warm_pool.pool_key_fields(pod_template), theirs)
        return Claimed(None, f"request differs from the pool in {field or 'its pod template'}")
    random.shuffle(matching)  # replicas claiming at once mostly pick different kernels
    for obj in matching:
        meta = obj.get("metadata") or {}
        try:
            claimed = api.request(
                "PATCH",
                kernels_path(plan.namespace, str(meta.get("name"))),
                body=claim_patch(obj, manifest, plan, gateway.uid, replica),
                content_type="application/merge-patch+json",
                timeout=5.0,
            )
        except ApiError as err:
            if err.not_found or err.conflict:
                continue  # somebody else claimed (or deleted) it first: try the next one
            raise
        return Claimed(claimed, "claimed", plan, env)
    return Claimed(None, "every waiting pool kernel was claimed by another start", plan, env)


def claim_request(
    claimed: Claimed, response_address: str, public_key: str, launch_token: str
) -> dict[str, Any]:
    """The claim sent to the pool kernel (signed by :func:`send_claim`)."""
    env = dict(claimed.env)
    return {
        "claim": {
            "kernel_id": claimed.plan.kernel_id if claimed.plan else "",
            "response_address": response_address,
            "public_key": public_key,
            "launch_token": launch_token,
            "env": env,
            "cwd": env.get("KERNEL_WORKING_DIR") or None,
        }
    }


def claim_port(obj: Obj) -> int:
    env = dict(_literal_env((obj.get("spec") or {}).get("template") or {}))
    try:
        return int(env.get(launcher_env.KERNEL_CLAIM_PORT) or warm_pool.DEFAULT_CLAIM_PORT)
    except ValueError:
        return warm_pool.DEFAULT_CLAIM_PORT


def send_claim(api: KubeApi, obj: Obj, request: dict[str, Any]) -> None:
    """Sign ``request`` with the pool kernel's claim key and send it (blocking)."""
    meta = obj.get("metadata") or {}
    secret = read_kernel_secret(api, str(meta.get("namespace")), str(meta.get("name"))) or {}
    key = secret.get(warm_pool.SECRET_CLAIM_KEY)
    if not key:
        raise OSError("the pool kernel's Secret holds no claim key")
    address = (str((obj.get("status") or {}).get("podIP")), claim_port(obj))
    data = json.dumps(comm_auth.sign(request, key)).encode("utf-8")
    # Pooled means the pod runs; its launcher may still be starting (Python, imports) for a
    # moment before it listens: a refused connection is retried briefly.
    deadline, delay = time.monotonic() + CLAIM_SEND_TIMEOUT, 0.02
    while True:
        try:
            sock = socket.create_connection(address, timeout=CLAIM_SEND_TIMEOUT)
            break
        except ConnectionRefusedError:
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    with sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)


async def start_warm(proxy: KubeflowProcessProxy, inp: LaunchInput, launch_token: str) -> bool:
    """Start the kernel from the pool; ``False``: start it cold (the reason was logged)."""
    config = proxy.proxy_config.get(warm_pool.CONFIG_WARM_POOL)
    if not isinstance(config, dict):
        return False
    api, started = proxy.api, time.perf_counter()
    pool_namespace = str(config.get("namespace") or proxy.settings.default_kernel_namespace)
    try:
        runtime = proxy.runtime
        claimed = await api.run(
            claim_kernel,
            api,
            proxy.settings,
            inp,
            pool_namespace,
            runtime.replica,
            runtime.gateway_ref,
        )
    except ApiError as err:
        claimed = Claimed(None, f"Kubernetes API: {err.reason}")
    if claimed.obj is None or claimed.plan is None:
        log.info(
            "Kernel %s of %s starts cold: %s", inp.kernel_id, inp.kernelspec_name, claimed.reason
        )
        _count(inp.kernelspec_name, "cold", claimed.reason.split(" in ")[0])
        return False
    obj, meta = claimed.obj, claimed.obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    status = obj.get("status") or {}
    proxy.kernel_resource_name, proxy.kernel_namespace = name, namespace
    proxy.kernel_resource_uid = str(meta.get("uid") or "")
    proxy.container_name = name
    proxy.assigned_ip = str(status.get("podIP"))
    proxy.assigned_host = str(status.get("podName") or name)
    proxy.assigned_node_ip = str(status.get("hostIP") or "") or None
    watch = proxy.watch
    watch.ensure_namespace(namespace)
    request = claim_request(
        claimed,
        proxy.response_manager.response_address,
        proxy.response_manager.public_key,
        launch_token,
    )
    try:
        await api.run(send_claim, api, obj, request)
    except (OSError, ApiError) as err:
        # No user code ran there: the claimed kernel goes, the request starts cold.
        log.warning("Claim of %s/%s not delivered (%s): starting cold", namespace, name, err)
        _count(inp.kernelspec_name, "cold", "claim not delivered")
        await api.run(delete_kernel, api, namespace, name)
        proxy.kernel_resource_name = proxy.kernel_namespace = None
        proxy.assigned_host, proxy.assigned_ip = "", None
        return False
    log.info(
        "KubeflowProcessProxy: claimed pool kernel %s/%s for kernel %s in %.1f ms",
        namespace,
        name,
        inp.kernel_id,
        (time.perf_counter() - started) * 1000,
    )
    _count(inp.kernelspec_name, "warm", "claimed")
    await proxy.confirm_remote_startup(watch)
    # The kernel reported back: the claim is complete, the operator must not end it. Off the
    # start's path; the operator waits its claim timeout (60 s) before looking.
    task = asyncio.ensure_future(api.run(complete_claim, api, obj, claimed.plan.kernel_id))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)
    for _ in range(40):  # poll() reads the watch: let it see the claimed kernel first
        if watch.get(namespace, name) is not None:
            break
        await asyncio.sleep(0.025)
    return True


_PENDING: set[asyncio.Future[Any]] = set()


def complete_claim(api: KubeApi, obj: Obj, kernel_id: str) -> None:
    """Mark the claim complete on the JupyterKernel (annotation ``…/claim``, ``completed``)."""
    meta = obj.get("metadata") or {}
    try:
        claim = json.loads((meta.get("annotations") or {}).get(warm_pool.ANNOTATION_CLAIM) or "{}")
    except ValueError:
        claim = {}
    claim.update({"kernelId": kernel_id, "completed": time.time()})
    patch = {"metadata": {"annotations": {warm_pool.ANNOTATION_CLAIM: json.dumps(claim)}}}
    try:
        api.request(
            "PATCH",
            kernels_path(str(meta.get("namespace")), str(meta.get("name"))),
            body=patch,
            content_type="application/merge-patch+json",
            timeout=5.0,
        )
    except ApiError as err:
        log.warning("Could not mark the claim of %s complete: %s", meta.get("name"), err)
