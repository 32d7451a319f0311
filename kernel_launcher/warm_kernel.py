"""The warm IPython kernel of a pool pod (``python -m elastic_jupyter.kernel_launcher.warm_kernel
-f CONNECTION_FILE``), started by ``warm.py``.

It initialises ipykernel's application - imports, ZeroMQ sockets bound, the shell built: the
slow part of a kernel start - and then blocks on the identity pipe before serving anything, so
no message is handled and no user code runs until a claim arrives. The identity (one JSON line:
``env``, ``cwd``) is applied to ``os.environ`` and the working directory, ``ok`` is written to
the applied pipe, and only then does the kernel start serving; the launcher reports the
connection info after that ``ok``, so the first ``kernel_info`` already sees the user's
environment.

This module runs only inside the kernel process (it imports ipykernel); the launcher never
imports it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _read_line(fd: int) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data


def apply_identity(identity: dict[str, Any]) -> str:
    """Set the claim's env and working directory on this process; return ``ok`` or a warning."""
    env = identity.get("env") or {}
    os.environ.update({str(k): str(v) for k, v in env.items()})
    cwd = identity.get("cwd")
    if cwd:
        try:
            os.chdir(str(cwd))
        except OSError as exc:
            return f"working directory {cwd!r} not usable ({exc.strerror}); kept {os.getcwd()}"
    return "ok"


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    fds = os.environ.pop("KERNEL_WARM_FDS", "")
    identity_r, applied_w = (int(part) for part in fds.split(","))
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(args)  # type: ignore[no-untyped-call]
    line = _read_line(identity_r)
    os.close(identity_r)
    if not line:
        sys.exit(0)  # the launcher ended before any claim: nobody will use this kernel
    answer = apply_identity(json.loads(line.decode("utf-8")))
    os.write(applied_w, answer.encode("utf-8") + b"\n")
    os.close(applied_w)
    app.start()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
