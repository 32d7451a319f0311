"""Finding an executable a pod running as another user can actually run.

Used by the kubelet (:mod:`.kubelet`) for containers with ``securityContext.runAsUser``. A real
node runs them inside an image built for that user; here they run host binaries, which may
live under a directory the user cannot enter. On our machines the Python that both virtualenvs
are built from lives under ``/root`` (mode 0700), so a non-root kernel pod could not start its
interpreter at all.

:func:`find_executable` searches ``PATH`` as the target user would (directories it cannot
traverse are skipped, as ``execvp`` would skip them) and reports the first directory blocking
the executable or its ``#!`` interpreter. With ``grant=True`` (the kubelet default, switched off
by ``elastic-jupyter-sandbox up --no-grant-traverse``) the kubelet then adds the *traverse* bit
for others (``o+x``, never read or write) to each blocking directory and logs a warning naming
it; without it the container fails with ``StartError`` ... ``permission denied``, as it would
on a node.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def _allowed(st: os.stat_result, uid: int, gids: set[int], bit: int) -> bool:
    """Whether ``uid`` (with groups ``gids``) has permission ``bit`` (4 r, 2 w, 1 x)."""
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & (bit << 6))
    if st.st_gid in gids:
        return bool(st.st_mode & (bit << 3))
    return bool(st.st_mode & bit)


def blocking_dir(path: Path, uid: int, gids: set[int]) -> Path | None:
    """The first directory on the way to ``path`` (symlinks resolved) ``uid`` cannot enter."""
    target = Path(os.path.realpath(path))
    for parent in reversed(target.parents):
        try:
            st = parent.stat()
        except OSError:
            return None
        if not _allowed(st, uid, gids, 1):
            return parent
    return None


def _interpreter(path: Path) -> Path | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    return Path(words[0].decode(errors="replace")) if words else None


def find_executable(
    command: str, search_path: str, uid: int, gids: set[int]
) -> tuple[Path | None, list[Path]]:
    """Resolve ``command`` for ``uid``: (executable or None, directories blocking it).

    The search prefers PATH entries the user can traverse; when the only match sits behind a
    blocked directory, that match is returned with the blockers so the caller can decide.
    """
    candidates: list[Path] = []
    if "/" in command:
        candidates.append(Path(command))
    else:
        for entry in search_path.split(os.pathsep):
            if entry:
                candidates.append(Path(entry) / command)
    fallback: tuple[Path, list[Path]] | None = None
    for candidate in candidates:
        try:
            st = candidate.stat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
            continue
        blockers = []
        for needed in (candidate, _interpreter(candidate)):
            if needed is None:
                continue
            blocker = blocking_dir(needed, uid, gids)
            if blocker is not None:
                blockers.append(blocker)
        if not blockers:
            return candidate, []
        if fallback is None:
            fallback = (candidate, blockers)
    if fallback is not None:
        return fallback
    return None, []


def untraversable_parents(path: Path) -> list[Path]:
    """The directories above ``path`` (symlinks resolved) that other users cannot enter.

    The kubelet puts every pod's files (env, volumes, logs) under its state directory, so a
    pod running as a non-root user must traverse each of them, like a node's ``/var/lib``.
    """
    target = Path(os.path.realpath(path))
    blocked = []
    for parent in reversed(target.parents):
        try:
            if not parent.stat().st_mode & stat.S_IXOTH:
                blocked.append(parent)
        except OSError:
            break
    return blocked


def grant_traverse(directory: Path, below: str = "the executables below it") -> None:
    """Add ``o+x`` to a directory so other users may pass through it (not list or read it)."""
    mode = directory.stat().st_mode
    if mode & stat.S_IXOTH:
        return
    directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    log.warning(
        "granted traverse permission (o+x) on %s so that pods running as non-root users can "
        "reach %s (turn off with --no-grant-traverse)",
        directory,
        below,
    )
