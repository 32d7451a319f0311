"""The pure parts of direct mode and its response address: no cluster, no jupyter_server."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin import response_listener
from elastic_jupyter.gateway_plugin.kernel_manifest import build_kernel_manifest
from elastic_jupyter.gateway_plugin.kernel_resource import GatewayRef, LaunchInput, plan_kernel
from elastic_jupyter.gateway_plugin.launcher_cli import launcher_args_start, parse_launcher_argv
from elastic_jupyter.gateway_plugin.response_listener import (
    PayloadError,
    ResponseListener,
    decode_payload,
)
from elastic_jupyter.gateway_plugin.settings import SettingsError
from elastic_jupyter.kernel_launcher import payload as launcher_payload
from elastic_jupyter.provisioner import sessions
from elastic_jupyter.provisioner.launch_args import client_env, format_argv
from elastic_jupyter.provisioner.settings import DirectSettings, default_notebook_name

KID = "3f0c9a52-8a1e-4c4e-9f57-0f6f0c1b2d3e"
SEED_ARGV = [
    "kubeflow-launcher",
    "--RemoteProcessProxy.kernel-id",
    "{kernel_id}",
    "--RemoteProcessProxy.port-range",
    "{port_range}",
    "--RemoteProcessProxy.response-address",
    "{response_address}",
    "--kernel-template-name",
    "tpl",
]


# --- argv and env -----------------------------------------------------------------------------


def test_seed_argv_is_filled_and_parsed_by_the_gateway_parser() -> None:
    argv = format_argv(
        SEED_ARGV,
        {"kernel_id": KID, "port_range": "40000..41999", "response_address": "10.0.0.5:8877"},
    )
    start = launcher_args_start(argv)
    assert start == 1
    args = parse_launcher_argv(argv[start:])
    assert (args.kernel_id, args.port_range, args.response_address, args.template_name) == (
        KID,
        "40000..41999",
        "10.0.0.5:8877",
        "tpl",
    )


def test_module_form_and_kernel_argv_keep_unknown_placeholders() -> None:
    argv = [
        "python",
        "-m",
        "elastic_jupyter.gateway_plugin.launcher_cli",
        "--kernel-id",
        "{kernel_id}",
    ]
    assert launcher_args_start(format_argv(argv, {"kernel_id": KID})) == 3
    own = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}", "{unknown}"]
    assert format_argv(own, {"kernel_id": KID}) == own  # the pod fills {connection_file}


def test_client_env_is_the_servers_kernel_variables_not_the_kernelspecs() -> None:
    env = {
        "KERNEL_USERNAME": "ana",
        "KERNEL_IMAGE": "mine:1",
        "KERNEL_FROM_SPEC": "x",
        "HOME": "/root",
        "JPY_SESSION_NAME": "a.ipynb",
    }
    assert client_env(env, {"KERNEL_FROM_SPEC": "x"}) == {
        "KERNEL_USERNAME": "ana",
        "KERNEL_IMAGE": "mine:1",
    }
    # a kernelspec value the server's env overrides is the server's choice: judged
    assert client_env({"KERNEL_FROM_SPEC": "y"}, {"KERNEL_FROM_SPEC": "x"}) == {
        "KERNEL_FROM_SPEC": "y"
    }


# --- settings and ownership -------------------------------------------------------------------


def test_by_hand_settings_default_to_the_kubeconfig_context() -> None:
    settings = DirectSettings.from_env({}, context_namespace="team-a")
    assert settings.notebook.namespace == "team-a"
    assert settings.notebook.uid is None
    assert settings.notebook.kind == crds.JUPYTER_NOTEBOOK.kind
    assert settings.notebook.name == default_notebook_name()
    assert settings.policy.default_kernel_namespace == "team-a"
    assert settings.response_port == 8877
    assert (settings.response_ip, settings.bind_ip) == ("", "")
    assert DirectSettings.from_env({}).notebook.namespace == "default"


def test_operator_settings_and_pod_addresses() -> None:
    env = {
        "EJ_NOTEBOOK_NAME": "nb",
        "EJ_NOTEBOOK_NAMESPACE": "team-a",
        "EJ_NOTEBOOK_UID": "uid-1",
        "EJ_KERNEL_NAMESPACE": "kernels",
        "EJ_RESPONSE_PORT": "9000",
        "POD_IP": "10.1.2.3",
        "EJ_ALLOWED_KERNEL_IMAGES": "team/*",
    }
    settings = DirectSettings.from_env(env, context_namespace="ignored")
    assert settings.notebook == GatewayRef("nb", "team-a", "uid-1", crds.JUPYTER_NOTEBOOK.kind)
    assert settings.policy.default_kernel_namespace == "kernels"
    assert settings.policy.allowed_images == ("team/*",)
    assert (settings.response_port, settings.response_ip, settings.bind_ip) == (
        9000,
        "10.1.2.3",
        "0.0.0.0",
    )
    assert settings.kernel_selector == (
        f"{crds.LABEL_NOTEBOOK}=nb,{crds.LABEL_MANAGED_BY}={crds.MANAGED_BY}"
    )


@pytest.mark.parametrize(
    ("env", "word"),
    [
        ({"EJ_RESPONSE_PORT": "http"}, "EJ_RESPONSE_PORT"),
        ({"EJ_NOTEBOOK_NAME": "Not_A_Label"}, "EG_NAME"),
        ({"EJ_KERNEL_UID_RANGE": "x"}, "EJ_KERNEL_UID_RANGE"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], word: str) -> None:
    with pytest.raises(SettingsError, match=word):
        DirectSettings.from_env(env)


def test_owns_only_its_own_namespace_and_uid() -> None:
    settings = DirectSettings.from_env(
        {"EJ_NOTEBOOK_NAME": "nb", "EJ_NOTEBOOK_NAMESPACE": "a", "EJ_NOTEBOOK_UID": "u1"}
    )
    ns, uid = crds.ANNOTATION_NOTEBOOK_NAMESPACE, crds.ANNOTATION_NOTEBOOK_UID
    assert settings.owns({ns: "a", uid: "u1"})
    assert settings.owns({ns: "a", uid: ""})  # started by hand before the JupyterNotebook existed
    assert not settings.owns({ns: "b", uid: "u1"})  # same name, other namespace
    assert not settings.owns({ns: "a", uid: "u2"})  # a deleted and recreated notebook's kernels
    assert not settings.owns({})


# --- the JupyterKernel of a notebook owner ----------------------------------------------------


def _plan(namespace: str = "a") -> Any:
    settings = DirectSettings.from_env(
        {"EJ_NOTEBOOK_NAME": "nb", "EJ_NOTEBOOK_NAMESPACE": "a", "EJ_KERNEL_NAMESPACE": namespace}
    ).policy
    inp = LaunchInput(
        kernel_id=KID,
        kernelspec_name="python-direct",
        response_address="10.0.0.5:8877",
        public_key="KEY",
        port_range="0..0",
        env={"KERNEL_USERNAME": "ana"},
        client_env={"KERNEL_USERNAME": "ana"},
    )
    return plan_kernel(inp, settings)


def test_direct_kernel_carries_the_notebook_not_a_gateway() -> None:
    owner = GatewayRef("nb", "a", "uid-1", crds.JUPYTER_NOTEBOOK.kind)
    manifest = build_kernel_manifest(_plan(), None, owner)
    meta = manifest["metadata"]
    pod_labels = manifest["spec"]["template"]["metadata"]["labels"]
    for labels in (meta["labels"], pod_labels):
        assert labels[crds.LABEL_NOTEBOOK] == "nb"
        assert crds.LABEL_GATEWAY not in labels
        assert crds.LABEL_GATEWAY_UID not in labels
        assert labels[crds.LABEL_KERNEL_ID] == KID
    assert meta["annotations"][crds.ANNOTATION_NOTEBOOK_NAMESPACE] == "a"
    assert meta["annotations"][crds.ANNOTATION_NOTEBOOK_UID] == "uid-1"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": crds.API_VERSION,
            "kind": crds.JUPYTER_NOTEBOOK.kind,
            "name": "nb",
            "uid": "uid-1",
            "controller": False,
            "blockOwnerDeletion": False,
        }
    ]
    assert "gateway" not in manifest["spec"]


def test_direct_kernel_elsewhere_or_by_hand_has_no_owner_reference() -> None:
    elsewhere = build_kernel_manifest(
        _plan("kernels"), None, GatewayRef("nb", "a", "uid-1", crds.JUPYTER_NOTEBOOK.kind)
    )
    assert "ownerReferences" not in elsewhere["metadata"]
    assert elsewhere["metadata"]["annotations"][crds.ANNOTATION_NOTEBOOK_NAMESPACE] == "a"
    by_hand = build_kernel_manifest(_plan(), None, GatewayRef("nb", "a", None, "JupyterNotebook"))
    assert "ownerReferences" not in by_hand["metadata"]
    assert by_hand["metadata"]["annotations"][crds.ANNOTATION_NOTEBOOK_UID] == ""


def test_gateway_kernels_are_unchanged() -> None:
    manifest = build_kernel_manifest(_plan(), None, GatewayRef("nb", "a", "g-1"))
    assert manifest["metadata"]["labels"][crds.LABEL_GATEWAY] == "nb"
    assert manifest["metadata"]["labels"][crds.LABEL_GATEWAY_UID] == "g-1"
    assert crds.LABEL_NOTEBOOK not in manifest["metadata"]["labels"]
    assert manifest["spec"]["gateway"] == {"name": "nb", "namespace": "a"}


def test_notebook_session_annotation_round_trip() -> None:
    model = {"id": "s1", "path": "a.ipynb", "name": "a.ipynb", "type": "notebook", "kernel": {}}
    text = sessions.notebook_session_annotation(model)
    obj = {"metadata": {"annotations": {crds.ANNOTATION_NOTEBOOK_SESSION: text}}}
    assert sessions.notebook_session(obj) == {
        "id": "s1",
        "path": "a.ipynb",
        "name": "a.ipynb",
        "type": "notebook",
    }
    broken = {"metadata": {"annotations": {crds.ANNOTATION_NOTEBOOK_SESSION: "{"}}}
    assert sessions.notebook_session(broken) is None


# --- payload version 1 and admission ----------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> Any:
    return response_listener.new_private_key(1024)


def _payload(private: Any, **info: Any) -> bytes:
    public = launcher_payload.load_public_key(response_listener.public_key_text(private))
    return launcher_payload.encode_payload(info, public)


def test_launcher_payload_decodes(key: Any) -> None:
    info = {"kernel_id": KID, "shell_port": 1, "key": "k", "launch_token": "t"}
    assert decode_payload(_payload(key, **info), key) == info


def test_payload_for_another_key_or_malformed_is_refused(key: Any) -> None:
    other = response_listener.new_private_key(1024)
    with pytest.raises(PayloadError, match="key"):
        decode_payload(_payload(other, kernel_id=KID), key)
    with pytest.raises(PayloadError, match="base64"):
        decode_payload(b"not base64!", key)
    legacy = base64.b64encode(json.dumps({"version": "1"}).encode())
    with pytest.raises(PayloadError, match="version"):
        decode_payload(legacy, key)
    with pytest.raises(PayloadError, match="kernel_id"):
        decode_payload(_payload(key, shell_port=1), key)


def _send(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        while sock.recv(1024):
            pass


async def _answers(key: Any) -> None:
    listener = ResponseListener("127.0.0.1", 0, "127.0.0.1")
    listener.private_key, listener.public_key = key, response_listener.public_key_text(key)
    await listener.start()
    loop = asyncio.get_running_loop()
    try:
        answer = listener.expect(KID, "right")

        async def send(**info: Any) -> None:
            await loop.run_in_executor(None, _send, listener.port, _payload(key, **info))
            await asyncio.sleep(0.2)

        await send(kernel_id=KID, launch_token="wrong")  # a neighbour who knows the id
        await send(kernel_id=KID)  # no token
        await send(kernel_id="someone-else", launch_token="right")  # nobody waits
        assert not answer.done()
        await send(kernel_id=KID, launch_token="right", shell_port=7)
        assert answer.done()
        assert answer.result() == {"kernel_id": KID, "shell_port": 7}  # token removed
        # the next launch of the id waits afresh; a replay of the old answer is refused
        again = listener.expect(KID, "next")
        await send(kernel_id=KID, launch_token="right", shell_port=7)
        assert not again.done()
        listener.forget(KID)
        assert again.cancelled()
    finally:
        await listener.stop()


def test_listener_admits_each_launch_once_with_its_token(key: Any) -> None:
    asyncio.run(_answers(key))


async def _held_open(key: Any) -> None:
    listener = ResponseListener("127.0.0.1", 0, "127.0.0.1")
    listener.private_key, listener.public_key = key, response_listener.public_key_text(key)
    listener.readers.limit = 4
    await listener.start()
    loop = asyncio.get_running_loop()
    held = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(10)]
    try:
        await asyncio.sleep(0.3)
        assert len(listener.readers) <= 4  # the oldest were dropped
        answer = listener.expect(KID, "t")
        data = _payload(key, kernel_id=KID, launch_token="t")
        await loop.run_in_executor(None, _send, listener.port, data)
        await asyncio.wait_for(answer, 5)
    finally:
        for sock in held:
            sock.close()
        await listener.stop()


def test_held_open_connections_cannot_lock_kernels_out(key: Any) -> None:
    asyncio.run(_held_open(key))


def test_oversized_payload_is_dropped() -> None:
    async def run() -> None:
        server, client = socket.socketpair()
        server.setblocking(False)
        client.sendall(b"x" * (response_listener.MAX_PAYLOAD_BYTES + 10))
        client.shutdown(socket.SHUT_WR)
        seen: list[bytes] = []
        await response_listener.serve_connection(server, "peer", seen.append)
        client.close()
        assert seen == []

    asyncio.run(run())


def test_tenant_rules_judge_the_servers_kernel_variables() -> None:
    from elastic_jupyter.gateway_plugin.kernel_resource import KernelRequestError

    settings = DirectSettings.from_env({"EJ_NOTEBOOK_NAMESPACE": "a"}).policy
    env = {"KERNEL_USERNAME": "ana", "KERNEL_IMAGE": "evil:1", "KERNEL_UID": "0", "HOME": "/"}

    def plan(**changes: str) -> Any:
        launch_env = {**env, **changes}
        inp = LaunchInput(
            kernel_id=KID,
            kernelspec_name="python-direct",
            response_address="10.0.0.5:8877",
            public_key="KEY",
            port_range="0..0",
            env=launch_env,
            client_env=client_env(launch_env, {}),
            image_name="kernel-py:1",
        )
        return plan_kernel(inp, settings)

    with pytest.raises(KernelRequestError, match="KERNEL_IMAGE='evil:1' is not allowed"):
        plan()
    with pytest.raises(KernelRequestError, match="KERNEL_UID=0 is not allowed"):
        plan(KERNEL_IMAGE="kernel-py:1")
    ok = plan(KERNEL_IMAGE="kernel-py:1", KERNEL_UID="1500")
    assert ok.run_as_user == 1500 and ok.image == "kernel-py:1"
    assert "HOME" not in dict(ok.container_env)  # only KERNEL_* reach the pod
