"""Compatibility names: these pieces moved to ``_measure`` and ``_gateway_client``."""

from __future__ import annotations

from _gateway_client import execute_request, is_execute_reply
from _measure import run_keeping_logs

__all__ = ["execute_request", "is_execute_reply", "run_keeping_logs"]
