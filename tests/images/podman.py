"""Building and running our images with podman, for the image smoke tests and the e2e test.

* :func:`require_podman` skips (with the reason) where podman is missing: ``make test`` installs
  it with ``scripts/install-podman.sh``, which can only fail to where apt-get is missing.
* :func:`build_images` runs ``scripts/build-images.sh`` (what ``make images`` runs), which
  skips images whose inputs are unchanged, so only the first run pays for the builds.
* :class:`Container` runs one detached container and removes it afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path
from types import TracebackType

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "images" / "podman" / "containers.conf"
PREFIX = "elastic-jupyter"
TAG = "dev"
#: The images `make images` builds here (the GPU image's CUDA base cannot be made here).
BUILT = ("gateway", "operator", "kernel-py")
#: Uid each image runs as (its Dockerfile's USER).
IMAGE_USERS = {"gateway": 1000, "operator": 65532, "kernel-py": 1000}
#: Builds from a clean machine take minutes (docs/kernel-images.md has the numbers).
BUILD_TIMEOUT = 1800


def image_ref(name: str) -> str:
    return f"{PREFIX}/{name}:{TAG}"


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return env


def require_podman() -> str:
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip(
            "podman is not installed and scripts/install-podman.sh could not install it "
            "(it needs apt-get): the image tests need podman, runc and mmdebstrap"
        )
    return podman


def build_images(*names: str) -> None:
    """``make images`` for ``names`` with podman; fail the test with the build's output."""
    result = subprocess.run(
        [str(REPO / "scripts" / "build-images.sh"), *names],
        env={**podman_env(), "ENGINE": "podman", "IMAGE_PREFIX": PREFIX, "TAG": TAG},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"building {names} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")


def podman(*args: str, timeout: float = 120.0, check: bool = True) -> str:
    result = subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result.stdout


class Container:
    """``podman run -d --network host`` of an image; logs and removal on exit."""

    def __init__(
        self,
        image: str,
        *args: str,
        env: dict[str, str] | None = None,
        volumes: dict[str, str] | None = None,
        options: tuple[str, ...] = (),
    ) -> None:
        self.name = f"ej-test-{uuid.uuid4().hex[:10]}"
        self.argv = ["run", "-d", "--name", self.name, "--network=host", "--pull=never"]
        for key, value in (env or {}).items():
            self.argv.append(f"--env={key}={value}")
        for host, inside in (volumes or {}).items():
            self.argv.append(f"--volume={host}:{inside}")
        self.argv += [*options, image, *args]

    def __enter__(self) -> Container:
        podman(*self.argv)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        podman("rm", "--force", "--time", "2", self.name, check=False)

    def logs(self) -> str:
        """stdout and stderr (``podman logs`` keeps them apart, as the container wrote them)."""
        result = subprocess.run(
            ["podman", "logs", self.name],
            env=podman_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return result.stdout + result.stderr

    def running(self) -> bool:
        state = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.strip() == "true"

    def exec_uid(self) -> int:
        return int(podman("exec", self.name, "id", "-u").strip())
