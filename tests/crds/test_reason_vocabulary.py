"""Status and Event reasons have one owner, :mod:`elastic_jupyter.crds`.

The operator writes reasons and the gateway plugin acts on them; when each side spelled its own
copy they drifted (``MissingTemplate`` against ``TemplateMissing``, different sets of reasons
that end a launch). This test reads the product's source and fails on any reason spelled as a
literal outside ``crds``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from elastic_jupyter import crds

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("operator", "gateway_plugin")

REASONS = {
    value
    for name, value in vars(crds).items()
    if name.startswith("REASON_") and isinstance(value, str)
}
# Words crds also owns as phases or condition types ("Running", "Pending", ...): a literal of
# these may be either, so only the structural checks below judge them.
OTHER_VOCABULARY = {
    value
    for name, value in vars(crds).items()
    if name.startswith(("PHASE_", "CONDITION_")) and isinstance(value, str)
}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _api_server_words(tree: ast.AST) -> set[int]:
    """Literals inside ``ApiError(...)``: the API server's own Status reasons, not ours."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "ApiError":
            ids.update(id(inner) for inner in ast.walk(node))
    return ids


def _is_str(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _is_token(node: ast.AST | None) -> bool:
    """A literal shaped like a reason (``CamelCase``), not prose such as an HTTP reason phrase."""
    return _is_str(node) and re.fullmatch(r"[A-Z][A-Za-z]+", node.value) is not None  # type: ignore[union-attr]


def _names_a_reason(target: ast.AST) -> bool:
    name = getattr(target, "id", "").lower()
    return name.endswith("reason") or name.startswith("reason_")


def _names_a_reason(target: ast.AST) -> bool:
    name = getattr(target, "id", "").lower()
    return name.endswith("reason") or name.startswith("reason_")


def _reason_targets(node: ast.Assign | ast.AnnAssign) -> Iterator[ast.AST]:
    """Values assigned to a variable named ``*reason`` or ``REASON_*`` (plain, annotated or in a
    tuple unpacking)."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    for target in targets:
        if _names_a_reason(target) and node.value is not None:
            yield node.value
        elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
            for element, value in zip(target.elts, node.value.elts):
                if _names_a_reason(element):
                    yield value


def literal_reasons(path: Path) -> list[str]:
    """``line: literal`` for every reason spelled in ``path`` instead of imported from crds."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree) | _api_server_words(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if _is_str(node) and id(node) not in skip:
            value = node.value  # type: ignore[attr-defined]
            if value in REASONS and value not in OTHER_VOCABULARY:
                found.append((node.lineno, value))  # type: ignore[attr-defined]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for value_node in _reason_targets(node):
                if _is_token(value_node):
                    found.append((value_node.lineno, value_node.value))  # type: ignore[attr-defined]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "condition"
            and len(node.args) > 2
        ):
            # conditions.condition(type, ok, reason, ...): a reason, possibly a conditional one
            for inner in ast.walk(node.args[2]):
                if _is_token(inner):
                    found.append((inner.lineno, inner.value))  # type: ignore[attr-defined]
        elif isinstance(node, ast.keyword) and node.arg == "reason" and _is_token(node.value):
            found.append((node.value.lineno, node.value.value))  # type: ignore[attr-defined]
        elif isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            # `self.reason or "Failed"`: a fallback reason
            first = node.values[0]
            named = getattr(first, "attr", getattr(first, "id", ""))
            if isinstance(named, str) and named.endswith("reason") and _is_token(node.values[-1]):
                found.append((node.values[-1].lineno, node.values[-1].value))  # type: ignore[attr-defined]
    return [f"{line}: {value}" for line, value in sorted(set(found))]


def _sources() -> list[Path]:
    return sorted(p for folder in PRODUCT for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reason_literal_outside_crds(path: Path) -> None:
    assert literal_reasons(path) == [], f"{path}: import these reasons from crds instead"


def test_the_scan_finds_a_spelled_reason(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""TemplateMissing in a docstring is prose."""\n'
        'a = "TemplateMissing"\n'
        'ready_reason, msg = "SomethingNew", "text"\n'
        'kopf_event(reason="AlsoNew")\n'
        'raise HTTPError(403, reason="Prose with spaces is an HTTP reason phrase")\n'
        'fallback = status.reason or "Fallback"\n'
        'phase = "Running"\n'
        'c = conditions.condition("Ready", ok, "Fine" if ok else crds.REASON_X, "text", now)\n'
        'raise ApiError(500, "Error", "the API server\'s own words")\n'
        'REASON_OWN: Final = "OwnCopy"\n'
    )
    assert literal_reasons(sample) == [
        "2: TemplateMissing",
        "3: SomethingNew",
        "4: AlsoNew",
        "6: Fallback",
        "8: Fine",
        "10: OwnCopy",
    ]
