"""Which local environment stands in for a container image.

The sandbox kubelet pulls no images: a container "runs" its image by running its command with
a local environment chosen here. A rule maps image patterns (``fnmatch``) to directories put
first on ``PATH``, optional default ``command``/``args`` (used when the pod gives only an image,
as an image's ENTRYPOINT/CMD would be), and extra env. An image no rule matches fails the way
an unknown image does on a real node: ``ErrImagePull`` then ``ImagePullBackOff``.

Defaults (user rules from ``--image-map FILE`` are tried first):

* ``*kernel-py*``, ``*jupyter-kernel*``, ``elastic-jupyter/kernel*``: the kernel venv's ``bin``
  first on PATH; default command ``kubeflow-kernel-launcher``; ``KERNEL_BIND_IP`` set to the
  pod's IP (pods share the host network here, so kernels bind their own address, not all);
* ``*notebook*``, ``jupyter/*``: the kernel venv's ``bin``; default command ``jupyter server``;
* ``*enterprise-gateway*``, ``elastic-jupyter/gateway*``, ``elastic-jupyter/operator*``: the
  sandbox's own venv (``sys.prefix``) ``bin`` first;
* ``busybox*``, ``python*``, ``debian*``, ``ubuntu*``: the host PATH.

The kernel venv is ``$ELASTIC_JUPYTER_KERNEL_VENV`` (or ``--kernel-venv``), else
``<repo>/.venv-kernel`` next to the sandbox's venv or source tree.

YAML file format (a list, or a mapping with an ``images`` list)::

    images:
      - match: ["registry.example/my-kernel*", "my-kernel"]   # or a single string
        use: kernel            # optional: start from a default rule (kernel|notebook|control|host)
        path: [/opt/tools/bin] # prepended to PATH
        command: [my-launcher] # default ENTRYPOINT, when the pod gives no command
        args: []               # default CMD, when the pod gives neither command nor args
        env: {FOO: bar, MY_IP: "$(POD_IP)"}   # $(POD_IP) becomes the pod's IP
        runtime: podman        # run the image itself through podman (needs the kubelet's
                               # --container-runtime podman; see podman_runtime.py)
        image: elastic-jupyter/kernel-py:dev   # podman: the local image to run instead
"""

from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

KERNEL_VENV_ENV = "ELASTIC_JUPYTER_KERNEL_VENV"


@dataclass(frozen=True)
class ImageRule:
    """One image map entry; ``name`` says where it came from (for messages)."""

    name: str
    patterns: tuple[str, ...]
    path: tuple[str, ...] = ()
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    env: dict[str, str] = field(default_factory=dict)
    # "process" (run the command locally) or "podman" (run the image, see .podman_runtime).
    runtime: str = "process"
    image: str | None = None  # podman: the local image to run instead of the pod's

    def matches(self, image: str) -> bool:
        candidates = image_candidates(image)
        return any(fnmatch.fnmatchcase(c, p) for p in self.patterns for c in candidates)


def image_candidates(image: str) -> list[str]:
    """Forms of an image reference to match: as given, without registry, without tag/digest."""
    forms = [image]
    ref = image
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        ref = rest
        forms.append(ref)
    if ref.startswith("library/"):
        ref = ref[len("library/") :]
        forms.append(ref)
    bare = ref.split("@", 1)[0]
    name, _, tag = bare.rpartition(":")
    if name and "/" not in tag:
        bare = name
    forms.append(bare)
    return list(dict.fromkeys(forms))


def repo_root() -> Path:
    """The source tree holding this package (``sandbox/`` sits at its top level)."""
    return Path(__file__).resolve().parent.parent


def default_kernel_venv() -> Path:
    """The venv whose ``bin`` runs kernel and notebook images (see the module docstring)."""
    configured = os.environ.get(KERNEL_VENV_ENV)
    if configured:
        return Path(configured)
    prefix = Path(sys.prefix)
    beside_prefix = prefix.parent / ".venv-kernel"
    if beside_prefix.is_dir():
        return beside_prefix
    return repo_root() / ".venv-kernel"


def host_path() -> tuple[str, ...]:
    return tuple(p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p)


class ImageMap:
    """Ordered rules; the first one matching an image wins."""

    def __init__(self, rules: list[ImageRule]) -> None:
        self.rules = list(rules)

    @classmethod
    def default(
        cls, *, kernel_venv: Path | None = None, control_prefix: Path | None = None
    ) -> ImageMap:
        return cls(list(default_rules(kernel_venv, control_prefix).values()))

    def with_file(self, path: Path) -> ImageMap:
        """A new map with the rules of a YAML file tried before the current ones."""
        presets = {r.name.removeprefix("default:"): r for r in self.rules}
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        return ImageMap(parse_rules(data, presets, source=str(path)) + self.rules)

    def resolve(self, image: str) -> ImageRule | None:
        for rule in self.rules:
            if rule.matches(image):
                return rule
        return None


#: How a rule runs a container: locally, or in its image through podman.
RUNTIMES = ("process", "podman")

#: In a rule's env values, replaced by the pod's IP when the kubelet starts the container.
POD_IP_TOKEN = "$(POD_IP)"


def default_rules(
    kernel_venv: Path | None = None, control_prefix: Path | None = None
) -> dict[str, ImageRule]:
    kvenv = kernel_venv or default_kernel_venv()
    control = control_prefix or Path(sys.prefix)
    kbin = str(kvenv / "bin")
    cbin = str(control / "bin")
    return {
        "kernel": ImageRule(
            "default:kernel",
            ("*kernel-py*", "*jupyter-kernel*", "elastic-jupyter/kernel*"),
            path=(kbin,),
            command=("kubeflow-kernel-launcher",),
            # Real pods each have their own network; here every pod shares the host's, so a
            # kernel binding every interface could race another pod's kernel for a port.
            # Binding the pod's own 127.x address keeps pods apart as separate networks would.
            env={"VIRTUAL_ENV": str(kvenv), "KERNEL_BIND_IP": POD_IP_TOKEN},
        ),
        "notebook": ImageRule(
            "default:notebook",
            ("*notebook*", "jupyter/*"),
            path=(kbin,),
            command=("jupyter", "server"),
            env={"VIRTUAL_ENV": str(kvenv)},
        ),
        "control": ImageRule(
            "default:control",
            ("*enterprise-gateway*", "elastic-jupyter/gateway*", "elastic-jupyter/operator*"),
            path=(cbin,),
            env={"VIRTUAL_ENV": str(control)},
        ),
        "host": ImageRule("default:host", ("busybox*", "python*", "debian*", "ubuntu*")),
    }


def _str_tuple(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return tuple(str(v) for v in value)
    raise ValueError(f"{what} must be a string or a list of strings, not {value!r}")


def parse_rules(data: Any, presets: dict[str, ImageRule], *, source: str) -> list[ImageRule]:
    """Parse image map YAML (see the module docstring); raise ValueError naming the entry."""
    if isinstance(data, dict):
        data = data.get("images", [])
    if not isinstance(data, list):
        raise ValueError(f"{source}: expected a list of image rules")
    rules = []
    for index, entry in enumerate(data):
        where = f"{source}: images[{index}]"
        if not isinstance(entry, dict) or "match" not in entry:
            raise ValueError(f"{where}: each rule needs a 'match' pattern")
        base = ImageRule(f"{source}#{index}", ())
        if "use" in entry:
            preset = presets.get(str(entry["use"]))
            if preset is None:
                raise ValueError(
                    f"{where}: unknown 'use' {entry['use']!r} (one of {list(presets)})"
                )
            base = replace(preset, name=f"{source}#{index}")
        env = entry.get("env") or {}
        if not isinstance(env, dict):
            raise ValueError(f"{where}: env must be a mapping")
        runtime = str(entry.get("runtime", base.runtime))
        if runtime not in RUNTIMES:
            raise ValueError(f"{where}.runtime: {runtime!r} is not one of {list(RUNTIMES)}")
        rules.append(
            replace(
                base,
                patterns=_str_tuple(entry["match"], f"{where}.match"),
                path=_str_tuple(entry.get("path", []), f"{where}.path") + base.path,
                command=(
                    _str_tuple(entry["command"], f"{where}.command")
                    if "command" in entry
                    else base.command
                ),
                args=_str_tuple(entry["args"], f"{where}.args") if "args" in entry else base.args,
                env={**base.env, **{str(k): str(v) for k, v in env.items()}},
                runtime=runtime,
                image=str(entry["image"]) if entry.get("image") else base.image,
            )
        )
    return rules


def pull_error_message(image: str) -> str:
    """The ``ErrImagePull`` message for an image the map cannot place."""
    return (
        f'Failed to pull image "{image}": sandbox image map has no entry for "{image}" '
        "(add one with --image-map)"
    )
