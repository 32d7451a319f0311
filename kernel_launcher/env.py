"""The launcher's public contract: every environment variable ``kubeflow-kernel-launcher`` reads.

Who uses this module: the launcher itself (``cli.py`` reads the values), the gateway plugin
(the JupyterKernel builder sets them) and the operator (it copies them into the kernel pod's
container env). They import the *names* from here so that a rename is one edit. Keep this
module free of imports beyond the standard library's ``typing``: the gateway and the operator
import it in their own processes, and the kernel image may have nothing but Python.

Precedence for each setting: command-line flag, then the first env name listed, then the
``EG_``-prefixed fallback where one exists (that is what Enterprise Gateway itself exports).
"""

from __future__ import annotations

from typing import Final

# --- Required: what Enterprise Gateway hands every remote kernel launcher --------------------

#: The kernel id EG registered with its ResponseManager; sent back inside the connection info.
KERNEL_ID: Final = "KERNEL_ID"
#: ``host:port`` of EG's ResponseManager (EG's ``{response_address}``), e.g. ``10.1.2.3:8877``.
RESPONSE_ADDRESS: Final = "RESPONSE_ADDRESS"
EG_RESPONSE_ADDRESS: Final = "EG_RESPONSE_ADDRESS"
#: EG's RSA public key (``{public_key}``): base64 of the DER SubjectPublicKeyInfo, no PEM lines.
PUBLIC_KEY: Final = "PUBLIC_KEY"
EG_PUBLIC_KEY: Final = "EG_PUBLIC_KEY"

# --- Optional ---------------------------------------------------------------------------------

#: ``lower..upper`` (inclusive) for the five ZeroMQ ports and the comm port; ``0..0`` = any.
PORT_RANGE: Final = "PORT_RANGE"
EG_PORT_RANGE: Final = "EG_PORT_RANGE"
#: The kernel's argv as a JSON list of strings; ``{connection_file}`` is replaced by the path of
#: the connection file the launcher writes, ``{kernel_id}`` by the kernel id. Unset: IPython via
#: ``<launcher's python> -m ipykernel_launcher -f {connection_file}``. Arguments after ``--`` on
#: the command line win over this variable.
KERNEL_ARGV: Final = "KERNEL_ARGV"
#: For the default IPython argv only: a ``module.Class`` passed as ``--IPKernelApp.kernel_class``
#: (EG's reference images read the same variable).
KERNEL_CLASS_NAME: Final = "KERNEL_CLASS_NAME"
#: Informational, logged at start (EG sets them from the kernelspec and the request).
KERNEL_LANGUAGE: Final = "KERNEL_LANGUAGE"
KERNEL_NAME: Final = "KERNEL_NAME"
KERNEL_USERNAME: Final = "KERNEL_USERNAME"
#: The address reported as ``ip`` in the connection info. EG overwrites it with the pod IP it
#: learns from Kubernetes, so this only matters to other consumers; unset, the launcher reports
#: its own address on the route to the gateway.
KERNEL_POD_IP: Final = "KERNEL_POD_IP"
#: The address the kernel's six sockets bind. Default ``0.0.0.0`` (every interface of the
#: pod). Set it to the pod IP where pods share one host network (the project's sandbox does),
#: so that two kernels can never race for the same port.
KERNEL_BIND_IP: Final = "KERNEL_BIND_IP"
#: Path of a file holding the kernel's launch token (the operator mounts the kernel's Secret and
#: points this at its ``launch-token`` key). The launcher sends the token inside the encrypted
#: connection info, and the gateway accepts connection info for this kernel only with it, so a
#: neighbour who knows the kernel id and the gateway's public key cannot forge the answer.
#: Unset: no token is sent (a gateway that expects one then waits for the real kernel).
KERNEL_LAUNCH_TOKEN_FILE: Final = "KERNEL_LAUNCH_TOKEN_FILE"
#: Seconds to keep retrying delivery of the connection info while the gateway is unreachable
#: (pod networking and sidecars can lag at start). Default 30; the gateway's own launch timeout
#: is usually 40-60 s.
KERNEL_LAUNCHER_RESPONSE_TIMEOUT: Final = "KERNEL_LAUNCHER_RESPONSE_TIMEOUT"
#: Seconds between SIGTERM and SIGKILL when the launcher stops the kernel. Default 5; keep it
#: below the pod's ``terminationGracePeriodSeconds`` (30 by default).
KERNEL_LAUNCHER_STOP_TIMEOUT: Final = "KERNEL_LAUNCHER_STOP_TIMEOUT"
#: ``DEBUG``, ``INFO`` (default), ``WARNING`` or ``ERROR``; the launcher logs to stderr.
KERNEL_LAUNCHER_LOG_LEVEL: Final = "KERNEL_LAUNCHER_LOG_LEVEL"

# --- Warm pools (``warm.py``): set by the operator on pool kernels -----------------------------

#: ``1``: this pod is a warm-pool kernel. The launcher starts the kernel (IPython: initialised,
#: not yet serving) and waits on its comm port for one claim signed with the claim key, which
#: carries the user's identity, the kernel id and the claiming gateway's response address.
KERNEL_WARM_POOL: Final = "KERNEL_WARM_POOL"
#: Path of the file holding the pool kernel's claim key (its Secret, mounted like the token).
KERNEL_CLAIM_KEY_FILE: Final = "KERNEL_CLAIM_KEY_FILE"
#: The fixed comm port of a pool kernel (the claimer needs it before any connection info).
KERNEL_CLAIM_PORT: Final = "KERNEL_CLAIM_PORT"
#: Set by the launcher for a warm IPython kernel: ``<identity fd>,<applied fd>`` (pipes).
KERNEL_WARM_FDS: Final = "KERNEL_WARM_FDS"

# --- Set by the launcher for the kernel process ----------------------------------------------

#: ipykernel exits when the process with this pid stops being its parent (orphan protection).
JPY_PARENT_PID: Final = "JPY_PARENT_PID"

#: Every name the launcher reads, for builders that want to pass them all through.
ALL: Final = (
    KERNEL_ID,
    RESPONSE_ADDRESS,
    EG_RESPONSE_ADDRESS,
    PUBLIC_KEY,
    EG_PUBLIC_KEY,
    PORT_RANGE,
    EG_PORT_RANGE,
    KERNEL_ARGV,
    KERNEL_CLASS_NAME,
    KERNEL_LANGUAGE,
    KERNEL_NAME,
    KERNEL_USERNAME,
    KERNEL_POD_IP,
    KERNEL_BIND_IP,
    KERNEL_LAUNCH_TOKEN_FILE,
    KERNEL_LAUNCHER_RESPONSE_TIMEOUT,
    KERNEL_LAUNCHER_STOP_TIMEOUT,
    KERNEL_LAUNCHER_LOG_LEVEL,
    KERNEL_WARM_POOL,
    KERNEL_CLAIM_KEY_FILE,
    KERNEL_CLAIM_PORT,
)

#: The placeholder in ``KERNEL_ARGV`` that becomes the connection file's path.
CONNECTION_FILE_PLACEHOLDER: Final = "{connection_file}"
#: The placeholder in ``KERNEL_ARGV`` that becomes the kernel id.
KERNEL_ID_PLACEHOLDER: Final = "{kernel_id}"
