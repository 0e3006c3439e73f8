"""Plain-text tables: columns padded to their widest cell, numbers right-aligned."""
from __future__ import annotations

from typing import List, Sequence


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left_columns: int = 1) -> str:
    """Rows of strings under a header and a rule; the first ``left_columns`` are left-aligned."""
    table: List[Sequence[str]] = [list(headers)] + [list(r) for r in rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(headers))]

    def line(cells) -> str:
        out = []
        for i, (cell, w) in enumerate(zip(cells, widths)):
            out.append(str(cell).ljust(w) if i < left_columns else str(cell).rjust(w))
        return "  ".join(out).rstrip()

    rule = "-" * len(line(headers))
    return "\n".join([rule, line(headers), rule] + [line(r) for r in table[1:]] + [rule])
