"""Loopback pod IPs: every sandbox pod gets its own 127.x.y.z.

Linux routes all of 127.0.0.0/8 to the loopback interface, so two pods can both listen on
port 8888, each on its own address. Pod IPs come from 127.64.0.0/11 (127.64.0.0 -
127.95.255.255), which stays clear of 127.0.0.0/16 (localhost and friends) and of the
Service clusterIP range 127.96.0.0/16. Each allocator starts at a random offset so two sandboxes
on one machine (parallel test runs) are unlikely to hand out the same address. Used by the
kubelet; released when a pod is deleted.
"""

from __future__ import annotations

import ipaddress
import random

POD_CIDR = ipaddress.IPv4Network("127.64.0.0/11")


class PodIPAllocator:
    """Hands out unused addresses from :data:`POD_CIDR`, skipping .0 and .255 host bytes."""

    def __init__(self, network: ipaddress.IPv4Network = POD_CIDR, seed: int | None = None) -> None:
        self.network = network
        self._size = network.num_addresses
        self._next = random.Random(seed).randrange(self._size)
        self._used: set[str] = set()

    def allocate(self) -> str:
        for _ in range(self._size):
            index = self._next
            self._next = (self._next + 1) % self._size
            address = self.network.network_address + index
            if address.packed[-1] in (0, 255):
                continue
            text = str(address)
            if text not in self._used:
                self._used.add(text)
                return text
        raise RuntimeError(f"pod IP range {self.network} exhausted")

    def release(self, address: str) -> None:
        self._used.discard(address)

    def in_use(self) -> set[str]:
        return set(self._used)
