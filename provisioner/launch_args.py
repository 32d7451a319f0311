"""The pure parts of a direct-mode launch: the kernelspec argv and the env the policy judges.

No jupyter_client here, so they are tested (and usable) anywhere.
"""

from __future__ import annotations

import re

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")


def format_argv(argv: list[str], values: dict[str, str]) -> list[str]:
    """Fill ``{name}`` placeholders from ``values``; others (``{connection_file}``) stay."""
    return [_PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), a) for a in argv]


def client_env(env: dict[str, str], kernelspec_env: dict[str, str]) -> dict[str, str]:
    """What the policy judges: the ``KERNEL_*`` of the launch env the kernelspec did not set.

    jupyter_server 2 starts kernels with its own environment (``KERNEL_USERNAME`` …, plus
    ``JPY_SESSION_NAME``); nothing else of it reaches the pod (``plan_kernel`` copies only the
    kernelspec's env names and ``KERNEL_*``).
    """
    return {
        k: v
        for k, v in env.items()
        if k.startswith("KERNEL_") and not (k in kernelspec_env and kernelspec_env[k] == v)
    }
