"""The orphan sweep's verdicts per availability mode, and the boot hook's guard."""

from __future__ import annotations

import time
import weakref
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from elastic_jupyter.gateway_plugin.gateway_boot import OrphanSweeper
from elastic_jupyter.gateway_plugin.kernel_watch import KernelWatch
from elastic_jupyter.gateway_plugin.kernelspec_sync import (
    KubeflowKernelSpecManager,
    boot_gateway_services,
)
from elastic_jupyter.gateway_plugin.kube import ApiError, KubeApi
from elastic_jupyter.gateway_plugin.settings import GatewaySettings

from .test_kernel_watch import FakeApi, kernel

SETTINGS = replace(GatewaySettings(gateway_name="gw", gateway_namespace="ns"), orphan_grace=0.0)
NOW = 1_800_000_000.0


class Deletes(KubeApi):
    """Records the sweep's DELETE requests; ``gone`` names answer 404."""

    def __init__(self, gone: tuple[str, ...] = ()) -> None:
        super().__init__("http://127.0.0.1:1")
        self.deleted: list[str] = []
        self.gone = gone

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if method == "GET" and "/jupytergateways/" in path:  # ownership by uid: none here
            raise ApiError(404, "NotFound", path)
        assert method == "DELETE"
        name = path.rsplit("/", 1)[1]
        if name in self.gone:
            raise ApiError(404, "NotFound", name)
        self.deleted.append(name)
        return {}


def created(name: str, age: float) -> dict[str, Any]:
    obj = kernel(name, "1")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - age))
    obj["metadata"]["creationTimestamp"] = stamp
    return obj


@pytest.fixture
def watch() -> Any:
    """A synced watch over JupyterKernels a, b, c (kernel ids id-a, id-b, id-c) of ``ns``."""
    items = [created("a", 10.0), created("b", 10.0), created("c", 3600.0)]
    api = FakeApi(lists=[{"metadata": {"resourceVersion": "1"}, "items": items}], streams=[])
    kernel_watch = KernelWatch(api, "ns", "sel")
    kernel_watch.start()
    assert kernel_watch.wait_synced(10)
    yield kernel_watch
    kernel_watch.stop()


def gateway_app(
    mode: str | None = None,
    running: tuple[str, ...] = (),
    sessions: Any = None,
    ready: bool = True,
) -> SimpleNamespace:
    return SimpleNamespace(
        http_server=object() if ready else None,
        availability_mode=mode,
        kernel_manager=set(running),
        kernel_session_manager=sessions or SimpleNamespace(enable_persistence=False, _sessions={}),
    )


class Proxy:
    def __init__(self, kernel_id: str) -> None:
        self.kernel_id = kernel_id


def sweeper(
    watch: KernelWatch, app: Any, api: KubeApi, live: tuple[Proxy, ...] = (), **changes: Any
) -> OrphanSweeper:
    live_set: weakref.WeakSet[Any] = weakref.WeakSet(live)
    return OrphanSweeper(replace(SETTINGS, **changes), watch, api, lambda: app, live=live_set)


def test_nothing_is_judged_before_the_gateway_finished_starting(watch: KernelWatch) -> None:
    api = Deletes()
    assert sweeper(watch, None, api).sweep_once() == []
    assert sweeper(watch, gateway_app(ready=False), api).sweep_once() == []
    assert api.deleted == []


def test_without_persistence_unknown_kernels_go_after_the_grace(watch: KernelWatch) -> None:
    api = Deletes()
    launching = Proxy("id-b")  # a launch in progress: its proxy exists before its object
    sweep = sweeper(watch, gateway_app(running=("id-a",)), api, live=(launching,))
    assert [s.name for s in sweep.sweep_once()] == ["c"]
    assert api.deleted == ["c"]

    later = sweeper(watch, gateway_app(), Deletes(), orphan_grace=3600.0)
    assert later.sweep_once() == []  # seen unknown just now: the grace has not passed


def test_standalone_sessions_protect_their_kernels(watch: KernelWatch) -> None:
    sessions = SimpleNamespace(enable_persistence=True, _sessions={"id-a": {}, "id-c": {}})
    api = Deletes(gone=("b",))  # already deleted by someone else: 404 is fine
    sweep = sweeper(watch, gateway_app("standalone", sessions=sessions), api)
    assert [s.name for s in sweep.sweep_once()] == ["b"]  # the only kernel without a session
    assert api.deleted == []


def test_replication_needs_an_empty_store_and_an_old_object(
    watch: KernelWatch, tmp_path: Path
) -> None:
    store = tmp_path / "kernel_sessions"
    store.mkdir()
    (store / "id-a.json").write_text("{}")  # another replica's session
    sessions = SimpleNamespace(
        enable_persistence=True, _sessions={}, _get_sessions_loc=lambda: str(store)
    )
    api = Deletes()
    sweep = sweeper(watch, gateway_app("replication", sessions=sessions), api)
    # a: in the shared store; b: 10 s old, maybe launching on another replica (timeout 30 s);
    # c: an hour old and in no store
    assert [s.name for s in sweep.sweep_once(now=NOW)] == ["c"]
    assert api.deleted == ["c"]


def test_replication_with_a_store_that_cannot_answer_deletes_nothing(
    watch: KernelWatch,
) -> None:
    def load_session(kernel_id: str) -> None:
        raise OSError("webhook down")

    sessions = SimpleNamespace(enable_persistence=True, _sessions={}, load_session=load_session)
    api = Deletes()
    sweep = sweeper(watch, gateway_app("replication", sessions=sessions), api)
    assert sweep.sweep_once(now=NOW) == []

    found: dict[str, Any] = {}
    webhook = SimpleNamespace(
        enable_persistence=True,
        _sessions=found,
        load_session=lambda kid: found.update({kid: {}} if kid == "id-c" else {}),
    )
    sweep = sweeper(watch, gateway_app("replication", sessions=webhook), api)
    assert sweep.sweep_once(now=NOW) == []
    assert api.deleted == []


def test_the_boot_hook_ignores_other_applications() -> None:
    assert boot_gateway_services(None) is False
    assert boot_gateway_services(SimpleNamespace(name="jupyter-kernelspec")) is False
    manager = KubeflowKernelSpecManager()  # no EG parent: an ordinary KernelSpecManager
    assert isinstance(manager.find_kernel_specs(), dict)
