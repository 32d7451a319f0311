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
    stack.skip_unless_built()
    sandbox = request.getfixturevalue("sandbox")
    log = tmp_path_factory.mktemp("e2e-logs") / "operator.log"
    env = harness.operator_env(sandbox)
    with (
        stack.operator_serving(sandbox, NAMESPACE, log, env) as kubectl,
        stack.example_up(kubectl, log, timeout_s=90) as path,
    ):
        yield path
