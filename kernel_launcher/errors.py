"""The one exception type the launcher raises for mistakes a user can fix, and its exit codes.

Every module raises ``LauncherError`` with a message that says what is wrong *and* how to fix
it; ``cli.main`` turns it into exactly one ERROR log line and a non-zero exit, no traceback.
Anything else escaping is a bug in the launcher and keeps its traceback.
"""

from __future__ import annotations

#: Configuration (flags, env) is missing or malformed; nothing was started.
EXIT_CONFIG = 2
#: The connection info could not be delivered to the gateway within the retry limit.
EXIT_UNDELIVERED = 3
#: The port range has no room for the six ports the launcher needs.
EXIT_NO_PORTS = 4
#: The kernel's argv[0] exists but cannot be executed (shell convention).
EXIT_NOT_EXECUTABLE = 126
#: The kernel's argv[0] was not found (shell convention).
EXIT_NOT_FOUND = 127


class LauncherError(Exception):
    """A problem the user can fix; ``str(error)`` is the single line that is logged."""

    def __init__(self, message: str, exit_code: int = EXIT_CONFIG) -> None:
        super().__init__(message)
        self.exit_code = exit_code
