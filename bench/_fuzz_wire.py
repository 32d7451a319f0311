"""Hostile bytes on the two sockets a neighbouring pod can reach: a kernel's comm port and the
gateway's response address. Each generator yields ``(label, data)`` from a seeded RNG; the
senders never raise (a refused or reset connection is counted, since after a crash every
connection is refused).

Comm-port cases (``kernel_launcher/listener.py`` is the receiver): random bytes, non-UTF-8,
truncated and oversized JSON, deep nesting, JSON that is not an object, signals outside the
allowed set or outside any range (signed with the kernel's real key, so they pass the MAC and
reach the range checks), unsigned, wrongly signed, stale, future and replayed requests, bad
shutdown values, connections that never send EOF, and a burst of connections held open at once.

Response-address cases (Enterprise Gateway's ResponseManager with the plugin's launch-token
guard): random bytes, base64 garbage, plaintext connection info (the legacy unencrypted form),
correctly encrypted payloads for a wrong or an already-running kernel id, the same payload
replayed, truncated and oversized payloads, deep nesting inside a valid envelope, idle
connections held open, and a burst of connections.
"""

from __future__ import annotations

import base64
import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from elastic_jupyter.kernel_launcher import comm_auth, payload


@dataclass
class Tally:
    """What a batch of hostile connections met."""

    sent: int = 0
    refused: int = 0  # connect refused: nobody listens any more
    other_errors: int = 0
    labels: dict[str, int] = field(default_factory=dict)

    def count(self, label: str, error: str) -> None:
        self.sent += 1
        kind = label.split(":")[0]
        self.labels[kind] = self.labels.get(kind, 0) + 1
        if error == "refused":
            self.refused += 1
        elif error:
            self.other_errors += 1


def send_raw(address: tuple[str, int], data: bytes, eof: bool = True, hold: float = 0.0) -> str:
    """Connect, send ``data``, then EOF (or hold the connection ``hold`` s); "" or an error."""
    try:
        with socket.create_connection(address, timeout=10) as sock:
            if data:
                sock.sendall(data)
            if hold:
                time.sleep(hold)
            if eof:
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(5)
                try:
                    while sock.recv(65536):
                        pass
                except OSError:
                    pass
        return ""
    except ConnectionRefusedError:
        return "refused"
    except OSError as err:  # reset while sending a large payload: the receiver hung up
        return type(err).__name__


def hold_many(address: tuple[str, int], count: int, seconds: float) -> tuple[int, int]:
    """Open ``count`` connections at once, keep them ``seconds``, close; (opened, refused)."""
    socks: list[socket.socket] = []
    refused = 0
    for _ in range(count):
        try:
            sock = socket.create_connection(address, timeout=5)
            socks.append(sock)
        except OSError:
            refused += 1
    time.sleep(seconds)
    for sock in socks:
        sock.close()
    return len(socks), refused


def _count_burst(tally: Tally, address: tuple[str, int], burst: int) -> None:
    """Hold ``burst`` connections at once for 3 s; count each as opened or refused."""
    opened, refused = hold_many(address, burst, 3.0)
    for _ in range(opened):
        tally.count("burst", "")
    for _ in range(refused):
        tally.count("burst", "refused")


def _random_bytes(rng: random.Random, size: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(size))


def _nested(depth: int, rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


# --- the comm port ---------------------------------------------------------------------------


def comm_cases(rng: random.Random, key: str, per_kind: int) -> Iterator[tuple[str, bytes, bool]]:
    """``(label, data, eof)`` for the comm port; ``key`` is the kernel's connection key."""

    def signed(fields: dict[str, Any], **over: Any) -> bytes:
        message = comm_auth.sign(fields, key)
        message.update(over)
        return json.dumps(message).encode()

    for _ in range(per_kind):
        yield "random-bytes", _random_bytes(rng, rng.choice([1, 7, 100, 4096, 60000])), True
        yield "not-utf8", b'{"signum": "\xff\xfe' + _random_bytes(rng, 20) + b'"}', True
        whole = signed({"signum": 0})
        yield "truncated-json", whole[: rng.randrange(1, len(whole))], True
        yield "huge-json", json.dumps({"signum": 0, "pad": "x" * 2_000_000}).encode(), True
        yield "under-limit-json", json.dumps({f"k{i}": i for i in range(5000)}).encode(), True
        yield "deep-nesting", _nested(rng.choice([1000, 20000, 30000]), rng), True
        yield "not-an-object", rng.choice([b"2", b'"signum"', b"null", b"[2]", b"1e999"]), True
        bad_signal = rng.choice([-1, 9, 19, 17, 64, 65, 2**31, 2**70, -(2**63)])
        yield "signal-out-of-range", signed({"signum": bad_signal}), True
        odd = rng.choice([1.5, "2", True, None, [], {"n": 2}])
        yield "signal-wrong-type", signed({"signum": odd}), True
        yield "unsigned", json.dumps(rng.choice([{"signum": 2}, {"shutdown": 1}])).encode(), True
        yield "bad-mac", signed({"signum": 2}, mac=_random_bytes(rng, 32).hex()), True
        yield (
            "other-key",
            json.dumps(comm_auth.sign({"shutdown": 1}, uuid.uuid4().hex)).encode(),
            True,
        )
        yield (
            "stale",
            json.dumps(comm_auth.sign({"shutdown": 1}, key, now=time.time() - 3600)).encode(),
            True,
        )
        yield (
            "future",
            json.dumps(comm_auth.sign({"signum": 2}, key, now=time.time() + 3600)).encode(),
            True,
        )
        bad_shutdown = rng.choice(["no", 0, 2, "1", None, [1]])
        yield "shutdown-bad-value", signed({"shutdown": bad_shutdown}), True
        yield "unknown-keys", signed({"exec": "rm -rf /"}), True
        yield "empty", b"", True
        yield "no-eof", signed({"signum": 0}), False
    replay = signed({"signum": 0})
    for _ in range(max(2, per_kind)):
        yield "replay", replay, True


def fuzz_comm_port(
    address: tuple[str, int], key: str, rng: random.Random, per_kind: int, burst: int
) -> Tally:
    """Send every comm-port case (8 at a time), then ``burst`` connections held at once."""
    tally = Tally()
    cases = list(comm_cases(rng, key, per_kind))

    def one(case: tuple[str, bytes, bool]) -> tuple[str, str]:
        label, data, eof = case
        return label, send_raw(address, data, eof=eof, hold=0.0 if eof else 0.5)

    with ThreadPoolExecutor(8) as pool:
        for label, error in pool.map(one, cases):
            tally.count(label, error)
    _count_burst(tally, address, burst)
    return tally


# --- the response address -----------------------------------------------------------------------


def _info(kernel_id: str, **extra: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "kernel_id": kernel_id, "ip": "127.0.0.1", "shell_port": 1, "iopub_port": 2,
        "stdin_port": 3, "control_port": 4, "hb_port": 5, "comm_port": 6, "pid": 1,
        "key": "attacker", "transport": "tcp", "signature_scheme": "hmac-sha256",
    }  # fmt: skip
    info.update(extra)
    return info


def response_cases(
    rng: random.Random, public_key: str, live_kernel_id: str, per_kind: int, oversized: int
) -> Iterator[tuple[str, bytes]]:
    """``(label, data)`` for the gateway's response address."""
    key = payload.load_public_key(public_key)
    for _ in range(per_kind):
        yield "random-bytes", _random_bytes(rng, rng.choice([1, 16, 300, 5000]))
        yield "base64-garbage", base64.b64encode(_random_bytes(rng, rng.choice([16, 200, 3000])))
        plain = json.dumps(_info(live_kernel_id)).encode()
        yield "plaintext-info", rng.choice([plain, base64.b64encode(plain)])
        yield "wrong-kernel-id", payload.encode_payload(_info(str(uuid.uuid4())), key)
        forged = payload.encode_payload(_info(live_kernel_id, launch_token="guess"), key)
        yield "running-kernel-id", forged
        yield "replayed", forged
        whole = payload.encode_payload(_info(str(uuid.uuid4())), key)
        yield "truncated", whole[: rng.randrange(1, len(whole))]
        envelope = {"version": 1, "key": "AAAA", "conn_info": "B" * 64}
        yield "bad-envelope", base64.b64encode(json.dumps(envelope).encode())
        yield "deep-nesting", base64.b64encode(_nested(rng.choice([1000, 50000]), rng))
        yield "not-an-object", base64.b64encode(rng.choice([b"[1]", b"null", b"7"]))
    yield "oversized", base64.b64encode(_random_bytes(rng, 4096)) * (oversized // 5464 + 1)


def fuzz_response_address(
    address: tuple[str, int],
    public_key: str,
    live_kernel_id: str,
    rng: random.Random,
    per_kind: int,
    burst: int,
    oversized: int,
) -> Tally:
    tally = Tally()
    cases = list(response_cases(rng, public_key, live_kernel_id, per_kind, oversized))

    def one(case: tuple[str, bytes]) -> tuple[str, str]:
        return case[0], send_raw(address, case[1])

    with ThreadPoolExecutor(4) as pool:
        for label, error in pool.map(one, cases):
            tally.count(label, error)
    _count_burst(tally, address, burst)
    return tally


class IdleHolders:
    """Connections to an address opened and left idle (no data, no EOF) until closed."""

    def __init__(self, address: tuple[str, int], count: int) -> None:
        self.socks: list[socket.socket] = []
        self._lock = threading.Lock()
        for _ in range(count):
            try:
                self.socks.append(socket.create_connection(address, timeout=5))
            except OSError:
                break

    def close(self) -> None:
        with self._lock:
            for sock in self.socks:
                sock.close()
            self.socks = []
