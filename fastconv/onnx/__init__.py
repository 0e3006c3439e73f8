"""ONNX export and import.

``export(model, example_input, path, opset_version=17, dynamic_batch=True)`` traces a model's
forward and writes an ONNX file that ONNX Runtime runs with fastconv's outputs;
``load(path)`` builds a trainable fastconv Module from an ONNX graph (parameters from its
initializers, a forward that executes the graph with fastconv's operations).

The ``onnx`` package is imported only inside these functions: ``pip install "fastconv[onnx]"``.
"""
from ._export import export
from ._graph import ExportError
from ._import import OnnxModule, load

__all__ = ["export", "load", "OnnxModule", "ExportError"]
