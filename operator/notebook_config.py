"""The jupyter_server configuration file of a notebook server: a pure renderer, no I/O.

The operator puts the text into the ConfigMap ``<notebook>-config``, mounts it into the notebook
pod and names its directory in ``JUPYTER_CONFIG_PATH`` (see :mod:`.notebook_objects`), so the
fix below reaches every notebook image with jupyter_server 2, whether or not our package is
installed in it. The file only imports jupyter_server; on a server without the pluggable kernel
websocket connection (jupyter_server 1.x) it does nothing.

**The bug it fixes: a kernel stuck at "Unknown" in JupyterLab behind a gateway.**

1. JupyterLab 4 opens the kernel websocket asking for the ``v1.kernel.websocket.jupyter.org``
   subprotocol. jupyter_server 2 with ``--gateway-url`` relays the legacy protocol only
   (``GatewayWebSocketConnection.kernel_ws_protocol = ""``), so it answers 101 without a
   subprotocol. It has already called ``open()``, which starts the websocket to the gateway
   (``connect()``: ``websocket_connect`` returns a pending future).
2. Chromium fails that handshake (it asked for a subprotocol and got none) and drops the
   connection; JupyterLab at once reconnects, without subprotocols, with the same
   ``session_id``.
3. The notebook server's ``on_close`` calls ``disconnect()``, which *cancels* the pending
   future. Cancelling does not stop tornado's handshake: the gateway websocket completes, its
   result is dropped, and nothing ever reads or closes it - an orphan open at the gateway.
4. Enterprise Gateway 3.3 (jupyter_server 1.24 ``ZMQChannelsHandler``) keys websockets by
   ``kernel_id:session_id``. The reconnect's gateway websocket arrives (about 50 ms later in the
   sandbox) with the orphan's key while the orphan is still in its handshake, waiting for the
   kernel's ``kernel_info``: EG logs "Replacing stale connection" and awaits the orphan's
   close - but closing a tornado handler that has not opened yet does nothing, so the live
   websocket waits until the orphan itself goes away, which nothing makes happen soon. The
   browser's kernel_info request is queued behind it and JupyterLab shows "Unknown".

The file's code is :mod:`.notebook_server_config`; this module explains it and renders it.

**The fix** (:data:`CONNECTION_CLASS`, set as ``ServerApp.kernel_websocket_connection_class``):

* ``disconnect()`` no longer cancels a pending gateway connection; it marks the connection as
  disconnected and closes the gateway websocket the moment it is established. That is the
  upstream leak of step 3: every failed or abandoned browser handshake left one open websocket
  (and its ZeroMQ streams, and a connection count that keeps the kernel from being culled as
  idle) at the gateway.
* Each browser websocket gets its own gateway session key, ``<session_id>-<8 hex>``, chosen
  once per connection object (kept across that connection's own retries to the gateway), so
  the gateway never takes one browser websocket for a stale copy of another. Closing the
  orphan alone lets the browser in (it passed in the sandbox), but through EG's
  stale-replacement path: the live handler waits for the orphan's handshake, then takes over
  the orphan's ZeroMQ streams from EG's reconnect buffer, while the orphan's unfinished
  ``nudge()`` may still call ``stop_on_recv()`` on that shared IOPub stream when it gives up -
  silencing the live websocket. With its own key the live websocket opens its own streams at
  once and never meets the orphan.

Other fixes considered: answering the ``v1`` subprotocol would avoid the failed handshake, but
the notebook server would then have to speak ``v1`` to the gateway and relay binary frames
(the stock relay decodes every frame as UTF-8), a larger change that still leaves steps 3-4
for any browser that disconnects during a handshake.

**Second fix: the gateway's reason reaches the user.** When the gateway answers a request with an
error (a kernel that cannot start: ``ErrImagePull`` with the image name, a refused
``KERNEL_IMAGE``...), jupyter_server 2's ``gateway_request`` raises an ``HTTPError`` whose
message is the unformatted template ``"Error from Gateway: [%s] %s. Ensure gateway url is valid
and the Gateway instance is running."``: ``POST /api/kernels`` answers that template verbatim
(the API handler shows ``log_message`` without its arguments) and ``POST /api/sessions`` (what
JupyterLab calls) buries the reason inside ``"HTTP 500: Internal Server Error (...)"``, both
ending in advice that is wrong, since the gateway did answer. The file wraps ``gateway_request``
(in ``gateway_client`` and in ``managers``, which imported it by name): an error *answer* from
the gateway becomes :data:`ERROR_CLASS`, whose message and ``str()`` are the gateway's own
message, with the gateway's status code. A gateway that accepted the request and then stopped
answering (killed or rolled out mid-request: tornado's 599 "Stream closed") gets a 503 saying
so, that running kernels are kept, and to try again; a refused connection keeps jupyter_server's
text. The upstream change would be the same few lines inside ``gateway_request``.

**Third fix: the default kernel is one the gateway serves.** jupyter_server 2's
``GET /api/kernelspecs`` puts the kernel manager's ``default_kernel_name`` in its answer *before*
asking the gateway, and only then adopts the gateway's default; ``POST /api/kernels`` without a
name uses it as it stands. So a fresh server's first answers name its own ``python3``, which the
gateway (serving ``python_kubernetes``, say) does not have, and JupyterLab may try to start it.
The file wraps both handler methods: the first authenticated call asks the gateway for its
kernelspecs (which sets the default) before running the upstream method; after that, upstream's
own adoption at every listing keeps it current. The upstream change would be to list the
gateway's kernelspecs before reading the default.

**Trade-off.** Enterprise Gateway buffers a kernel's output while its last websocket is gone
and replays it to the next websocket *with the same session key*. With a key per browser
websocket, output produced while the browser was disconnected (laptop asleep, network blip) is
not replayed when it reconnects; JupyterLab still shows everything produced after that. A
notebook server's own reconnects to the gateway (gateway restarted or unreachable for a moment)
keep their key and are replayed as before.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: The file name jupyter_server looks for in each ``JUPYTER_CONFIG_PATH`` directory.
FILE_NAME = "jupyter_server_config.py"
#: The class the file defines (a subclass of jupyter_server's ``GatewayWebSocketConnection``).
CONNECTION_CLASS = "ElasticJupyterGatewayConnection"
#: The error the file raises for an error answer of the gateway (its message, readable).
ERROR_CLASS = "ElasticJupyterGatewayError"

_HEADER = """\
# jupyter_server configuration written by the elastic-jupyter operator (ConfigMap
# <notebook>-config): changes made here are overwritten. Why: see the docstring of
# elastic_jupyter.operator.notebook_config.
"""

#: The file's text behind a gateway: a real module beside this one, linted and type-checked.
_GATEWAY_CONFIG = Path(__file__).with_name("notebook_server_config.py")

_NO_GATEWAY = """\
# This notebook server runs its kernels itself (no spec.gateway): nothing to configure.
"""


def server_config(uses_gateway: bool) -> str:
    """The text of ``jupyter_server_config.py`` for a notebook server (with or without a
    JupyterGateway: the connection class is a gateway connection, wrong for local kernels)."""
    return _HEADER + (_GATEWAY_CONFIG.read_text(encoding="utf-8") if uses_gateway else _NO_GATEWAY)


def config_hash(text: str) -> str:
    """A short digest of the file, put on the pod template so a new file rolls the pods out."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]
