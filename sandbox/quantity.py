"""Kubernetes resource quantities ("500m", "32Gi", "2") and pod resource requests.

Used by the scheduler (does a pod fit the node?) and the kubelet (node capacity, and
``resourceFieldRef`` env values). Quantities are held as :class:`fractions.Fraction` so that
"100m" CPU adds up exactly.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

_SUFFIXES: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(?:[eE]([+-]?[0-9]+))?(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$")


def parse_quantity(value: Any) -> Fraction:
    """Parse a quantity string or number; raise ValueError when it is not one."""
    if isinstance(value, bool):
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    if isinstance(value, (int, float)):
        return Fraction(str(value))
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(
            f"quantities must match the regular expression "
            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {text!r}"
        )
    number, exponent, suffix = match.groups()
    result = Fraction(number) * _SUFFIXES[suffix]
    if exponent:
        result *= Fraction(10) ** int(exponent)
    return result


def format_cpu_millis(value: Fraction) -> str:
    """Format a CPU amount the way the API server does ("500m", "2")."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{math.ceil(value * 1000)}m"


def container_requests(container: dict[str, Any]) -> dict[str, Fraction]:
    """A container's requests; a resource with only a limit requests its limit (API defaulting)."""
    resources = container.get("resources") or {}
    result: dict[str, Fraction] = {}
    for name, value in (resources.get("limits") or {}).items():
        result[name] = parse_quantity(value)
    for name, value in (resources.get("requests") or {}).items():
        result[name] = parse_quantity(value)
    return result


def pod_requests(pod: dict[str, Any]) -> dict[str, Fraction]:
    """Effective pod requests: sum over containers, at least the largest init container."""
    spec = pod.get("spec") or {}
    total: dict[str, Fraction] = {}
    for container in spec.get("containers") or []:
        for name, amount in container_requests(container).items():
            total[name] = total.get(name, Fraction(0)) + amount
    for container in spec.get("initContainers") or []:
        for name, amount in container_requests(container).items():
            total[name] = max(total.get(name, Fraction(0)), amount)
    for name, value in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, Fraction(0)) + parse_quantity(value)
    return total
