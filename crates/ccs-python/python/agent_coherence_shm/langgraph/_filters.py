"""Search filters and namespace match conditions, with ``InMemoryStore``'s semantics.

The comparison rules are those of ``langgraph.store.memory`` (``_compare_values``,
``_apply_operator``, ``_does_match``): a filter maps fields to values (a nested dict matches
nested fields, a list matches element-wise) or to ``{"$op": operand}``; ``$gt``/``$gte``/``$lt``/
``$lte`` compare ``float(value)`` with ``float(operand)``, so ``True`` counts as 1, a numeric
string as its number, and a missing field raises ``TypeError`` exactly as there. One addition,
as the SQLite and Postgres stores have it: a field name absent from the value that contains dots
is read as a path (``"user.access-level"`` is ``value["user"]["access-level"]``).
"""

from __future__ import annotations

from typing import Any, Mapping

from langgraph.store.base import MatchCondition

_MISSING = object()


def field(value: Mapping[str, Any], name: str) -> Any:
    """``value[name]``, or the dotted path ``name``, or ``None``."""
    found = value.get(name, _MISSING)
    if found is not _MISSING:
        return found
    if "." not in name:
        return None
    current: Any = value
    for part in name.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def _apply_operator(value: Any, operator: str, operand: Any) -> bool:
    if operator == "$eq":
        return value == operand
    if operator == "$gt":
        return float(value) > float(operand)
    if operator == "$gte":
        return float(value) >= float(operand)
    if operator == "$lt":
        return float(value) < float(operand)
    if operator == "$lte":
        return float(value) <= float(operand)
    if operator == "$ne":
        return value != operand
    raise ValueError(f"Unsupported operator: {operator}")


def compare(actual: Any, wanted: Any) -> bool:
    """Whether ``actual`` matches filter value ``wanted``."""
    if isinstance(wanted, dict):
        if any(k.startswith("$") for k in wanted):
            return all(_apply_operator(actual, op, operand) for op, operand in wanted.items())
        if not isinstance(actual, dict):
            return False
        return all(compare(actual.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(actual, (list, tuple))
            and len(actual) == len(wanted)
            and all(compare(a, w) for a, w in zip(actual, wanted))
        )
    return actual == wanted


def matches(value: Any, filter: Mapping[str, Any] | None) -> bool:
    """Whether an item's value passes a search filter."""
    if not filter:
        return True
    return all(compare(field(value, name), wanted) for name, wanted in filter.items())


def namespace_matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    """Whether ``namespace`` meets a ``list_namespaces`` condition (``*`` is one label)."""
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path))
    else:
        raise ValueError(f"Unsupported match type: {condition.match_type}")
    return all(p == "*" or label == p for label, p in pairs)
