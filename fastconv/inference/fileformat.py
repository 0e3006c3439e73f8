"""The predictor file: one pickle-free ``.npz`` written by ``fastconv.save`` (atomically).

It holds a dict: ``format`` ("fastconv-predictor"), ``version``, ``graph`` (the graph as a JSON
string: values with their shapes, nodes with their attributes, inputs, outputs) and
``constants`` (value id as a string → float32 array). Loading reads it with ``fastconv.load``
(no pickle, bounded reader) and checks every field before building anything, so a damaged or
foreign file is a ValueError naming the file.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Tuple

import numpy as np

from .graph import Graph, Node, Value, from_json, to_json

FORMAT = "fastconv-predictor"
VERSION = 1
OPS = {"conv2d", "conv_transpose2d", "linear", "matmul", "channel_affine", "normalize", "act", "binary",
       "softmax", "reduce", "reshape", "transpose", "slice", "concat", "pad", "max_pool2d", "avg_pool2d",
       "adaptive_avg_pool2d", "adaptive_max_pool2d", "interpolate", "expand"}


def save(graph: Graph, info: dict, path) -> None:
    from ..serialization import save as fc_save

    document = {
        "values": [{"id": v.id, "shape": to_json(list(v.shape)), "const": v.is_const}
                   for v in graph.values.values()],
        "nodes": [{"op": n.op, "inputs": n.inputs, "output": n.output, "attrs": to_json(n.attrs), "scope": n.scope,
                   "act": to_json(list(n.act)) if n.act else None, "residual": n.residual} for n in graph.nodes],
        "inputs": graph.inputs, "outputs": graph.outputs, "output_structure": graph.output_structure,
        "info": info,
    }
    # packed convolution weights are stored as their original layout (np.asarray unpacks them)
    constants = {str(v.id): np.ascontiguousarray(v.data) for v in graph.values.values() if v.is_const}
    fc_save({"format": FORMAT, "version": VERSION, "graph": json.dumps(document), "constants": constants}, path)


def _fail(where: str, what: str) -> ValueError:
    return ValueError(f"inference.load: {where} is not a valid fastconv predictor file: {what}")


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def load(path) -> Tuple[Graph, dict]:
    from ..serialization import load as fc_load

    where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else repr(path)
    obj = fc_load(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise _fail(where, "no 'format': 'fastconv-predictor' entry (was it written by Predictor.save?)")
    if obj.get("version") != VERSION:
        raise _fail(where, f"version {obj.get('version')!r}; this fastconv reads version {VERSION}")
    try:
        document = json.loads(obj["graph"])
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise _fail(where, f"unreadable graph ({exc})") from None
    constants = obj.get("constants")
    if not isinstance(document, dict) or not isinstance(constants, dict):
        raise _fail(where, "malformed graph or constants")
    try:
        return _graph(document, constants, where), dict(document.get("info") or {})
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise _fail(where, f"malformed graph ({type(exc).__name__}: {exc})") from None


def _graph(document: Dict[str, Any], constants: Dict[str, Any], where: str) -> Graph:
    values: Dict[int, Value] = {}
    for record in document["values"]:
        vid = record["id"]
        if not _int(vid) or vid in values:
            raise _fail(where, f"bad value id {vid!r}")
        shape = tuple(from_json(record["shape"], where))
        data = None
        if record["const"]:
            data = constants.get(str(vid))
            if not isinstance(data, np.ndarray) or data.dtype != np.float32 or tuple(data.shape) != shape:
                raise _fail(where, f"constant {vid} is missing or not a float32 array of shape {shape}")
        values[vid] = Value(vid, shape, data)
    nodes = []
    for record in document["nodes"]:
        op = record["op"]
        if op not in OPS:
            raise _fail(where, f"unknown operation {op!r}")
        inputs, output, residual = record["inputs"], record["output"], record["residual"]
        refs = list(inputs) + [output] + ([residual] if residual is not None else [])
        if not isinstance(inputs, list) or any(not _int(v) or v not in values for v in refs):
            raise _fail(where, f"{op} refers to unknown values")
        act = record["act"]
        if act is not None:
            act = from_json(act, where)
            if not (isinstance(act, list) and len(act) == 3 and isinstance(act[0], str)):
                raise _fail(where, f"bad activation {act!r}")
            act = (act[0], float(act[1]), float(act[2]))
        attrs = from_json(record["attrs"], where)
        if not isinstance(attrs, dict):
            raise _fail(where, f"bad attributes of {op}")
        nodes.append(Node(op, list(inputs), output, attrs, str(record["scope"]), act, residual))
    inputs, outputs = document["inputs"], document["outputs"]
    if not inputs or any(not _int(v) or v not in values for v in list(inputs) + list(outputs)):
        raise _fail(where, "bad inputs or outputs")
    written = set(inputs) | {v for v, val in values.items() if val.is_const}
    for node in nodes:  # every node reads only what is known by then
        if any(v not in written for v in node.reads()):
            raise _fail(where, f"{node.where()} reads a value before it is computed")
        written.add(node.output)
    if any(v not in written for v in outputs):
        raise _fail(where, "an output is never computed")
    structure = document["output_structure"]
    return Graph(values, nodes, list(inputs), list(outputs), structure)
