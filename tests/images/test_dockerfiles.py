"""The Dockerfiles under ``images/`` only run what exists: parse them and check, without Docker.

* the base image is a build argument ``BASE`` defaulting to a public image (``make images``
  passes a base made from Debian packages where no registry is reachable);
* every ``COPY`` source is in the build context ``scripts/build-images.sh`` makes: our wheel
  and ``requirements-<extra>.txt`` for an extra of ``pyproject.toml``;
* every program an image runs (``ENTRYPOINT``, ``CMD``, and our programs called in ``RUN``) is
  one of our console scripts or Enterprise Gateway's ``jupyter-enterprisegateway``, and is
  installed by the extra that image installs (checked against the real venvs);
* the gateway, kernel and operator images run as non-root users; the GPU image has a CUDA base.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SCRIPTS = set(PYPROJECT["project"]["scripts"])
EXTRAS = set(PYPROJECT["project"]["optional-dependencies"])
# Programs from our dependencies that an image may run, and the venv providing them here.
THIRD_PARTY = {
    "jupyter-enterprisegateway": REPO / ".venv" / "bin",
    "jupyter-lab": REPO / ".venv-kernel" / "bin",
}
EXPECTED = {"gateway", "operator", "kernel-py", "kernel-py-gpu", "notebook"}
BUILD_SCRIPT = REPO / "scripts" / "build-images.sh"
WHEEL = "elastic_jupyter-*.whl"
REQUIREMENTS = re.compile(r"requirements-([a-z]+)\.txt")


@dataclass
class Instruction:
    keyword: str
    argument: str


def parse(path: Path) -> list[Instruction]:
    """Dockerfile instructions with line continuations joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, argument = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), argument.strip()))
    return instructions


def exec_form(argument: str) -> list[str]:
    """``["a", "b"]`` → ``[a, b]``; shell form → ``sh -c`` words."""
    if argument.startswith("["):
        value = json.loads(argument)
        assert isinstance(value, list)
        return [str(v) for v in value]
    return shlex.split(argument)


def dockerfiles() -> list[Path]:
    return sorted(IMAGES.glob("*/Dockerfile"))


def test_every_image_has_a_dockerfile() -> None:
    assert {p.parent.name for p in dockerfiles()} == EXPECTED
    assert "scripts/build-images.sh" in (REPO / "Makefile").read_text()
    script = BUILD_SCRIPT.read_text()
    assert 'build -f "images/$name/Dockerfile"' in script
    for name in EXPECTED:
        assert name in script


def test_build_context_is_our_wheel_and_requirements() -> None:
    """What the Dockerfiles COPY is what the build script puts in the context."""
    script = BUILD_SCRIPT.read_text()
    assert "pip wheel" in script and "--no-deps" in script
    assert 'f"requirements-{extra}.txt"' in script


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.parent.name)
def test_base_image_is_a_build_argument(path: Path) -> None:
    instructions = parse(path)
    assert instructions[0].keyword == "ARG"
    name, _, default = instructions[0].argument.partition("=")
    assert name == "BASE" and default, f"{path}: the first line must be ARG BASE=<public image>"
    assert instructions[1].keyword == "FROM" and instructions[1].argument == "${BASE}"


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.parent.name)
def test_dockerfile_runs_only_what_exists(path: Path) -> None:
    instructions = parse(path)
    extras: set[str] = set()
    programs: list[str] = []
    entrypoint: list[str] = []
    for ins in instructions:
        if ins.keyword == "COPY":
            words = [w for w in shlex.split(ins.argument) if not w.startswith("--")]
            for source in words[:-1]:
                found = REQUIREMENTS.fullmatch(source)
                assert found or source == WHEEL, f"{path}: COPY {source}: not in the context"
                if found:
                    extras.add(found.group(1))
        elif ins.keyword == "RUN":
            for word in shlex.split(ins.argument.replace("&&", " ; ")):
                if word in SCRIPTS:
                    programs.append(word)
        elif ins.keyword == "ENTRYPOINT":
            entrypoint = exec_form(ins.argument)
            programs.append(entrypoint[0])
        elif ins.keyword == "CMD":
            words = exec_form(ins.argument)
            if not entrypoint and words:
                programs.append(words[0])
    assert extras, f"{path}: installs none of our extras"
    assert extras <= EXTRAS, f"{path}: unknown extras {extras - EXTRAS}"
    assert programs, f"{path}: runs nothing of ours"
    for program in programs:
        assert program in SCRIPTS or program in THIRD_PARTY, f"{path}: runs unknown {program}"
        if program in THIRD_PARTY:
            assert (THIRD_PARTY[program] / program).exists()
        # The console script's module and function exist.
        if program in SCRIPTS:
            module, _, function = PYPROJECT["project"]["scripts"][program].partition(":")
            rel = module.removeprefix("elastic_jupyter.").replace(".", "/") + ".py"
            source = (REPO / rel).read_text()
            assert f"def {function}(" in source, f"{program}: {module}:{function} missing"


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.parent.name)
def test_images_run_as_non_root(path: Path) -> None:
    users = [i.argument for i in parse(path) if i.keyword == "USER"]
    assert users, f"{path}: no USER"
    assert users[-1].split(":")[0] not in ("0", "root")


def test_gpu_image_has_a_cuda_base() -> None:
    first = parse(IMAGES / "kernel-py-gpu" / "Dockerfile")[0]
    assert first.argument.startswith("BASE=nvidia/cuda:")


def test_gateway_image_runs_our_kernelspec_manager() -> None:
    text = (IMAGES / "gateway" / "Dockerfile").read_text()
    assert "elastic_jupyter.gateway_plugin.kernelspec_sync.SyncedKernelSpecManager" in text


def test_notebook_image_runs_the_direct_mode_classes() -> None:
    """The classes the operator's direct-mode notebook flags name are the image's default."""
    from elastic_jupyter.operator import direct_notebook_objects as dno

    text = (IMAGES / "notebook" / "Dockerfile").read_text()
    assert dno.KERNEL_MANAGER_CLASS in text and dno.KERNEL_SPEC_MANAGER_CLASS in text
    first = parse(IMAGES / "notebook" / "Dockerfile")[0]
    assert first.argument.startswith("BASE=quay.io/jupyter/base-notebook:")
    assert "requirements-provisioner.txt" in text
