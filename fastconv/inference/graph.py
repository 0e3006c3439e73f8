"""The predictor's graph: values (computed, inputs, constants) and the nodes computing them.

Sizes that depend on the batch are ``Affine`` (const + slope·N): the forward is traced at two
batch sizes and every integer that differs between the traces (value shapes, reshape targets,
normalization layouts, ...) is fitted exactly, so a plan for any batch size is evaluated
without the model. Node attributes are plain JSON-able trees (ints, floats, bools, strings,
None, lists, dicts) whose ints may be Affine; ``resolve`` evaluates them at a batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._affine import Affine


class GraphError(ValueError):
    """A model the compiled predictor cannot represent (an unsupported operation, a constant
    that changes with the batch, ...); the message names the operation and the module."""


def fit(v1: Any, v2: Any, b1: int, b2: int, what: str) -> Any:
    """The attribute tree seen as ``v1`` at batch b1 and ``v2`` at b2, with every int that
    differs fitted as an Affine (anything else must be equal)."""
    if isinstance(v1, bool) or v1 is None or isinstance(v1, str):
        if v1 != v2 or type(v1) is not type(v2):
            raise GraphError(f"{what} changes with the batch size ({v1!r} at batch {b1}, {v2!r} at {b2})")
        return v1
    if isinstance(v1, int) and isinstance(v2, int) and not isinstance(v2, bool):
        if v1 == v2:
            return v1
        slope, rest = divmod(v2 - v1, b2 - b1)
        if rest:
            raise GraphError(f"{what} is not linear in the batch size ({v1} at batch {b1}, {v2} at {b2})")
        return Affine(v1 - slope * b1, slope)
    if isinstance(v1, float) and isinstance(v2, float):
        if not (v1 == v2 or (math.isnan(v1) and math.isnan(v2))):
            raise GraphError(f"{what} changes with the batch size ({v1!r} at batch {b1}, {v2!r} at {b2})")
        return v1
    if isinstance(v1, list) and isinstance(v2, list) and len(v1) == len(v2):
        return [fit(a, b, b1, b2, what) for a, b in zip(v1, v2)]
    if isinstance(v1, dict) and isinstance(v2, dict) and v1.keys() == v2.keys():
        return {k: fit(v1[k], v2[k], b1, b2, what) for k in v1}
    raise GraphError(f"{what} changes with the batch size ({v1!r} at batch {b1}, {v2!r} at {b2})")


def resolve(tree: Any, batch: int) -> Any:
    """``tree`` with every Affine evaluated at ``batch``."""
    if isinstance(tree, Affine):
        return tree.at(batch)
    if isinstance(tree, list):
        return [resolve(v, batch) for v in tree]
    if isinstance(tree, tuple):
        return tuple(resolve(v, batch) for v in tree)
    if isinstance(tree, dict):
        return {k: resolve(v, batch) for k, v in tree.items()}
    return tree


def to_json(tree: Any) -> Any:
    """A JSON-ready copy: Affine as {"affine": [const, slope]}, floats that JSON cannot hold
    (inf, nan) as {"float": repr}."""
    if isinstance(tree, Affine):
        return {"affine": [tree.const, tree.slope]}
    if isinstance(tree, float) and not math.isfinite(tree):
        return {"float": repr(tree)}
    if isinstance(tree, (list, tuple)):
        return [to_json(v) for v in tree]
    if isinstance(tree, dict):
        return {"map": [[k, to_json(v)] for k, v in tree.items()]}
    return tree


def from_json(tree: Any, where: str) -> Any:
    """The inverse of ``to_json`` (malformed input is a ValueError naming ``where``)."""
    if isinstance(tree, list):
        return [from_json(v, where) for v in tree]
    if isinstance(tree, dict):
        if set(tree) == {"affine"} and isinstance(tree["affine"], list) and len(tree["affine"]) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) for v in tree["affine"]):
            return Affine(*tree["affine"])
        if set(tree) == {"float"} and tree["float"] in ("inf", "-inf", "nan"):
            return float(tree["float"])
        if set(tree) == {"map"} and isinstance(tree["map"], list) and all(
                isinstance(kv, list) and len(kv) == 2 and isinstance(kv[0], str) for kv in tree["map"]):
            return {k: from_json(v, where) for k, v in tree["map"]}
        raise ValueError(f"{where}: malformed attribute {tree!r}")
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise ValueError(f"{where}: malformed attribute {tree!r}")


@dataclass
class Value:
    """A tensor of the graph: computed by a node, a graph input, or a constant (``data``)."""

    id: int
    shape: Tuple[Any, ...]            # ints and Affine
    data: Optional[np.ndarray] = None  # constants only

    @property
    def is_const(self) -> bool:
        return self.data is not None

    def shape_at(self, batch: int) -> Tuple[int, ...]:
        return tuple(resolve(list(self.shape), batch))


@dataclass
class Node:
    """One operation: ``op`` of the input values (constants included) gives ``output``; a fused
    epilogue then makes it act(output [+ residual]) (``act``: (name, a0, a1) or None)."""

    op: str
    inputs: List[int]
    output: int
    attrs: Dict[str, Any] = field(default_factory=dict)
    scope: str = ""
    act: Optional[Tuple[str, float, float]] = None
    residual: Optional[int] = None

    def reads(self) -> List[int]:
        """Every value the node reads: its inputs and the residual."""
        return self.inputs + ([self.residual] if self.residual is not None else [])

    def where(self) -> str:
        return f"{self.op} in '{self.scope}'" if self.scope else self.op


@dataclass
class Graph:
    values: Dict[int, Value]
    nodes: List[Node]
    inputs: List[int]
    outputs: List[int]
    output_structure: Any = None  # "tensor" or a nested list of output positions

    _next: int = 0

    def new_value(self, shape: Sequence[Any], data: Optional[np.ndarray] = None) -> Value:
        self._next = max(self._next, max(self.values, default=-1) + 1)
        value = Value(self._next, tuple(shape), data)
        self.values[value.id] = value
        self._next += 1
        return value

    def const(self, array: np.ndarray) -> Value:
        array = np.ascontiguousarray(array)
        return self.new_value(array.shape, array)

    def consumers(self) -> Dict[int, List[Node]]:
        """value id → the nodes reading it (a node reading it twice appears twice)."""
        users: Dict[int, List[Node]] = {}
        for node in self.nodes:
            for v in node.reads():
                users.setdefault(v, []).append(node)
        return users

    def producer(self) -> Dict[int, Node]:
        return {node.output: node for node in self.nodes}

    def prune(self) -> None:
        """Drop nodes whose outputs nothing needs and values nothing references."""
        needed = set(self.outputs)
        kept = []
        for node in reversed(self.nodes):
            if node.output in needed:
                kept.append(node)
                needed.update(node.reads())
        self.nodes = kept[::-1]
        self.values = {k: v for k, v in self.values.items() if k in needed or k in self.inputs}
