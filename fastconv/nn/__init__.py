"""Neural-network building blocks."""
from . import functional
from . import init
from . import utils
from .module import Module, Parameter
from .modules import *  # noqa: F401,F403 - the layer classes (see modules.__all__)
from .modules import __all__ as _modules_all
from .modules import fusion
from .finetune import freeze, unfreeze
from .blueprint import BlueprintWarning, blueprint
from .convert import output_stride, to_fully_convolutional
