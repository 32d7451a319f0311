"""One elastic-jupyter stack shared by the e2e modules (user path, browser): sandbox, operator,
elastic example applied. Created on first use, torn down after the last e2e test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from elastic_jupyter import harness
from tests.e2e import stack

#: Unique per run: Service names are published machine-wide (/etc/hosts), and other sandboxes
#: may run the same example at the same time.
NAMESPACE = f"e2e-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="package")
def elastic_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[harness.UserPath]:
    """A ``UserPath`` whose example (gateway, kernelspec, template, notebook) is up."""
    missing = stack.missing_parts()
    if missing:
        pytest.skip("the full stack is not built yet: missing " + "; ".join(missing))
    sandbox = request.getfixturevalue("sandbox")
    sandbox.create_namespace(NAMESPACE)
    kubectl = harness.Kubectl(str(sandbox.kubeconfig), NAMESPACE)
    log = tmp_path_factory.mktemp("e2e-logs") / "operator.log"
    try:
        with harness.operator_process(
            harness.operator_env(sandbox), log, "--namespace", NAMESPACE, *harness.NO_PORTS
        ):
            path = harness.UserPath(kubectl, say=print, timeout_s=90)
            try:
                path.apply_example()
            except Exception:
                print("operator log (tail):\n" + log.read_text(errors="replace")[-6000:])
                raise
            yield path
            if path.channel is not None:
                path.channel.close()
            kubectl.run(
                "delete",
                "jupyternotebooks,jupytergateways,jupyterkernels",
                "--all",
                "--wait=false",
                check=False,
            )
    finally:
        sandbox.delete_namespace(NAMESPACE)
