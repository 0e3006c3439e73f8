"""The convolution paths as a registry: each path declares, per pass, when it can run, how it
runs and what it allocates; the planner (planner.py) chooses among the eligible ones.

A pass is one of PASSES: the forward, the input gradient (dX) and the weight gradient (dW,
with db when the path computes it alongside). Each pass of one call may take a different
path. A path module defines a ConvPath subclass and registers one instance at import."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from .geometry import ConvProblem

PASSES = ("forward", "grad_input", "grad_weight")


class ConvPath:
    """One way to compute conv2d's passes. Subclasses override what they support.

    Arrays handed to the passes are C-contiguous and of the problem's dtype; ``weight`` is
    (K, C/groups, kh, kw). Each pass allocates and returns its outputs."""

    name: str = ""
    #: heuristic preference when measuring is off: higher wins among eligible paths whose
    #: ``preferred`` says yes; ties go to registration order
    priority: int = 0

    def eligible(self, problem: ConvProblem, pass_: str) -> bool:
        """Whether this path computes ``pass_`` of ``problem`` at all (correctness, not speed)."""
        raise NotImplementedError

    def worth_measuring(self, problem: ConvProblem, pass_: str) -> bool:
        """Whether the planner should time this path for ``pass_`` (bounds planning: a path far
        outside the shapes it was built for can take many times the best one's time)."""
        return True

    def preferred(self, problem: ConvProblem, pass_: str) -> bool:
        """The cheap heuristic: whether this path should run ``pass_`` when nothing is measured
        (the planner takes the eligible preferred path of highest priority)."""
        return False

    def forward(self, x: np.ndarray, weight: np.ndarray, bias: Optional[np.ndarray],
                problem: ConvProblem) -> np.ndarray:
        raise NotImplementedError

    def grad_input(self, weight: np.ndarray, dy: np.ndarray, problem: ConvProblem) -> np.ndarray:
        raise NotImplementedError

    def grad_weight(self, x: np.ndarray, dy: np.ndarray, problem: ConvProblem,
                    need_db: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """(dW in the weight's shape, db or None when the path does not compute it here)."""
        raise NotImplementedError

    def backward(self, x, weight, dy, problem: ConvProblem, need_dx: bool, need_dw: bool,
                 need_db: bool):
        """(dx, dw, db) when both gradient passes take this path; paths with one kernel for
        both override it. db may be None (the caller sums dY)."""
        dx = self.grad_input(weight, dy, problem) if need_dx else None
        dw, db = self.grad_weight(x, dy, problem, need_db) if need_dw else (None, None)
        return dx, dw, db

    def workspace_bytes(self, problem: ConvProblem, pass_: str, need_db: bool = False) -> int:
        """Transient bytes ``pass_`` allocates beyond its outputs (y, dX, dW, db); for the
        weight gradient ``need_db`` says whether db is wanted too."""
        return 0


_PATHS: Dict[str, ConvPath] = {}


def register(path: ConvPath) -> ConvPath:
    """Add ``path`` under its name (a later registration of the same name replaces it)."""
    if not path.name:
        raise ValueError("conv path: expected a name")
    _PATHS[path.name] = path
    return path


def get(name: str) -> ConvPath:
    try:
        return _PATHS[name]
    except KeyError:
        raise ValueError(f"conv planner: unknown path {name!r}; known paths: {', '.join(_PATHS)}") from None


def names() -> Tuple[str, ...]:
    return tuple(_PATHS)


def eligible(problem: ConvProblem, pass_: str):
    """The registered paths that can compute ``pass_`` of ``problem``, in registration order."""
    return [path for path in _PATHS.values() if path.eligible(problem, pass_)]
