"""Checks of values read from params.yaml: each returns the value or raises a ParamsError that
names the key (``params.yaml: runs.ptb.training.lr: expected ...``).

Shared by pipeline/config.py and the sections it does not parse itself (``scaleout:`` in
pipeline/cluster/config.py, ``search:`` in pipeline/search/core.py), so that every message has
one form.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import ParamsError


def fail(where: str, message: str) -> ParamsError:
    return ParamsError(f"params.yaml: {where}: {message}")


def as_mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise fail(where, f"expected a mapping, got {value!r}")
    return value


def require(d: dict, key: str, where: str) -> Any:
    if key not in d:
        raise fail(f"{where}.{key}" if where else key, "missing")
    return d[key]


def check_known(d: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(d) - known)
    if unknown:
        raise fail(f"{where}.{unknown[0]}", f"unknown key (known keys: {', '.join(sorted(known))})")


def choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise fail(where, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def as_int(
    value: Any, where: str, minimum: int = 1, allow_none: bool = False, maximum: int | None = None
) -> int | None:
    if value is None and allow_none:
        return None
    in_range = isinstance(value, int) and value >= minimum and (maximum is None or value <= maximum)
    if isinstance(value, bool) or not in_range:
        kind = "an integer" + (" or null" if allow_none else "")
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise fail(where, f"expected {kind} {bounds}, got {value!r}")
    return value


def as_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise fail(where, f"expected true or false, got {value!r}")
    return value


def as_float(value: Any, where: str, low: float, high: float, low_open: bool = False, high_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise fail(where, f"expected a number in {interval}, got {value!r}{_yaml_number_hint(value)}")
    return value


def _yaml_number_hint(value: Any) -> str:
    """YAML 1.1 reads 1e-3 (no dot in the mantissa) as a string: say so instead of just 'got '1e-3''."""
    if not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    return f" (a string: YAML reads an exponent without a decimal point as text; write {number!r})"
