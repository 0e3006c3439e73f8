"""Graph rewrites done once at compile time, as ONNX Runtime's graph optimizations:

* ``fold_batch_norm``: a per-channel affine (eval batch norm) right after a convolution,
  transposed convolution or 2-d linear layer is folded into its weights and bias;
* ``fuse_silu``: x·sigmoid(x) becomes one SiLU activation;
* ``fuse_epilogues``: a residual add and an element-wise activation after a producer
  (convolution, linear, affine, normalization, binary arithmetic, matmul) run in the producer's
  epilogue: y = act(producer(...) [+ residual]).

Rewrites keep the graph's values: a fused node takes over the output value of the last node it
absorbs, so outputs and later readers need no renaming.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from .graph import Graph, Node

EPILOGUE_PRODUCERS = {"conv2d", "conv_transpose2d", "linear", "channel_affine", "normalize", "binary", "matmul"}
# activations the epilogue applies (the executor's FC_ACT_* codes)
ACTIVATIONS = {"clamp", "leaky", "elu", "sigmoid", "tanh", "silu", "gelu", "gelu_tanh", "hardswish",
               "hardsigmoid", "affine", "exp", "log", "sqrt", "abs", "pow", "rdiv", "rpow", "softplus", "mish"}


def _single_user(graph: Graph, users: Dict[int, List[Node]], vid: int) -> Optional[Node]:
    """The one node reading ``vid`` (once), unless it is also a graph output."""
    readers = users.get(vid, [])
    if len(readers) != 1 or vid in graph.outputs:
        return None
    return readers[0]


def _replace(graph: Graph, absorbed: Node, keeper: Node) -> None:
    """``keeper`` now computes ``absorbed``'s output; ``absorbed`` leaves the graph."""
    keeper.output = absorbed.output
    graph.nodes.remove(absorbed)


def fold_batch_norm(graph: Graph) -> int:
    """Fold channel affines into the preceding conv2d / conv_transpose2d / linear; returns how many."""
    folded = 0
    changed = True
    while changed:
        changed = False
        users = graph.consumers()
        producer = graph.producer()
        for node in list(graph.nodes):
            if node.op != "channel_affine":
                continue
            p = producer.get(node.inputs[0])
            if p is None or p.op not in ("conv2d", "conv_transpose2d", "linear") or p.act or p.residual is not None:
                continue
            if _single_user(graph, users, p.output) is not node:
                continue
            if p.op == "linear" and len(graph.values[p.output].shape) != 2:
                continue  # the affine's channel axis is 1, a linear layer's features the last axis
            mean, scale, shift = (graph.values[v].data.astype(np.float64) for v in node.inputs[1:4])
            weight = graph.values[p.inputs[1]].data.astype(np.float64)
            bias = graph.values[p.inputs[2]].data.astype(np.float64) if len(p.inputs) > 2 else 0.0
            if p.op == "conv_transpose2d":
                groups = p.attrs["geometry"][8]
                cin, kg = weight.shape[0], weight.shape[1]
                w = weight.reshape(groups, cin // groups, kg, *weight.shape[2:])
                w = w * scale.reshape(groups, 1, kg, *([1] * (weight.ndim - 2)))
                weight = w.reshape(weight.shape)
            else:
                weight = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
            bias = (bias - mean) * scale + shift
            p.inputs = [p.inputs[0], graph.const(weight.astype(np.float32)).id,
                        graph.const(bias.astype(np.float32)).id]
            p.act, p.residual = node.act, node.residual
            _replace(graph, node, p)
            folded += 1
            changed = True
            break
    graph.prune()
    return folded


def fuse_silu(graph: Graph) -> int:
    """x·sigmoid(x) → silu(x) (and sigmoid(x)·x); returns how many."""
    fused = 0
    users = graph.consumers()
    producer = graph.producer()
    for node in list(graph.nodes):
        if node.op != "binary" or node.attrs.get("op") != "mul" or node.act or node.residual is not None:
            continue
        a, b = node.inputs
        for x, s in ((a, b), (b, a)):
            sig = producer.get(s)
            if (sig is not None and sig.op == "act" and sig.act and sig.act[0] == "sigmoid"
                    and sig.inputs[0] == x and _single_user(graph, users, s) is node
                    and graph.values[x].shape == graph.values[node.output].shape):
                sig.act = ("silu", 0.0, 0.0)
                _replace(graph, node, sig)
                fused += 1
                break
    return fused


def fuse_epilogues(graph: Graph) -> int:
    """Move residual adds and activations into their producers' epilogues; returns how many."""
    fused = 0
    changed = True
    while changed:
        changed = False
        users = graph.consumers()
        for p in list(graph.nodes):
            if p.op not in EPILOGUE_PRODUCERS or p.act is not None:
                continue
            nxt = _single_user(graph, users, p.output)
            if nxt is None:
                continue
            shape = graph.values[p.output].shape
            is_add = nxt.op == "binary" and nxt.attrs.get("op") == "add" and nxt.residual is None
            if p.residual is None and is_add and (nxt.act is None or nxt.act[0] in ACTIVATIONS):
                other = nxt.inputs[1] if nxt.inputs[0] == p.output else nxt.inputs[0]
                if other == p.output or graph.values[other].shape != shape or graph.values[nxt.output].shape != shape:
                    continue
                # the residual must exist when the producer runs: run the producer right before the add
                graph.nodes.remove(p)
                graph.nodes.insert(graph.nodes.index(nxt), p)
                p.residual = other
                p.act = nxt.act
                _replace(graph, nxt, p)
            elif nxt.op == "act" and nxt.act and nxt.act[0] in ACTIVATIONS and nxt.residual is None \
                    and graph.values[nxt.output].shape == shape:
                p.act = nxt.act
                _replace(graph, nxt, p)
            else:
                continue
            fused += 1
            changed = True
            break
    return fused


def optimize(graph: Graph) -> Dict[str, int]:
    """Every rewrite, in order; returns how many of each were made."""
    counts = {"batch_norm_folded": fold_batch_norm(graph), "silu_fused": fuse_silu(graph)}
    counts["epilogues_fused"] = fuse_epilogues(graph)
    graph.prune()
    return counts
