"""Shared pytest fixtures: the sandbox cluster and the paths every test suite needs.

Fixtures (other suites depend on these names):

* ``repo_root`` / ``control_venv_bin`` / ``kernel_venv_bin`` - paths computed from this file:
  the repository, ``.venv/bin`` (control plane) and ``.venv-kernel/bin`` (kernels, notebooks).
* ``sandbox`` (session) - a running :class:`elastic_jupyter.sandbox.cluster.SandboxCluster`
  with the CRDs applied and a node with 8 CPUs, 32Gi and 2 ``nvidia.com/gpu``.
* ``namespace`` - a fresh namespace in that sandbox, deleted (with everything in it) afterwards.
* ``kube_api`` - a ``kubernetes.client.ApiClient`` for the sandbox.
* ``kubectl`` - ``sandbox.kubectl`` (run kubectl against the sandbox); skips the test with a
  stated reason when kubectl is not on PATH. Mark such tests ``@pytest.mark.kubectl``.

When a test using ``sandbox`` fails, the tail of the sandbox's own log is added to its report
("sandbox log" section): kubelet, scheduler and controller warnings show up there.

Markers: a test is ``slow`` when it says so or when it uses the sandbox (any fixture that needs
``sandbox``); ``make unit`` runs the rest (``-m "not slow"``). ``--order reverse`` or
``--order random[:SEED]`` runs the collected tests in another order, to prove that no test
depends on another having run first (``make order-check``).
"""

from __future__ import annotations

import random
import re
import shutil
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter.sandbox.cluster import SandboxCluster

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Fixtures that start the sandbox cluster: a test using any of them is ``slow``.
SANDBOX_FIXTURES = frozenset({"sandbox", "namespace", "kube_api", "kubectl"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--order",
        default="",
        help="run the collected tests in another order: 'reverse' or 'random[:SEED]'",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SANDBOX_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    order = str(config.getoption("--order"))
    if order == "reverse":
        items.reverse()
    elif order.startswith("random"):
        seed = int(order.partition(":")[2] or random.randrange(10**6))
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:  # the seed, to run the same order again
            reporter.write_line(f"test order: --order random:{seed}")
        random.Random(seed).shuffle(items)
    elif order:
        raise pytest.UsageError(f"--order {order!r}: use 'reverse' or 'random[:SEED]'")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    cluster = getattr(item, "funcargs", {}).get("sandbox")
    if report.failed and isinstance(cluster, SandboxCluster) and cluster.log_path.exists():
        tail = cluster.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        report.sections.append(("sandbox log", tail or "(empty)"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def control_venv_bin(repo_root: Path) -> Path:
    return repo_root / ".venv" / "bin"


@pytest.fixture(scope="session")
def kernel_venv_bin(repo_root: Path) -> Path:
    return repo_root / ".venv-kernel" / "bin"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxCluster]:
    with SandboxCluster(apply_crds=True, node_gpus=2) as cluster:
        yield cluster


@pytest.fixture
def namespace(sandbox: SandboxCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace named after the test (``t-<test>-<random>``), deleted afterwards."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{stem}-{uuid.uuid4().hex[:6]}"
    sandbox.create_namespace(name)
    yield name
    sandbox.delete_namespace(name)


@pytest.fixture
def kube_api(sandbox: SandboxCluster) -> Iterator[Any]:
    client = sandbox.api_client()
    yield client
    client.close()


@pytest.fixture
def kubectl(sandbox: SandboxCluster) -> Callable[..., Any]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH (install kubectl 1.32 to run this test)")
    return sandbox.kubectl
