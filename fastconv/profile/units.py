"""Human units for bytes and counts, and parsing of byte budgets such as '512MB' or '1.5GiB'."""
from __future__ import annotations

import re
from typing import Union

import numpy as np

_DECIMAL = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
            "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_BINARY = {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_BUDGET = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_bytes(budget: Union[int, float, str], op: str = "parse_bytes") -> int:
    """Bytes from an int, or a string with a decimal (kB, MB, GB, TB) or binary (KiB, MiB, GiB, TiB) unit."""
    if isinstance(budget, bool):
        raise TypeError(f"{op}: expected a budget as bytes (int) or a string like '512MB', got {budget!r}")
    if isinstance(budget, (int, np.integer, float, np.floating)):
        value = float(budget)
    elif isinstance(budget, str):
        m = _BUDGET.match(budget)
        if not m:
            raise ValueError(f"{op}: expected a budget like '512MB', '2GB' or '1.5GiB', got {budget!r}")
        unit = m.group(2).upper()
        scale = _BINARY.get(unit, _DECIMAL.get(unit))
        if scale is None:
            raise ValueError(f"{op}: unknown unit {m.group(2)!r} in budget {budget!r} "
                             "(use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)")
        value = float(m.group(1)) * scale
    else:
        raise TypeError(f"{op}: expected a budget as bytes (int) or a string like '512MB', "
                        f"got {type(budget).__name__}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{op}: expected a positive budget, got {budget!r}")
    return int(value)


def format_bytes(n: int) -> str:
    """Bytes with a binary unit and three significant digits: '1.50 MiB'."""
    if abs(n) < 1024:
        return f"{int(n)} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if abs(value) < 1024 or unit == "TiB":
            break
    return f"{value:.3g} {unit}" if abs(value) < 100 else f"{value:.0f} {unit}"


def format_count(n: int) -> str:
    """A count with a decimal suffix: 1.23M, 4.56G (multiply-adds, parameters)."""
    value = float(n)
    for unit in ("", "K", "M", "G", "T"):
        if abs(value) < 1000 or unit == "T":
            return f"{int(value)}" if unit == "" else f"{value:.3g}{unit}"
        value /= 1000
    return f"{value:.3g}T"
