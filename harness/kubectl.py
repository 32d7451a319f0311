"""kubectl 1.32 as a user types it, and the error a step of the user's path raises."""

from __future__ import annotations

import json
import subprocess
from typing import Any


class StepFailedError(AssertionError):
    """A step of the user's path did not behave as promised; the message says what happened."""


class Kubectl:
    """kubectl 1.32 against one kubeconfig and namespace (what a user types, printed as such)."""

    def __init__(self, kubeconfig: str, namespace: str, binary: str = "kubectl") -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.binary = binary

    def command(self, *args: str) -> list[str]:
        """The argv for ``kubectl -n <namespace> <args>``."""
        return [self.binary, "--kubeconfig", self.kubeconfig, "-n", self.namespace, *args]

    def run(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        """Run kubectl; return stdout (raise StepFailedError with stderr if it fails and check)."""
        done = subprocess.run(
            self.command(*args), input=stdin, capture_output=True, text=True, timeout=60
        )
        if check and done.returncode != 0:
            raise StepFailedError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def json(self, *args: str) -> Any:
        """``kubectl get ... -o json``, decoded."""
        return json.loads(self.run(*args, "-o", "json"))

    def items(self, *args: str) -> list[dict[str, Any]]:
        """The items of a ``kubectl get`` list."""
        items: list[dict[str, Any]] = self.json("get", *args).get("items", [])
        return items

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        out = self.run("get", kind, name, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None
