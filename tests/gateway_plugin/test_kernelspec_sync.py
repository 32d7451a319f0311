"""Kernelspec hot reload, gateway side: ConfigMaps → ``kernels/<name>/kernel.json`` → EG.

No cluster: the sync's watch callbacks are driven directly, and a real jupyter_client
KernelSpecManager (the class EG uses) reads the directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from traitlets.config import Configurable

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin import kernelspec_sync as ks
from elastic_jupyter.gateway_plugin.gateway_runtime import GatewayRuntime


def app_with(sync: ks.KernelSpecSync) -> Configurable:
    """A parent object (in EG: the application) whose runtime holds ``sync``."""
    app = Configurable()
    GatewayRuntime(kernelspec_sync=sync).attach(app)
    return app


def configmap(name: str, display: str = "X", label: str | None = None) -> dict[str, Any]:
    spec = {
        "argv": ["kubeflow-launcher"],
        "display_name": display,
        "language": "python",
        "metadata": {"process_proxy": {"class_name": crds.DEFAULT_PROCESS_PROXY_CLASS}},
    }
    owner = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL_SPEC.kind,
        "name": name,
        "uid": f"uid-{name}",
        "controller": True,
    }
    return {
        "metadata": {
            "name": name,
            "labels": {crds.LABEL_KERNELSPEC: label or name},
            "ownerReferences": [owner],
        },
        "data": {"kernel.json": json.dumps(spec)},
    }


def test_desired_files_filters_by_gateway_kernels() -> None:
    cms = [configmap("a"), configmap("b"), configmap("c")]
    assert set(ks.desired_files(cms, [])) == {"a", "b", "c"}
    assert set(ks.desired_files(cms, ["b", "missing"])) == {"b"}
    # An owned ConfigMap with a broken kernel.json is not served (and, being a JupyterKernelSpec's,
    # it stands for a kernelspec: the built-in one is not served in its place either).
    broken = {**configmap("d"), "data": {"kernel.json": "{not json"}}
    assert ks.desired_files([broken], []) == {}
    # A ConfigMap nobody's JupyterKernelSpec owns is no kernelspec: the built-in one is served.
    foreign = {"metadata": {"name": "e", "labels": {crds.LABEL_KERNELSPEC: "e"}}, "data": {}}
    assert list(ks.desired_files([foreign], [])) == [crds.BUILTIN_KERNELSPEC]


def test_builtin_python_kernelspec_when_the_namespace_has_none(tmp_path: Path) -> None:
    """The article's bare JupyterGateway: no spec.kernels, no JupyterKernelSpec. It serves the
    built-in Python kernelspec through our proxy (default kernel pod, operator's image); the
    first kernelspec created replaces it, and a gateway naming kernels never gets it."""
    files = ks.desired_files([], [])
    assert list(files) == [crds.BUILTIN_KERNELSPEC]
    sync = ks.KernelSpecSync(tmp_path, "team", "gw", api_client=None)
    manager = _Manager(kernel_dirs=[str(sync.kernels_dir)], ensure_native_kernel=False)
    sync._replace_configmaps([])
    sync._replace_gateway([{"metadata": {"name": "gw"}, "spec": {"cullIdleTimeout": 3600}}])
    spec = manager.get_kernel_spec(crds.BUILTIN_KERNELSPEC)
    assert spec.language == "python"
    assert spec.display_name == crds.BUILTIN_KERNELSPEC_DISPLAY_NAME
    assert spec.argv[0] == "kubeflow-launcher" and "{public_key}" in spec.argv
    proxy = spec.metadata["process_proxy"]
    assert proxy == {"class_name": crds.DEFAULT_PROCESS_PROXY_CLASS, "config": {}}
    assert ks.default_kernel_name(sorted(manager.find_kernel_specs())) == crds.BUILTIN_KERNELSPEC
    sync._update_configmap("ADDED", configmap("python-kubernetes"))
    assert set(manager.find_kernel_specs()) == {"python-kubernetes"}
    sync._update_configmap("DELETED", configmap("python-kubernetes"))
    assert set(manager.find_kernel_specs()) == {crds.BUILTIN_KERNELSPEC}
    sync._update_gateway("MODIFIED", {"metadata": {"name": "gw"}, "spec": {"kernels": ["x"]}})
    assert manager.find_kernel_specs() == {}


def test_kernel_name_prefers_the_label() -> None:
    assert ks.kernel_name(configmap("cm", label="python-kubernetes")) == "python-kubernetes"


def test_apply_files_adds_updates_and_removes(tmp_path: Path) -> None:
    kernels = tmp_path / "kernels"
    assert ks.apply_files(kernels, {"a": '{"x": 1}', "b": "{}"}) == ["wrote a", "wrote b"]
    assert ks.apply_files(kernels, {"a": '{"x": 1}', "b": "{}"}) == []  # idempotent
    assert ks.apply_files(kernels, {"a": '{"x": 2}'}) == ["wrote a", "removed b"]
    assert (kernels / "a" / "kernel.json").read_text() == '{"x": 2}'
    assert not (kernels / "b").exists()


class _Manager(KernelSpecManager):  # type: ignore[misc]
    """What SyncedKernelSpecManager does, pointed at a test directory."""


def test_sync_state_reaches_a_kernelspec_manager(tmp_path: Path) -> None:
    sync = ks.KernelSpecSync(tmp_path, "team", "gw", api_client=None)
    manager = _Manager(kernel_dirs=[str(sync.kernels_dir)], ensure_native_kernel=False)

    # Nothing is written before both initial listings arrived.
    sync._replace_configmaps([configmap("a"), configmap("b")])
    assert manager.find_kernel_specs() == {}
    sync._replace_gateway([{"metadata": {"name": "gw"}, "spec": {"kernels": ["a"]}}])
    assert set(manager.find_kernel_specs()) == {"a"}
    assert sync.synced.is_set()

    # Edits of the gateway's list and of kernelspecs apply at once.
    sync._update_gateway("MODIFIED", {"metadata": {"name": "gw"}, "spec": {}})
    assert set(manager.find_kernel_specs()) == {"a", "b"}
    sync._update_configmap("ADDED", configmap("c", display="New"))
    assert manager.get_kernel_spec("c").display_name == "New"
    sync._update_configmap("MODIFIED", configmap("c", display="Edited"))
    assert manager.get_kernel_spec("c").display_name == "Edited"
    sync._update_configmap("DELETED", configmap("c"))
    assert set(manager.find_kernel_specs()) == {"a", "b"}

    # A relist replaces everything (objects deleted while the watch was down).
    sync._replace_configmaps([configmap("b")])
    assert set(manager.find_kernel_specs()) == {"b"}


def test_synced_manager_serves_no_native_kernel(tmp_path: Path, monkeypatch: Any) -> None:
    sync = ks.KernelSpecSync(tmp_path, "team", None, api_client=None)
    sync._replace_configmaps([configmap("only")])
    manager = ks.SyncedKernelSpecManager(parent=app_with(sync))
    assert manager.kernel_dirs == [str(sync.kernels_dir)]
    assert set(manager.find_kernel_specs()) == {"only"}


def test_default_kernel_follows_the_served_set(tmp_path: Path, monkeypatch: Any) -> None:
    assert ks.default_kernel_name([]) is None
    assert ks.default_kernel_name(["b", "a"]) == "a"
    assert ks.default_kernel_name(["z", "python_kubernetes"]) == "python_kubernetes"

    class KernelManager:
        default_kernel_name = "python3"

    sync = ks.KernelSpecSync(tmp_path, "team", None, api_client=None)
    sync._replace_configmaps([configmap("r-kernel"), configmap("python-k8s")])
    monkeypatch.delenv(ks.DEFAULT_KERNEL_ENV, raising=False)
    manager = ks.SyncedKernelSpecManager(parent=app_with(sync))
    manager._update_default(["python-k8s", "r-kernel"])  # no kernel manager yet: no error
    km = KernelManager()
    monkeypatch.setattr(manager, "_kernel_manager", lambda: km)
    manager.find_kernel_specs()
    assert km.default_kernel_name == "python-k8s"
    monkeypatch.setenv(ks.DEFAULT_KERNEL_ENV, "fixed")
    km.default_kernel_name = "fixed"
    manager.find_kernel_specs()
    assert km.default_kernel_name == "fixed"


def test_watch_loop_applies_list_and_events(tmp_path: Path, monkeypatch: Any) -> None:
    """The loop as the kubernetes client drives it with ``deserialize=False``: events are the
    raw JSON lines (``{"type", "object"}``), the list comes as an undecoded response."""
    import kubernetes.watch

    sync = ks.KernelSpecSync(tmp_path, "team", None, api_client=None)
    events = [
        {"type": "ADDED", "object": configmap("b")},
        {"type": "MODIFIED", "object": configmap("a", display="A2")},
        {"type": "DELETED", "object": configmap("b")},
    ]

    class FakeWatch:
        def stream(self, fn: Any, **kwargs: Any) -> Any:
            assert kwargs["deserialize"] is False
            yield from events
            sync.stop()  # end the loop after one round

        def stop(self) -> None:
            pass

    class Response:
        data = json.dumps({"metadata": {"resourceVersion": "7"}, "items": [configmap("a")]})

    seen: list[str] = []

    def list_fn(**kwargs: Any) -> Response:
        seen.append(kwargs.get("label_selector", ""))
        return Response()

    monkeypatch.setattr(kubernetes.watch, "Watch", FakeWatch)
    sync._watch(list_fn, sync._replace_configmaps, sync._update_configmap, label_selector="x")
    assert seen == ["x"]
    manager = _Manager(kernel_dirs=[str(sync.kernels_dir)], ensure_native_kernel=False)
    assert set(manager.find_kernel_specs()) == {"a"}
    assert manager.get_kernel_spec("a").display_name == "A2"


def test_standalone_command_line() -> None:
    with pytest.raises(SystemExit) as exit_:
        ks.main(["--help"])
    assert exit_.value.code == 0
