"""Learning-rate schedulers producing PyTorch's lr sequences; state_dicts hold plain numbers and lists.

Epoch-based schedulers are chainable like PyTorch's: each ``step()`` derives the new lr from the
group's current lr, so a change made to ``group['lr']`` by hand (or by another scheduler) carries on.
The constructor's initial step (``_is_initial``) and ``step(epoch)`` (closed form, deprecated with
PyTorch's warning) follow torch 2.13's LRScheduler, so sequences, resumes with ``last_epoch`` and
compositions (SequentialLR, ChainedScheduler) give the same lrs.
"""
from __future__ import annotations

import math
import numbers
import warnings
from bisect import bisect_right
from collections import Counter
from typing import Callable, List, Optional, Sequence, Union

from .optimizer import Optimizer, _plain, check_option

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being deprecated where possible. "
    "Please use `scheduler.step()` to step the scheduler. During the deprecation, if epoch is different from "
    "None, the closed form is used instead of the new chainable form, where available.")


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
        self._initial_step()

    _is_initial = False  # True during the constructor's step (PyTorch's _initial_mode)

    def _initial_step(self) -> None:
        """Reset the step count and take the constructor's step (it sets the epoch-0 lrs, or keeps the
        current ones when resuming with ``last_epoch``)."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> List[float]:
        """The lrs for ``self.last_epoch`` (chainable form, from the groups' current lrs)."""
        raise NotImplementedError

    def _get_closed_form_lr(self) -> List[float]:
        """The lrs for ``self.last_epoch`` computed from ``base_lrs`` alone (used by ``step(epoch)``)."""
        return self.get_lr()

    def step(self, epoch: Union[int, None] = None) -> None:
        """Advance one epoch (or jump to ``epoch``, using the closed form) and update the lrs."""
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: Optional[int] = None) -> None:
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



_LRScheduler = LRScheduler  # the name older PyTorch code subclasses


class LambdaLR(LRScheduler):
    """lr = base_lr · lr_lambda(epoch); one function, or one per param group."""

    _unsaved = ("lr_lambdas",)

    def __init__(self, optimizer: Optimizer, lr_lambda: Union[Callable[[int], float], Sequence[Callable]],
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer, "LambdaLR")
        self.lr_lambdas = _lambdas(optimizer, lr_lambda, "LambdaLR")
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
        if self._is_initial:
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
        if self._is_initial:
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

    def step(self, metrics, epoch: Optional[int] = None) -> None:
        """Record this epoch's metric (a number or a one-element Tensor/array) and reduce lrs if stalled.

        ``epoch`` (deprecated in PyTorch, with its warning) sets the epoch counter instead of advancing it.
        """
        try:
            current = float(metrics)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"ReduceLROnPlateau: expected metrics as a number, got {metrics!r}") from exc
        if epoch is None:
            self.last_epoch += 1
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
            self.last_epoch = _check_int("ReduceLROnPlateau", "epoch", epoch, 0)
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


def _lambdas(optimizer: Optimizer, lr_lambda, op: str) -> list:
    n = len(optimizer.param_groups)
    if isinstance(lr_lambda, (list, tuple)):
        if len(lr_lambda) != n:
            raise ValueError(f"{op}: expected {n} lr_lambdas (one per param group), got {len(lr_lambda)}")
        fns = list(lr_lambda)
    else:
        fns = [lr_lambda] * n
    for fn in fns:
        if not callable(fn):
            raise TypeError(f"{op}: expected lr_lambda to be callable, got {fn!r}")
    return fns


class MultiplicativeLR(LRScheduler):
    """Multiply the lr by ``lr_lambda(epoch)`` every epoch (one function, or one per param group)."""

    _unsaved = ("lr_lambdas",)

    def __init__(self, optimizer: Optimizer, lr_lambda, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer, "MultiplicativeLR")
        self.lr_lambdas = _lambdas(optimizer, lr_lambda, "MultiplicativeLR")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        groups = self.optimizer.param_groups
        if self._is_initial:
            return [g["lr"] for g in groups]
        return [g["lr"] * float(fn(self.last_epoch)) for fn, g in zip(self.lr_lambdas, groups)]


def _factor(op: str, name: str, value, open_low: bool = False) -> float:
    """A multiplicative factor in [0, 1] ((0, 1] with ``open_low``), PyTorch's condition."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: expected {name} as a real number, got {value!r}")
    if value > 1.0 or (value <= 0 if open_low else value < 0):
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise ValueError(f"{op}: expected {name} in {interval}, got {value!r}")
    return float(value)


class ConstantLR(LRScheduler):
    """lr = base_lr·factor for the first ``total_iters`` epochs, then base_lr (a warm-up plateau)."""

    def __init__(self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1) -> None:
        self.factor = _factor("ConstantLR", "factor", factor)
        self.total_iters = _check_int("ConstantLR", "total_iters", total_iters, 0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [g["lr"] * self.factor for g in groups]
        if self.last_epoch != self.total_iters:
            return [g["lr"] for g in groups]
        return [g["lr"] * (1.0 / self.factor) for g in groups]

    def _get_closed_form_lr(self) -> List[float]:
        done = self.last_epoch >= self.total_iters
        return [base * (self.factor + done * (1 - self.factor)) for base in self.base_lrs]


class LinearLR(LRScheduler):
    """lr moves linearly from base_lr·start_factor to base_lr·end_factor over ``total_iters`` epochs."""

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1) -> None:
        self.start_factor = _factor("LinearLR", "start_factor", start_factor, open_low=True)
        self.end_factor = _factor("LinearLR", "end_factor", end_factor)
        self.total_iters = _check_int("LinearLR", "total_iters", total_iters, 1)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [g["lr"] * self.start_factor for g in groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return [g["lr"] for g in groups]
        span = self.end_factor - self.start_factor
        ratio = 1.0 + span / (self.total_iters * self.start_factor + (self.last_epoch - 1) * span)
        return [g["lr"] * ratio for g in groups]

    def _get_closed_form_lr(self) -> List[float]:
        t = min(self.total_iters, self.last_epoch)
        return [base * (self.start_factor + (self.end_factor - self.start_factor) * t / self.total_iters)
                for base in self.base_lrs]


class PolynomialLR(LRScheduler):
    """lr = base_lr·(1 − epoch/total_iters)^power, then 0 (decays to zero over ``total_iters`` epochs)."""

    def __init__(self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1) -> None:
        self.total_iters = _check_int("PolynomialLR", "total_iters", total_iters, 1)
        check_option("PolynomialLR", "power", power)
        self.power = float(power)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        groups = self.optimizer.param_groups
        if self._is_initial or self.last_epoch > self.total_iters:
            return [g["lr"] for g in groups]
        t, n = self.last_epoch, self.total_iters
        decay = ((1.0 - t / n) / (1.0 - (t - 1) / n)) ** self.power
        return [g["lr"] * decay for g in groups]

    def _get_closed_form_lr(self) -> List[float]:
        t = min(self.total_iters, self.last_epoch)
        return [base * (1.0 - t / self.total_iters) ** self.power for base in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR (Loshchilov & Hutter 2017): cosine from base_lr to eta_min over T_i epochs, then restart,
    with T_0, T_0·T_mult, T_0·T_mult², ... ``step(epoch)`` accepts fractional epochs
    (``scheduler.step(epoch + i / iters)`` inside an epoch), as in PyTorch."""

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        op = "CosineAnnealingWarmRestarts"
        self.T_0 = _check_int(op, "T_0", T_0, 1)
        self.T_i = self.T_0
        self.T_mult = _check_int(op, "T_mult", T_mult, 1)
        if isinstance(eta_min, bool) or not isinstance(eta_min, numbers.Real):
            raise TypeError(f"{op}: expected eta_min as a real number, got {eta_min!r}")
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        lo = self.eta_min
        return [lo + (base - lo) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2 for base in self.base_lrs]

    def step(self, epoch: Union[float, None] = None) -> None:
        """Advance one epoch, or go to ``epoch`` (a float allowed) and derive the cycle from it."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real) or epoch < 0:
                raise ValueError(f"CosineAnnealingWarmRestarts: expected a non-negative epoch, got {epoch!r}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]


def _per_group(name: str, optimizer: Optimizer, value) -> list:
    """One value per param group (PyTorch's _format_param)."""
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"OneCycleLR: {name} must have the same length as optimizer.param_groups: {name} has "
                             f"{len(value)} values, param_groups has {n}")
        return list(value)
    return [value] * n


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin 2018), stepped once per batch: the lr rises from
    max_lr/div_factor to max_lr over ``pct_start`` of ``total_steps`` (cos or linear), then falls to
    initial_lr/final_div_factor (``three_phase``: back to initial_lr first, then down). With
    ``cycle_momentum`` the momentum (SGD/RMSprop) or beta1 (Adam) moves inversely between
    ``max_momentum`` and ``base_momentum``. Stepping past ``total_steps`` is a ValueError."""

    def __init__(self, optimizer: Optimizer, max_lr, total_steps: Optional[int] = None,
                 epochs: Optional[int] = None, steps_per_epoch: Optional[int] = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True, base_momentum=0.85,
                 max_momentum=0.95, div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False, last_epoch: int = -1) -> None:
        op = "OneCycleLR"
        _check_optimizer(optimizer, op)
        self.optimizer = optimizer
        if total_steps is not None:
            self.total_steps = _check_int(op, "total_steps", total_steps, 1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (_check_int(op, "epochs", epochs, 1)
                                * _check_int(op, "steps_per_epoch", steps_per_epoch, 1))
        else:
            raise ValueError(f"{op}: you must define either total_steps OR (epochs AND steps_per_epoch)")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"{op}: expected pct_start as a float between 0 and 1, got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{op}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self._anneal_func_type = anneal_strategy
        up_end = float(pct_start * self.total_steps) - 1
        if three_phase:
            self._schedule_phases = [
                dict(end_step=up_end, start_lr="initial_lr", end_lr="max_lr", start_momentum="max_momentum",
                     end_momentum="base_momentum"),
                dict(end_step=float(2 * pct_start * self.total_steps) - 2, start_lr="max_lr", end_lr="initial_lr",
                     start_momentum="base_momentum", end_momentum="max_momentum"),
                dict(end_step=self.total_steps - 1, start_lr="initial_lr", end_lr="min_lr",
                     start_momentum="max_momentum", end_momentum="max_momentum")]
        else:
            self._schedule_phases = [
                dict(end_step=up_end, start_lr="initial_lr", end_lr="max_lr", start_momentum="max_momentum",
                     end_momentum="base_momentum"),
                dict(end_step=self.total_steps - 1, start_lr="max_lr", end_lr="min_lr",
                     start_momentum="base_momentum", end_momentum="max_momentum")]
        max_lrs = _per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for lr, group in zip(max_lrs, optimizer.param_groups):
                group["initial_lr"] = lr / div_factor
                group["max_lr"] = lr
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(f"{op}: optimizer must support momentum or beta1 with `cycle_momentum` option "
                                 f"enabled ({type(optimizer).__name__} has neither)")
            self.use_beta1 = "betas" in optimizer.defaults
            max_momentums = _per_group("max_momentum", optimizer, max_momentum)
            base_momentums = _per_group("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for high, low, group in zip(max_momentums, base_momentums, optimizer.param_groups):
                    if self.use_beta1:
                        group["betas"] = (high, *group["betas"][1:])
                    else:
                        group["momentum"] = high
                    group["max_momentum"] = high
                    group["base_momentum"] = low
        super().__init__(optimizer, last_epoch)

    def _anneal_func(self, start: float, end: float, pct: float) -> float:
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> List[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step} times; the specified number of total steps is "
                             f"{self.total_steps}")
        lrs = []
        phases = self._schedule_phases
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, phase in enumerate(phases):
                end = phase["end_step"]
                if step <= end or i == len(phases) - 1:
                    pct = (step - start) / (end - start)
                    lr = self._anneal_func(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    if self.cycle_momentum:
                        momentum = self._anneal_func(group[phase["start_momentum"]], group[phase["end_momentum"]],
                                                     pct)
                    break
                start = end
            lrs.append(lr)
            if self.cycle_momentum:
                if self.use_beta1:
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum
        return lrs


def _check_members(schedulers, optimizer, op: str) -> list:
    schedulers = list(schedulers)
    if not schedulers:
        raise ValueError(f"{op}: expected at least one scheduler, got none")
    for i, sched in enumerate(schedulers):
        if isinstance(sched, ReduceLROnPlateau):
            raise ValueError(f"{op}: ReduceLROnPlateau (at index {i}) is not supported, its step() needs a metric")
        if not hasattr(sched, "optimizer"):
            raise TypeError(f"{op}: the scheduler at index {i} has no `optimizer` attribute")
        if sched.optimizer is not optimizer:
            raise ValueError(f"{op}: expected all schedulers to belong to the same optimizer, the "
                             f"{type(sched).__name__} at index {i} has another one")
    return schedulers


class _Composite(LRScheduler):
    """state_dict/load_state_dict of a scheduler made of schedulers (their states nested as a list)."""

    def state_dict(self) -> dict:
        state = {k: _plain(v) for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        nested = state.pop("_schedulers")
        super().load_state_dict(state)
        for sched, sub in zip(self._schedulers, nested):
            sched.load_state_dict(sub)


class SequentialLR(_Composite):
    """Run ``schedulers[0]`` until ``milestones[0]``, then ``schedulers[1]`` (restarted at its epoch 0), ...
    e.g. a LinearLR warm-up followed by CosineAnnealingLR."""

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler], milestones: Sequence[int],
                 last_epoch: int = -1) -> None:
        op = "SequentialLR"
        _check_optimizer(optimizer, op)
        schedulers = _check_members(schedulers, optimizer, op)
        milestones = [_check_int(op, "milestone", m, 0) for m in milestones]
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"{op}: expected one milestone fewer than schedulers, got {len(schedulers)} schedulers "
                             f"and {len(milestones)} milestones")
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:  # undo what the schedulers' constructors did
            group["lr"] = group["initial_lr"]
        self._recursive_undo()
        idx = bisect_right(milestones, 0)
        schedulers[idx]._initial_step()
        self._last_lr = schedulers[idx].get_last_lr()

    def _recursive_undo(self, sched=None) -> None:
        scheds = self if sched is None else sched
        if hasattr(scheds, "_schedulers"):
            for s in scheds._schedulers:
                self._recursive_undo(s)
        elif hasattr(scheds, "last_epoch"):
            scheds.last_epoch -= 1

    def step(self) -> None:
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        sched = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            sched._update_lr(0)
        else:
            sched.step()
        self._last_lr = sched.get_last_lr()


class ChainedScheduler(_Composite):
    """Step every scheduler in turn at each ``step()`` (their factors compose, e.g. a warm-up times a decay)."""

    def __init__(self, schedulers: Sequence[LRScheduler], optimizer: Optional[Optimizer] = None) -> None:
        op = "ChainedScheduler"
        schedulers = list(schedulers)
        if not schedulers:
            raise ValueError(f"{op}: expected at least one scheduler to chain, got none")
        optimizer = optimizer or schedulers[0].optimizer
        self._schedulers = _check_members(schedulers, optimizer, op)
        self.optimizer = optimizer
        self._last_lr = [float(g["lr"]) for g in self._schedulers[-1].optimizer.param_groups]

    def step(self) -> None:
        for sched in self._schedulers:
            sched.step()
        self._last_lr = [float(g["lr"]) for g in self._schedulers[-1].optimizer.param_groups]


__all__ = ["LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
           "ExponentialLR", "PolynomialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "OneCycleLR",
           "SequentialLR", "ChainedScheduler", "ReduceLROnPlateau"]
