"""The named tuples that PyTorch's value-and-index ops return (``torch.return_types``)."""
from __future__ import annotations

from collections import namedtuple

max = namedtuple("max", ["values", "indices"])  # noqa: A001 - PyTorch's names
min = namedtuple("min", ["values", "indices"])  # noqa: A001
sort = namedtuple("sort", ["values", "indices"])
topk = namedtuple("topk", ["values", "indices"])

for _t in (max, min, sort, topk):
    _t.__module__ = "fastconv.return_types"
