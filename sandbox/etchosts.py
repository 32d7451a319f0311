"""Service DNS for sandbox pods through a marked block of ``/etc/hosts``.

Sandbox pods are local processes using the host's resolver, so the Service controller
(:mod:`.services`) publishes Service names by writing them into ``/etc/hosts``, inside a block
owned by one sandbox instance::

    # BEGIN elastic-jupyter-sandbox port=41234 pid=5678 (managed; removed when it stops)
    127.96.12.7 gateway gateway.ns1 gateway.ns1.svc gateway.ns1.svc.cluster.local
    # END elastic-jupyter-sandbox port=41234 pid=5678

The block is rewritten in place under an exclusive ``flock`` (several sandboxes may share a
machine), removed on stop, and blocks whose ``pid`` is no longer alive are removed by the next
sandbox that writes (they are left behind only when a sandbox is SIGKILLed). Writing needs
root; when the file is not writable a warning is logged once and DNS is simply not provided.
``elastic-jupyter-sandbox up --no-dns`` turns this off.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)
MARK = "elastic-jupyter-sandbox"
_BEGIN = re.compile(rf"^# BEGIN {MARK} (?P<tag>.*?pid=(?P<pid>\d+))\b.*$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _strip_blocks(lines: list[str], drop_tag: str | None) -> list[str]:
    """Remove our own block (``drop_tag``) and blocks of dead sandboxes."""
    result: list[str] = []
    skipping = False
    for line in lines:
        if skipping:
            if line.startswith(f"# END {MARK}"):
                skipping = False
            continue
        match = _BEGIN.match(line)
        if match and (match.group("tag") == drop_tag or not _pid_alive(int(match.group("pid")))):
            skipping = True
            continue
        result.append(line)
    return result


class HostsFile:
    """This sandbox's block in a hosts file; ``tag`` identifies the instance."""

    def __init__(self, tag: str, path: Path = Path("/etc/hosts")) -> None:
        self.path = path
        self.tag = f"{tag} pid={os.getpid()}"
        self.enabled = True
        self._warned = False
        self._last: list[tuple[str, list[str]]] | None = None

    def _rewrite(self, block: list[str]) -> bool:
        try:
            with self.path.open("r+", encoding="utf-8") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    lines = handle.read().splitlines()
                    kept = _strip_blocks(lines, self.tag)
                    text = "\n".join(kept + block) + "\n"
                    handle.seek(0)
                    handle.write(text)  # one write: readers never see a half-empty file
                    handle.truncate()
                    handle.flush()
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            return True
        except OSError as err:
            if not self._warned:
                log.warning(
                    "service DNS disabled: cannot write %s (%s); dial Services by clusterIP",
                    self.path,
                    err,
                )
                self._warned = True
            self.enabled = False
            return False

    def write(self, entries: list[tuple[str, list[str]]]) -> bool:
        """Replace this sandbox's block with ``entries`` of (ip, names)."""
        if not self.enabled:
            return False
        if entries == self._last:
            return True
        block = [f"# BEGIN {MARK} {self.tag} (managed; removed when it stops)"]
        block += [f"{ip} {' '.join(names)}" for ip, names in entries]
        block.append(f"# END {MARK} {self.tag}")
        ok = self._rewrite(block)
        if ok:
            self._last = list(entries)
        return ok

    def remove(self) -> None:
        """Remove this sandbox's block (and dead ones)."""
        if self.enabled and self._last is not None:
            self._rewrite([])
            self._last = None
