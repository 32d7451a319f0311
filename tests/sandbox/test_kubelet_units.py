"""Pure parts of the sandbox kubelet: env resolution, volumes, mount paths, image map, IPs."""

from __future__ import annotations

import base64
import ipaddress
from fractions import Fraction
from pathlib import Path

import pytest

from elastic_jupyter.sandbox.imagemap import ImageMap, image_candidates, pull_error_message
from elastic_jupyter.sandbox.podenv import (
    ConfigError,
    PodContext,
    container_env,
    expand,
    plan_volume,
    referenced_objects,
    rewrite_path,
)
from elastic_jupyter.sandbox.podips import POD_CIDR, PodIPAllocator
from elastic_jupyter.sandbox.quantity import parse_quantity, pod_requests


def _pod() -> dict[str, object]:
    return {
        "metadata": {
            "name": "p1",
            "namespace": "ns1",
            "uid": "u-1",
            "labels": {"app": "x"},
            "annotations": {"note": "hello"},
        },
        "spec": {"nodeName": "n1", "serviceAccountName": "sa1", "containers": [{"name": "c"}]},
    }


def _ctx(**kw: object) -> PodContext:
    cms = {"cfg": {"data": {"a": "1", "b": "2"}}}
    secrets = {"sec": {"data": {"token": base64.b64encode(b"s3cret").decode()}}}
    return PodContext(
        pod=_pod(),
        node_name="n1",
        host_ip="127.0.0.1",
        pod_ip="127.64.0.9",
        node_allocatable={"cpu": Fraction(8), "memory": Fraction(2**30)},
        configmaps=kw.get("configmaps", cms),  # type: ignore[arg-type]
        secrets=kw.get("secrets", secrets),  # type: ignore[arg-type]
    )


def test_expand_follows_kubernetes_rules() -> None:
    env = {"A": "x", "B": "y"}
    assert expand("$(A)-$(B)", env) == "x-y"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(A)", env) == "$(A)"
    assert expand("$A", env) == "$A"


def test_container_env_resolves_every_source() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CM_"}],
        "env": [
            {"name": "PLAIN", "value": "v"},
            {"name": "REF", "value": "$(PLAIN)-$(CM_a)"},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "LBL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {
                "name": "ANN",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}},
            },
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "b"}}},
            {"name": "TOK", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
        ],
    }
    env = dict(container_env(_ctx(), container))
    assert env["REF"] == "v-1"
    assert env["NAME"] == "p1" and env["NS"] == "ns1" and env["IP"] == "127.64.0.9"
    assert env["LBL"] == "x" and env["ANN"] == "hello" and env["SA"] == "sa1"
    assert env["CPU"] == "8"
    assert env["B"] == "2" and env["TOK"] == "s3cret" and env["CM_b"] == "2"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ({"configMapKeyRef": {"name": "nope", "key": "a"}}, 'configmap "nope" not found'),
        (
            {"configMapKeyRef": {"name": "cfg", "key": "zz"}},
            "couldn't find key zz in ConfigMap ns1/cfg",
        ),
        ({"secretKeyRef": {"name": "nope", "key": "a"}}, 'secret "nope" not found'),
    ],
)
def test_missing_references_give_kubelet_messages(ref: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        container_env(_ctx(), {"env": [{"name": "X", "valueFrom": ref}]})
    assert err.value.reason == "CreateContainerConfigError"
    assert err.value.message == message


def test_optional_references_are_skipped() -> None:
    ref = {"configMapKeyRef": {"name": "nope", "key": "a", "optional": True}}
    assert container_env(_ctx(), {"env": [{"name": "X", "valueFrom": ref}]}) == []


def test_volume_plans() -> None:
    ctx = _ctx()
    cm = plan_volume(
        ctx, {"name": "v", "configMap": {"name": "cfg", "items": [{"key": "a", "path": "d/a.txt"}]}}
    )
    assert cm.files == {"d/a.txt": (b"1", 0o644)}
    assert cm.sources == (("configmap", "cfg"),)
    sec = plan_volume(ctx, {"name": "s", "secret": {"secretName": "sec", "defaultMode": 0o400}})
    assert sec.files == {"token": (b"s3cret", 0o400)}
    down = plan_volume(
        ctx,
        {
            "name": "d",
            "downwardAPI": {
                "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
            },
        },
    )
    assert down.files["labels"][0] == b'app="x"'
    assert plan_volume(ctx, {"name": "e", "emptyDir": {}}).kind == "emptyDir"
    with pytest.raises(ConfigError) as err:
        plan_volume(ctx, {"name": "m", "configMap": {"name": "missing"}})
    assert err.value.reason == "ContainerCreating"


def test_referenced_objects() -> None:
    pod = _pod()
    pod["spec"] = {
        "containers": [
            {"env": [{"name": "a", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}}]}
        ],
        "volumes": [{"name": "v", "configMap": {"name": "c1"}}],
    }
    assert referenced_objects(pod) == ({"c1"}, {"s1"})


def test_rewrite_path_maps_mounts() -> None:
    mounts = {"/etc/cfg": "/state/p/volumes/cfg", "/usr/local/share/jupyter/kernels/k": "/state/k"}
    assert rewrite_path("/etc/cfg/app.yaml", mounts) == "/state/p/volumes/cfg/app.yaml"
    assert rewrite_path("--config=/etc/cfg/a", mounts) == "--config=/state/p/volumes/cfg/a"
    assert rewrite_path("/usr/local/share/jupyter/kernels/k", mounts) == "/state/k"
    assert rewrite_path("/etc/cfgx", mounts) == "/etc/cfgx"
    assert rewrite_path("http://x/etc/cfg", mounts) == "http://x/etc/cfg"
    assert rewrite_path("cat '/etc/cfg/a' /etc/cfg", mounts) == (
        "cat '/state/p/volumes/cfg/a' /state/p/volumes/cfg"
    )


def test_image_map_defaults(tmp_path: Path) -> None:
    images = ImageMap.default(kernel_venv=tmp_path / "kv", control_prefix=tmp_path / "cv")
    kernel = images.resolve("docker.io/elastic-jupyter/kernel-py:dev")
    assert kernel is not None and kernel.command == ("kubeflow-kernel-launcher",)
    assert kernel.path == (str(tmp_path / "kv" / "bin"),)
    notebook = images.resolve("jupyter/base-notebook:latest")
    assert notebook is not None and notebook.command == ("jupyter", "server")
    gateway = images.resolve("elastic-jupyter/gateway:dev")
    assert gateway is not None and gateway.path == (str(tmp_path / "cv" / "bin"),)
    host = images.resolve("docker.io/library/python:3.11-slim")
    assert host is not None and host.path == ()
    assert images.resolve("quay.io/someone/unknown:1") is None
    assert "add one with --image-map" in pull_error_message("x")


def test_image_map_runs_the_operators_default_kernel_image(tmp_path: Path) -> None:
    """Kernels of the built-in kernelspec and of image-less kernelspecs run the operator's
    default kernel image: the sandbox runs it as a kernel (the kernel venv, the launcher)."""
    from elastic_jupyter.operator import settings

    images = ImageMap.default(kernel_venv=tmp_path / "kv", control_prefix=tmp_path / "cv")
    rule = images.resolve(settings.DEFAULT_KERNEL_IMAGE)
    assert rule is not None and rule.name == "default:kernel"


def test_image_map_file_rules_come_first(tmp_path: Path) -> None:
    rules = tmp_path / "images.yaml"
    rules.write_text(
        "images:\n"
        "  - match: 'registry.example/mine*'\n"
        "    use: kernel\n"
        "    env: {A: b}\n"
        "  - match: [busybox*]\n"
        "    command: [sh]\n",
        encoding="utf-8",
    )
    images = ImageMap.default(kernel_venv=tmp_path).with_file(rules)
    mine = images.resolve("registry.example/mine:2")
    assert mine is not None and mine.command == ("kubeflow-kernel-launcher",)
    assert mine.env["A"] == "b"
    busybox = images.resolve("busybox:1.36")
    assert busybox is not None and busybox.command == ("sh",)


def test_image_candidates() -> None:
    assert "elastic-jupyter/kernel-py" in image_candidates("ghcr.io/elastic-jupyter/kernel-py:1")
    assert "python" in image_candidates("docker.io/library/python:3.11")


def test_pod_ips_are_distinct_loopback_addresses() -> None:
    alloc = PodIPAllocator(seed=1)
    ips = {alloc.allocate() for _ in range(600)}
    assert len(ips) == 600
    for ip in ips:
        address = ipaddress.ip_address(ip)
        assert address in POD_CIDR and address.is_loopback
        assert not ip.endswith((".0", ".255"))
    released = next(iter(ips))
    alloc.release(released)
    assert released not in alloc.in_use()


def test_quantities_and_requests() -> None:
    assert parse_quantity("500m") == Fraction(1, 2)
    assert parse_quantity("32Gi") == 32 * 2**30
    assert parse_quantity("1e3") == 1000
    with pytest.raises(ValueError):
        parse_quantity("lots")
    pod = {
        "spec": {
            "containers": [
                {"resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"cpu": "250m"}}},
                {"resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
            ]
        }
    }
    assert pod_requests(pod) == {"nvidia.com/gpu": 1, "cpu": Fraction(1, 2), "memory": 2**30}
