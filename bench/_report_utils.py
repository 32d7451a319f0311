"""Small pieces several benchmark scripts share; imports no other bench module."""

from __future__ import annotations

import argparse
import json
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_keeping_logs(
    run: Callable[[argparse.Namespace, Path], dict[str, Any]],
    args: argparse.Namespace,
    prefix: str,
) -> dict[str, Any]:
    """``run(args, tmp)`` in a temporary directory; its ``*.log`` files go to ``--log-dir``."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        try:
            return run(args, Path(tmp))
        finally:
            if args.log_dir:
                args.log_dir.mkdir(parents=True, exist_ok=True)
                for log in Path(tmp).glob("*.log"):
                    (args.log_dir / log.name).write_bytes(log.read_bytes())


def execute_request(msg_id: str) -> str:
    """The JSON text of a shell-channel ``execute_request`` running ``1``."""
    header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "jovyan"}
    header.update({"session": uuid.uuid4().hex, "version": "5.3", "date": ""})
    content = {"code": "1", "silent": False, "store_history": False, "user_expressions": {}}
    content.update({"allow_stdin": False, "stop_on_error": True})
    message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
    message.update({"channel": "shell", "buffers": []})
    return json.dumps(message)


def is_execute_reply(raw: str | bytes, msg_id: str) -> bool:
    """Whether a websocket message is the ``execute_reply`` to ``msg_id``."""
    msg = json.loads(raw)
    return bool(
        msg["header"]["msg_type"] == "execute_reply"
        and msg["parent_header"].get("msg_id") == msg_id
    )
