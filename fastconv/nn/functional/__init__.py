"""Functional ops (PyTorch names and arguments): each validates in Python, then runs a Function."""
from .activation import elu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
