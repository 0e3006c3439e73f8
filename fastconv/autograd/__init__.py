"""The define-by-run tape: Function, backward engine, grad modes, gradcheck."""
from .function import Context, Function
from .grad_mode import (
    enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad, set_grad_enabled,
)
from .gradcheck import GradcheckError, gradcheck

__all__ = [
    "Context", "Function", "enable_grad", "inference_mode", "is_grad_enabled", "is_inference_mode_enabled",
    "no_grad", "set_grad_enabled", "gradcheck", "GradcheckError",
]
