"""Tenants and the gateway's credentials: grants across namespaces, kernels of other notebooks.

Real stack on the sandbox: the operator (subprocess), ``examples/elastic`` (Enterprise Gateway
3.3 with our plugin, kernelspec, template, notebook ``alice``), a second notebook ``bob`` on the
same gateway, and a tenant namespace whose notebook names the gateway without a grant. The
attacker holds what a JupyterLab terminal shows: its notebook's ``JUPYTER_GATEWAY_AUTH_TOKEN``
(the Secret ``<notebook>-gateway``), and speaks the gateway's HTTP API as jupyter_server does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.examples import support
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

EXAMPLE = support.REPO / "examples" / "elastic"
GATEWAY = "jupytergateway-elastic"
ALICE = "jupyternotebook-elastic"
BOB = "bob"
KERNELSPEC = "python-kubernetes"


def _notebook(name: str, namespace: str, gateway_namespace: str | None = None) -> dict[str, Any]:
    gateway: dict[str, Any] = {"name": GATEWAY}
    if gateway_namespace:
        gateway["namespace"] = gateway_namespace
    return {
        "apiVersion": crds.API_VERSION,
        "kind": "JupyterNotebook",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"gateway": gateway},
    }


def _apply(sandbox: SandboxCluster, obj: dict[str, Any]) -> None:
    sandbox.kubectl("apply", "-f", "-", input=json.dumps(obj))


@pytest.fixture(scope="module")
def operator(sandbox: SandboxCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with support.running_operator(sandbox, "ejsec-*", log):
        yield log


@pytest.fixture(scope="module")
def shared(sandbox: SandboxCluster, operator: Path) -> Iterator[str]:
    """The example (gateway + notebook alice) and a second notebook bob on the same gateway."""
    namespace = support.new_namespace(sandbox, "ejsec")
    sandbox.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
    _apply(sandbox, _notebook(BOB, namespace))

    def running(plural: str, name: str) -> bool:
        obj = support.custom(sandbox, plural, namespace, name)
        return (obj.get("status") or {}).get("phase") == crds.PHASE_RUNNING

    try:
        wait_for(lambda: running("jupytergateways", GATEWAY), 60, 0.2, "gateway Running")
        wait_for(lambda: _has_token(sandbox, namespace, ALICE), 30, 0.2, "alice's token")
        wait_for(lambda: _has_token(sandbox, namespace, BOB), 30, 0.2, "bob's token")
    except AssertionError as error:
        raise AssertionError(f"{error}\noperator log:\n{support.tail(operator)}") from None
    yield namespace
    sandbox.delete_namespace(namespace)


def _has_token(sandbox: SandboxCluster, namespace: str, notebook: str) -> bool:
    try:
        _notebook_token(sandbox, namespace, notebook)
    except Exception:
        return False
    return True


def _notebook_token(sandbox: SandboxCluster, namespace: str, notebook: str) -> str:
    """What ``echo $JUPYTER_GATEWAY_AUTH_TOKEN`` shows in that notebook's terminal."""
    deployment = support.core(
        sandbox, f"/apis/apps/v1/namespaces/{namespace}/deployments/{notebook}"
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container.get("env") or []}
    ref = env["JUPYTER_GATEWAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
    return support.secret_value(sandbox, namespace, ref["name"], ref["key"])


def _admin_token(sandbox: SandboxCluster, namespace: str) -> str:
    return support.secret_value(sandbox, namespace, crds.gateway_auth_secret_name(GATEWAY))


#: Seconds an HTTP request may take on a loaded machine (not a timing assertion).
SLOW = 30.0


def _start_kernel(base: str, token: str) -> str:
    status, body = support.http_post(
        base + "/api/kernels", {"name": KERNELSPEC, "env": {}}, token, timeout=90
    )
    assert status == 201, body
    return str(body["id"])


async def _open_channels(base: str, kernel_id: str, token: str) -> int:
    """Open the kernel's websocket as jupyter_server does; the HTTP status of the upgrade."""
    from tornado import httpclient, websocket

    url = base.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
    headers = {"Authorization": f"token {token}"}
    request = httpclient.HTTPRequest(url, headers=headers, connect_timeout=10)
    try:
        conn = await websocket.websocket_connect(request)
    except httpclient.HTTPClientError as error:
        return error.code
    conn.close()
    return 101


def test_notebooks_get_their_own_token_not_the_gateways(
    sandbox: SandboxCluster, shared: str
) -> None:
    admin = _admin_token(sandbox, shared)
    alice, bob = _notebook_token(sandbox, shared, ALICE), _notebook_token(sandbox, shared, BOB)
    assert admin not in (alice, bob), "a notebook received the gateway's admin token"
    assert alice != bob
    base = support.service_url(sandbox, shared, GATEWAY)
    for token in (alice, bob, admin):  # each works for what notebooks need
        status, body = support.http_get(base + "/api/kernelspecs", token, timeout=SLOW)
        assert status == 200, body
    status, _ = support.http_get(base + "/api/kernelspecs", "forged-token", timeout=SLOW)
    assert status == 401


def test_second_notebook_cannot_see_or_touch_the_first_ones_kernel(
    sandbox: SandboxCluster, shared: str
) -> None:
    base = support.service_url(sandbox, shared, GATEWAY)
    alice, bob = _notebook_token(sandbox, shared, ALICE), _notebook_token(sandbox, shared, BOB)
    kernel = _start_kernel(base, alice)
    own = _start_kernel(base, bob)
    try:
        # Listing: each sees only its own; the admin sees both.
        status, listed = support.http_get(base + "/api/kernels", bob, timeout=SLOW)
        assert status == 200
        assert [k["id"] for k in listed] == [own]
        status, listed = support.http_get(base + "/api/kernels", alice, timeout=SLOW)
        assert [k["id"] for k in listed] == [kernel]
        status, listed = support.http_get(
            base + "/api/kernels", _admin_token(sandbox, shared), timeout=SLOW
        )
        assert {kernel, own} <= {k["id"] for k in listed}
        # Bob reaching for Alice's kernel: model, interrupt, restart, websocket, shutdown.
        status, body = support.http_get(f"{base}/api/kernels/{kernel}", bob, timeout=SLOW)
        assert status == 404 and "belongs to another client" in body
        for action in ("interrupt", "restart"):
            status, body = support.http_post(f"{base}/api/kernels/{kernel}/{action}", {}, bob)
            assert status == 404, (action, body)
        assert asyncio.run(_open_channels(base, kernel, bob)) == 404
        status, body = support.http_delete(f"{base}/api/kernels/{kernel}", bob, timeout=SLOW)
        assert status == 404, body
        status, body = support.http_get(base + "/api/sessions", bob, timeout=SLOW)
        assert status == 403 and "admin token" in body
        # Alice's kernel is untouched and hers to use.
        status, model = support.http_get(f"{base}/api/kernels/{kernel}", alice, timeout=SLOW)
        assert status == 200 and model["id"] == kernel
        assert asyncio.run(_open_channels(base, kernel, alice)) == 101
        kernels = support.core(
            sandbox,
            f"/apis/{crds.GROUP}/{crds.VERSION}/namespaces/{shared}/jupyterkernels",
        )["items"]
        owners = {
            k["metadata"]["labels"][crds.LABEL_KERNEL_ID]: k["metadata"]["annotations"][
                crds.ANNOTATION_CLIENT
            ]
            for k in kernels
        }
        assert owners[kernel] == f"{shared}.{ALICE}" and owners[own] == f"{shared}.{BOB}"
    finally:
        support.http_delete(f"{base}/api/kernels/{kernel}", alice, timeout=SLOW)
        support.http_delete(f"{base}/api/kernels/{own}", bob, timeout=SLOW)


def test_other_namespace_needs_the_gateways_grant(sandbox: SandboxCluster, shared: str) -> None:
    tenant = support.new_namespace(sandbox, "ejsec")
    try:
        _apply(sandbox, _notebook("mallory", tenant, gateway_namespace=shared))

        def reason() -> str:
            nb = support.custom(sandbox, "jupyternotebooks", tenant, "mallory")
            return str(support.condition(nb, crds.CONDITION_GATEWAY_RESOLVED).get("reason"))

        wait_for(lambda: reason() == crds.REASON_GATEWAY_NOT_GRANTED, 30, 0.2, "not granted")
        nb = support.custom(sandbox, "jupyternotebooks", tenant, "mallory")
        message = support.condition(nb, crds.CONDITION_GATEWAY_RESOLVED)["message"]
        assert "spec.notebookNamespaces" in message and tenant in message
        # No credential of that gateway anywhere in the tenant's namespace.
        admin = _admin_token(sandbox, shared)
        secrets = support.core(sandbox, f"/api/v1/namespaces/{tenant}/secrets")["items"]
        for secret in secrets:
            for key in secret.get("data") or {}:
                assert support.secret_value(sandbox, tenant, secret["metadata"]["name"], key) != (
                    admin
                ), f"the gateway's token was copied into {tenant}"
        assert not any(s["metadata"]["name"] == "mallory-gateway" for s in secrets)
        deployment = support.core(sandbox, f"/apis/apps/v1/namespaces/{tenant}/deployments/mallory")
        env = deployment["spec"]["template"]["spec"]["containers"][0].get("env") or []
        assert "JUPYTER_GATEWAY_AUTH_TOKEN" not in {e["name"] for e in env}

        # The gateway's owner grants the tenant: the notebook gets its own working token.
        patch = json.dumps({"spec": {"notebookNamespaces": [tenant]}})
        sandbox.kubectl("patch", "jgw", GATEWAY, "-n", shared, "--type=merge", "-p", patch)
        wait_for(lambda: reason() == "GatewayFound", 30, 0.2, "granted")
        wait_for(lambda: _has_token(sandbox, tenant, "mallory"), 30, 0.2, "token issued")
        token = _notebook_token(sandbox, tenant, "mallory")
        assert token != admin
        base = support.service_url(sandbox, shared, GATEWAY)
        wait_for(
            lambda: support.http_get(base + "/api/kernelspecs", token)[0] == 200, 30, 0.2, "200"
        )
        # Revoked again: the token stops working within seconds.
        patch = json.dumps({"spec": {"notebookNamespaces": None}})
        sandbox.kubectl("patch", "jgw", GATEWAY, "-n", shared, "--type=merge", "-p", patch)
        wait_for(lambda: reason() == crds.REASON_GATEWAY_NOT_GRANTED, 30, 0.2, "revoked")
        wait_for(
            lambda: support.http_get(base + "/api/kernelspecs", token)[0] == 401, 30, 0.2, "401"
        )
    finally:
        sandbox.delete_namespace(tenant)
