"""Optimizers (SGD, Adam, AdamW, Adagrad, RMSprop, Adadelta) and learning-rate schedulers, with PyTorch's
names and update rules."""
from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta", "lr_scheduler"]
