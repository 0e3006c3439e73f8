"""2-D convolution and transposed convolution (NCHW).

The public ops validate their arguments (ops.py) and record a Function (function.py) whose
passes — forward, input gradient, weight gradient — each run on a path the planner
(planner.py) picks among the registered ones (registry.py): im2col + GEMM and its shallow
variant (path_gemm.py), Winograd F(2×2, 3×3) (path_winograd.py), implicit GEMM
(path_implicit.py), output-channel-vectorized loops (path_ocvec.py), depthwise loops
(path_depthwise.py) and pointwise GEMMs (path_pointwise.py). ``fastconv.backends.conv`` holds the
public switches."""
from . import path_gemm, path_winograd, path_implicit, path_ocvec, path_depthwise, path_pointwise  # noqa: F401  (registration)
from . import planner, registry
from .function import Conv2dFunction, ConvTranspose2dFunction
from .geometry import ConvGeometry, ConvProblem
from .ops import conv2d, conv_transpose2d

__all__ = ["conv2d", "conv_transpose2d", "Conv2dFunction", "ConvTranspose2dFunction", "ConvGeometry",
           "ConvProblem", "planner", "registry"]
