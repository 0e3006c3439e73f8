"""Learning-rate schedulers producing PyTorch's lr sequences; state_dicts hold plain numbers and lists.

Epoch-based schedulers are chainable like PyTorch's: each ``step()`` derives the new lr from the
group's current lr, so a change made to ``group['lr']`` by hand (or by another scheduler) carries on.
"""
from __future__ import annotations

import math
import numbers
from bisect import bisect_right
from collections import Counter
from typing import Callable, List, Sequence, Union

from .optimizer import Optimizer, _plain, check_option


def _check_optimizer(optimizer, op: str) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{op}: expected a fastconv.optim.Optimizer, got {type(optimizer).__name__}")


def _check_int(op: str, name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: expected {name} as an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{op}: expected {name} >= {minimum}, got {value!r}")
    return int(value)


class _PlainState:
    """state_dict()/load_state_dict(): every attribute but the optimizer, as plain numbers and lists."""

    _unsaved: tuple = ()

    def state_dict(self) -> dict:
        return {k: _plain(v) for k, v in self.__dict__.items() if k not in ("optimizer",) + self._unsaved}

    def load_state_dict(self, state_dict: dict) -> None:
        for key, value in state_dict.items():
            value = _plain(value)
            if hasattr(value, "tolist"):  # lists come back from fastconv.load as arrays
                value = value.tolist()
            setattr(self, key, value)


class LRScheduler(_PlainState):
    """Base class: ``step()`` advances ``last_epoch`` and writes ``get_lr()`` into the param groups."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        name = type(self).__name__
        _check_optimizer(optimizer, name)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"{name}: param 'initial_lr' is not specified in param_groups[{i}] when resuming "
                        f"with last_epoch={last_epoch}")
        self.base_lrs: List[float] = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self.step()

    def get_lr(self) -> List[float]:
        """The lrs for ``self.last_epoch`` (chainable form, from the groups' current lrs)."""
        raise NotImplementedError

    def _get_closed_form_lr(self) -> List[float]:
        """The lrs for ``self.last_epoch`` computed from ``base_lrs`` alone (used by ``step(epoch)``)."""
        return self.get_lr()

    def step(self, epoch: Union[int, None] = None) -> None:
        """Advance one epoch (or jump to ``epoch``, using the closed form) and update the lrs."""
        self._step_count += 1
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = _check_int(type(self).__name__, "epoch", epoch, 0)
            values = self._get_closed_form_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def get_last_lr(self) -> List[float]:
        """The lrs set by the last ``step()``."""
        return list(self._last_lr)



class LambdaLR(LRScheduler):
    """lr = base_lr · lr_lambda(epoch); one function, or one per param group."""

    _unsaved = ("lr_lambdas",)

    def __init__(self, optimizer: Optimizer, lr_lambda: Union[Callable[[int], float], Sequence[Callable]],
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer, "LambdaLR")
        n = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"LambdaLR: expected {n} lr_lambdas (one per param group), got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"LambdaLR: expected lr_lambda to be callable, got {fn!r}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        return [base * float(fn(self.last_epoch)) for base, fn in zip(self.base_lrs, self.lr_lambdas)]


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.step_size = _check_int("StepLR", "step_size", step_size, 1)
        check_option("StepLR", "gamma", gamma)
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        groups = self.optimizer.param_groups
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [g["lr"] for g in groups]
        return [g["lr"] * self.gamma for g in groups]

    def _get_closed_form_lr(self) -> List[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the lr by ``gamma`` at each milestone epoch (a repeated milestone applies gamma again)."""

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.milestones = sorted(_check_int("MultiStepLR", "milestone", m, 0) for m in milestones)
        check_option("MultiStepLR", "gamma", gamma)
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        groups = self.optimizer.param_groups
        hits = Counter(self.milestones)[self.last_epoch]
        if hits == 0:
            return [g["lr"] for g in groups]
        return [g["lr"] * self.gamma ** hits for g in groups]

    def _get_closed_form_lr(self) -> List[float]:
        passed = bisect_right(self.milestones, self.last_epoch)
        return [base * self.gamma ** passed for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the lr by ``gamma`` every epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        check_option("ExponentialLR", "gamma", gamma)
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [g["lr"] for g in groups]
        return [g["lr"] * self.gamma for g in groups]

    def _get_closed_form_lr(self) -> List[float]:
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr − eta_min)(1 + cos(π·epoch/T_max))/2 (SGDR without restarts).

    Past ``T_max`` the lr rises again along the same cosine, as in PyTorch.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        self.T_max = _check_int("CosineAnnealingLR", "T_max", T_max, 1)
        check_option("CosineAnnealingLR", "eta_min", eta_min)
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        groups = self.optimizer.param_groups
        t, T, lo = self.last_epoch, self.T_max, self.eta_min
        if t == 0:
            return [g["lr"] for g in groups]
        if self._step_count == 1 and t > 0:
            return [lo + (base - lo) * (1 + math.cos(t * math.pi / T)) / 2 for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [g["lr"] + (base - lo) * (1 - math.cos(math.pi / T)) / 2
                    for g, base in zip(groups, self.base_lrs)]
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [ratio * (g["lr"] - lo) + lo for g in groups]

    def _get_closed_form_lr(self) -> List[float]:
        t, T, lo = self.last_epoch, self.T_max, self.eta_min
        return [lo + (base - lo) * (1 + math.cos(math.pi * t / T)) / 2 for base in self.base_lrs]


class ReduceLROnPlateau(_PlainState):
    """Multiply the lr by ``factor`` once the metric has not improved for ``patience`` epochs.

    ``mode`` 'min' or 'max'; improvement is relative (``best·(1 ∓ threshold)``) or absolute
    (``best ∓ threshold``); after a reduction, ``cooldown`` epochs are not counted; lrs never go
    below ``min_lr`` and changes smaller than ``eps`` are skipped.
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: Union[float, Sequence[float]] = 0.0, eps: float = 1e-8) -> None:
        op = "ReduceLROnPlateau"
        _check_optimizer(optimizer, op)
        check_option(op, "factor", factor, 0.0, 1.0, open_max=True)
        if mode not in ("min", "max"):
            raise ValueError(f"{op}: expected mode 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{op}: expected threshold_mode 'rel' or 'abs', got {threshold_mode!r}")
        check_option(op, "threshold", threshold)
        check_option(op, "eps", eps)
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"{op}: expected {n} min_lrs (one per param group), got {len(min_lr)}")
            min_lrs = [float(m) for m in min_lr]
        else:
            min_lrs = [float(min_lr)] * n
        for m in min_lrs:
            check_option(op, "min_lr", m)
        self.optimizer = optimizer
        self.mode = mode
        self.factor = float(factor)
        self.patience = _check_int(op, "patience", patience, 0)
        self.threshold = float(threshold)
        self.threshold_mode = threshold_mode
        self.cooldown = _check_int(op, "cooldown", cooldown, 0)
        self.min_lrs = min_lrs
        self.eps = float(eps)
        self.last_epoch = 0
        self.cooldown_counter = 0
        self.num_bad_epochs = 0
        self.best = math.inf if mode == "min" else -math.inf
        self._last_lr = [float(g["lr"]) for g in optimizer.param_groups]

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def is_better(self, a: float, best: float) -> bool:
        """Whether metric ``a`` improves on ``best`` by more than the threshold."""
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            return a < (best * (1 - self.threshold) if rel else best - self.threshold)
        return a > (best * (1 + self.threshold) if rel else best + self.threshold)

    def step(self, metrics) -> None:
        """Record this epoch's metric (a number or a one-element Tensor/array) and reduce lrs if stalled."""
        try:
            current = float(metrics)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"ReduceLROnPlateau: expected metrics as a number, got {metrics!r}") from exc
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    def get_last_lr(self) -> List[float]:
        return list(self._last_lr)


__all__ = ["LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
           "ReduceLROnPlateau"]
