"""Connection-info payload version 1 and its delivery to the gateway's ResponseManager.

Called by ``cli.py`` (``load_public_key`` and ``parse_response_address`` validate the inputs
before anything starts) and by ``launcher.py`` (``deliver`` once the kernel process exists).

Wire format, as Enterprise Gateway 3.3's ``ResponseManager._decode_payload`` reads it::

    base64( JSON({"version": 1,                                  # an integer, never "1"
                  "key": base64(RSA-PKCS#1-v1.5(public_key, aes_key)),
                  "conn_info": base64(AES-128-ECB(aes_key, PKCS#7(JSON(info))))}) )

sent raw on one TCP connection and ended by EOF (EG reads until EOF; no framing). ``info``
must carry ``kernel_id``: EG routes the payload by it. AES-ECB is EG's choice, not ours; the
AES key is fresh per payload and only the gateway's private key can recover it.

Delivery retries with exponential backoff (50 ms doubling to 2 s) until
``KERNEL_LAUNCHER_RESPONSE_TIMEOUT`` seconds (default 30) have passed, because a pod's network
or sidecar may not pass traffic yet when the launcher starts.

pycryptodomex (``Cryptodome``) is imported lazily so that ``--help`` works without it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import socket
import sys
import time
from typing import Any, Callable

from .errors import EXIT_UNDELIVERED, LauncherError

log = logging.getLogger(__name__)

PAYLOAD_VERSION = 1
AES_KEY_BYTES = 16  # AES-128, what EG decrypts
AES_BLOCK = 16
DEFAULT_RESPONSE_TIMEOUT = 30.0
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 2.0
#: Upper bound for one connect attempt; a black-holed address must not eat the whole budget.
CONNECT_TIMEOUT = 5.0
#: How long to wait for the gateway to close its side after reading the payload.
EOF_WAIT = 2.0

_CRYPTO_MISSING = (
    "pycryptodomex is not installed in this image but is needed to encrypt the connection "
    "info; install the launcher with: pip install 'elastic-jupyter[kernel]'"
)


def _crypto() -> tuple[Any, Any, Any]:
    """Import pycryptodomex's RSA, PKCS1_v1_5 and AES (lazily: only a real launch needs them)."""
    # pycryptodomex binds its C code through cffi when cffi is importable, and cffi's pure-Python
    # C parser costs ~30 ms per launch; its ctypes binding (what minimal images without cffi get
    # anyway) is equivalent and loads 3x faster. The launcher never uses cffi, so hide it for
    # the duration of this import. (The kernel is a separate process and unaffected.)
    hide_cffi = "cffi" not in sys.modules
    if hide_cffi:
        sys.modules["cffi"] = None  # type: ignore[assignment]
    try:
        from Cryptodome.Cipher import AES, PKCS1_v1_5
        from Cryptodome.PublicKey import RSA
    except ImportError:
        raise LauncherError(_CRYPTO_MISSING) from None
    finally:
        if hide_cffi:
            del sys.modules["cffi"]
    return RSA, PKCS1_v1_5, AES


def load_public_key(text: str, source: str = "--public-key") -> Any:
    """Parse EG's ``{public_key}`` (base64 DER; a full PEM is tolerated) into an RSA key object.

    Raises ``LauncherError`` naming ``source`` and the expected form when it is malformed.
    """
    rsa, pkcs1, _ = _crypto()
    stripped = text.strip()
    hint = (
        f"malformed public key ({source}): {{reason}}; pass Enterprise Gateway's "
        "{{public_key}} unchanged (base64 of its RSA public key in DER form, about 216 characters)"
    )
    if not stripped:
        raise LauncherError(hint.format(reason="it is empty"))
    if stripped.startswith("{") and stripped.endswith("}"):
        raise LauncherError(
            hint.format(reason=f"{stripped!r} looks like a placeholder nobody substituted")
        )
    body = "".join(line for line in stripped.splitlines() if not line.startswith("-----")).replace(
        " ", ""
    )
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise LauncherError(hint.format(reason="it is not valid base64")) from None
    try:
        key = rsa.import_key(der)
    except (ValueError, IndexError, TypeError):
        raise LauncherError(hint.format(reason="it does not decode to an RSA public key")) from None
    if key.has_private():
        key = key.publickey()
    try:
        pkcs1.new(key).encrypt(b"\0" * AES_KEY_BYTES)
    except (ValueError, TypeError) as exc:
        raise LauncherError(hint.format(reason=f"it cannot encrypt an AES key ({exc})")) from None
    return key


def parse_response_address(text: str, source: str = "--response-address") -> tuple[str, int]:
    """Parse ``host:port`` (``[v6]:port`` too); raise ``LauncherError`` when it is malformed."""
    stripped = text.strip()
    fix = (
        f"pass Enterprise Gateway's {{response_address}} unchanged, e.g. '10.0.0.5:8877' ({source})"
    )
    if not stripped:
        raise LauncherError(f"malformed response address: it is empty; {fix}")
    if "://" in stripped or "/" in stripped:
        raise LauncherError(
            f"malformed response address {stripped!r}: it must be host:port without a scheme "
            f"or path; {fix}"
        )
    host, sep, port_text = stripped.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or any(ch.isspace() for ch in host):
        raise LauncherError(f"malformed response address {stripped!r}: expected host:port; {fix}")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise LauncherError(
            f"malformed response address {stripped!r}: the port must be 1..65535; {fix}"
        )
    return host, port


def encode_payload(info: dict[str, Any], public_key: Any) -> bytes:
    """Return the version-1 wire bytes for ``info`` (which must already hold ``kernel_id``)."""
    _, pkcs1, aes = _crypto()
    aes_key = os.urandom(AES_KEY_BYTES)
    plain = json.dumps(info).encode("utf-8")
    padding = AES_BLOCK - len(plain) % AES_BLOCK  # PKCS#7: always 1..16 bytes of value n
    cipher_text = aes.new(aes_key, aes.MODE_ECB).encrypt(plain + bytes([padding]) * padding)
    envelope = {
        "version": PAYLOAD_VERSION,
        "key": base64.b64encode(pkcs1.new(public_key).encrypt(aes_key)).decode("ascii"),
        "conn_info": base64.b64encode(cipher_text).decode("ascii"),
    }
    return base64.b64encode(json.dumps(envelope).encode("utf-8"))


def _send_once(address: tuple[str, int], build: Callable[[str], bytes], timeout: float) -> None:
    """Connect, send the payload built for our local address on that route, end with EOF."""
    with socket.create_connection(address, timeout=timeout) as sock:
        local_ip: str = sock.getsockname()[0]
        sock.sendall(build(local_ip))
        sock.shutdown(socket.SHUT_WR)
        # EG closes after it has read to EOF; waiting for that tells us it took the payload.
        sock.settimeout(EOF_WAIT)
        try:
            while sock.recv(1024):
                pass
        except OSError:
            log.debug("gateway did not close the response connection within %.1fs", EOF_WAIT)


def deliver(
    address: tuple[str, int],
    build: Callable[[str], bytes],
    timeout: float,
    wait: Callable[[float], bool],
) -> bool:
    """Send the payload to the gateway, retrying with backoff for up to ``timeout`` seconds.

    ``build(local_ip)`` returns the wire bytes (the route's local address is known only after
    connecting). ``wait(seconds)`` sleeps between attempts and returns True when the launcher
    must give up early (the kernel exited, or the launcher was told to stop); ``deliver`` then
    returns False. Raises ``LauncherError`` (exit 3) once the time limit is spent.
    """
    host, port = address
    started = time.monotonic()
    backoff = FIRST_BACKOFF
    attempts = 0
    while True:
        attempts += 1
        remaining = timeout - (time.monotonic() - started)
        try:
            _send_once(address, build, max(0.2, min(CONNECT_TIMEOUT, remaining)))
        except socket.gaierror as exc:
            problem = f"the host name {host!r} does not resolve ({exc.strerror})"
        except OSError as exc:
            problem = exc.strerror or exc.__class__.__name__
        else:
            log.info("connection info delivered to %s:%d (attempt %d)", host, port, attempts)
            return True
        remaining = timeout - (time.monotonic() - started)
        if remaining <= 0:
            raise LauncherError(
                f"could not deliver the connection info to the gateway at {host}:{port} after "
                f"{attempts} attempt(s) in {timeout:g}s: {problem}; check that the gateway's "
                "response port is reachable from the kernel pod (network policies, sidecars, "
                "EG_RESPONSE_IP) or raise KERNEL_LAUNCHER_RESPONSE_TIMEOUT",
                EXIT_UNDELIVERED,
            )
        if attempts == 1:
            log.info("gateway at %s:%d not reachable yet (%s); retrying", host, port, problem)
        if wait(min(backoff, remaining)):
            return False
        backoff = min(backoff * 2, MAX_BACKOFF)
