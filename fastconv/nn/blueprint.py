"""``blueprint``: build a Sequential from the lecture's architecture grammar, checking every layer tiles.

Grammar (names are case-insensitive; whitespace is free)::

    spec     := INPUT ( '->' element )+
    element  := ( layer | '[' element ( '->' element )* ']' ) ( '*' N | '?' )*
    layer    := NAME [ '(' arg ( ',' arg )* ')' ]      arg := value | key '=' value

``[...]*N`` repeats a group N >= 0 times (``*0`` removes it). ``X?`` marks an optional layer
or group (with ``*N`` too, each repetition is optional on its own): in a concrete spec it is built when it tiles the feature map it receives exactly
and silently skipped when it does not (the skip is listed in ``model.blueprint_skipped``). So
``INPUT -> [[CONV -> RELU]*2 -> POOL?]*3 -> FC`` on a 28x28 input pools 28 -> 14 -> 7 and skips
the third pool, which would leave a pixel of the 7x7 map unused.

Layers and defaults:

* ``CONV(filters=32, k=3, s=1, p=same)`` -> Conv2d. ``p=same`` means zero padding (k−1)/2 (the
  lecture's size-preserving choice for stride 1; PyTorch's asymmetric 'same' for even k); also
  ``p=valid`` or an int. Long names ``filters``/``kernel_size``/``stride``/``padding`` work too.
* ``POOL(max, k=2, s=k, p=0)`` -> MaxPool2d, ``POOL(avg, ...)`` -> AvgPool2d; the stride defaults to
  the window (so plain ``POOL`` is the lecture's F=2, S=2).
* ``FC(units)`` -> Linear, with a Flatten inserted before the first FC. Without an argument the last
  FC gets ``num_classes`` outputs and earlier ones 128.
* ``RELU``, ``LRELU(slope=0.01)``, ``ELU(alpha=1)``, ``TANH``, ``SIGMOID``; ``BN(eps=1e-5,
  momentum=0.1)`` -> BatchNorm2d on feature maps, BatchNorm1d after flattening;
  ``DROPOUT(p=0.5)``; ``GAP`` -> GlobalAvgPool2d followed by Flatten.

Checks: a window larger than its (padded) input, or a stride that leaves rows/columns unused, is a
ValueError naming the layer's position, its options and the sizes involved. Rules of thumb from
the lecture are BlueprintWarnings (also kept on ``model.blueprint_warnings``): an input size not
divisible by 2 many times, a stride-1 convolution with padding ≠ (F−1)/2, pooling windows larger
than 3 or strides larger than 2. A malformed spec is a ValueError showing the spec with a caret
under the offending token.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .module import Module
from .modules import (
    ELU, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool2d, LeakyReLU, Linear,
    MaxPool2d, ReLU, Sequential, Sigmoid, Tanh,
)

DEFAULT_FILTERS = 32
DEFAULT_HIDDEN_UNITS = 128


class BlueprintWarning(UserWarning):
    """A rule of thumb from the lecture is not followed (the network still builds)."""


# ---- tokens -------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<arrow>->)|(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[\[\]\(\),=*?]))")


@dataclass
class _Token:
    kind: str  # 'arrow', 'num', 'name', 'punct', 'end'
    text: str
    pos: int


def _pointer(spec: str, pos: int, message: str) -> ValueError:
    return ValueError(f"blueprint: {message} at column {pos + 1}:\n  {spec}\n  {' ' * pos}^")


def _tokenize(spec: str) -> List[_Token]:
    tokens, pos = [], 0
    while True:
        while pos < len(spec) and spec[pos].isspace():
            pos += 1
        if pos == len(spec):
            tokens.append(_Token("end", "end of spec", pos))
            return tokens
        m = _TOKEN.match(spec, pos)
        if m is None or m.end() == pos:
            raise _pointer(spec, pos, f"unexpected character {spec[pos]!r}")
        kind = m.lastgroup
        start = m.start(kind)
        tokens.append(_Token(kind, m.group(kind), start))
        pos = m.end()


# ---- syntax tree ----------------------------------------------------------------------------------

@dataclass
class _Layer:
    name: str
    options: Dict[str, Any]
    explicit: set
    pos: int
    repeat: int = 1
    optional: bool = False


@dataclass
class _Group:
    items: List[Union["_Layer", "_Group"]]
    pos: int
    repeat: int = 1
    optional: bool = False


def _int_value(v, key):
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise TypeError(f"expected an integer for {key}")


def _positive(v, key):
    v = _int_value(v, key)
    if v < 1:
        raise TypeError(f"expected a positive integer for {key}")
    return v


def _nonneg(v, key):
    v = _int_value(v, key)
    if v < 0:
        raise TypeError(f"expected a non-negative integer for {key}")
    return v


def _padding(v, key):
    if isinstance(v, str) and v.lower() in ("same", "valid"):
        return v.lower()
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    raise TypeError(f"expected 'same', 'valid' or a non-negative integer for {key}")


def _pool_type(v, key):
    if isinstance(v, str) and v.lower() in ("max", "avg"):
        return v.lower()
    raise TypeError(f"expected 'max' or 'avg' for {key}")


def _number(v, key):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    raise TypeError(f"expected a number for {key}")


def _prob(v, key):
    v = _number(v, key)
    if not 0.0 <= v < 1.0:
        raise TypeError(f"expected a probability in [0, 1) for {key}")
    return v


# name -> (positional parameter names, {alias: parameter}, {parameter: (converter, default)})
_LAYERS: Dict[str, Tuple[Tuple[str, ...], Dict[str, str], Dict[str, Tuple[Any, Any]]]] = {
    "INPUT": ((), {}, {}),
    "CONV": (("filters", "k", "s", "p"),
             {"filters": "filters", "out": "filters", "out_channels": "filters", "k": "k", "kernel_size": "k",
              "f": "k", "s": "s", "stride": "s", "p": "p", "pad": "p", "padding": "p"},
             {"filters": (_positive, DEFAULT_FILTERS), "k": (_positive, 3), "s": (_positive, 1),
              "p": (_padding, "same")}),
    "POOL": (("type", "k", "s", "p"),
             {"type": "type", "mode": "type", "k": "k", "kernel_size": "k", "f": "k", "s": "s", "stride": "s",
              "p": "p", "pad": "p", "padding": "p"},
             {"type": (_pool_type, "max"), "k": (_positive, 2), "s": (_positive, None), "p": (_nonneg, 0)}),
    "FC": (("units",), {"units": "units", "out": "units", "out_features": "units"}, {"units": (_positive, None)}),
    "RELU": ((), {}, {}),
    "LRELU": (("slope",), {"slope": "slope", "negative_slope": "slope"}, {"slope": (_number, 0.01)}),
    "ELU": (("alpha",), {"alpha": "alpha"}, {"alpha": (_number, 1.0)}),
    "TANH": ((), {}, {}),
    "SIGMOID": ((), {}, {}),
    "BN": ((), {"eps": "eps", "momentum": "momentum"}, {"eps": (_number, 1e-5), "momentum": (_number, 0.1)}),
    "DROPOUT": (("p",), {"p": "p"}, {"p": (_prob, 0.5)}),
    "GAP": ((), {}, {}),
}


class _Parser:
    def __init__(self, spec: str):
        self.spec = spec
        self.tokens = _tokenize(spec)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def error(self, message: str, token: Optional[_Token] = None) -> ValueError:
        token = token or self.tok
        return _pointer(self.spec, token.pos, message)

    def expect(self, text: str, what: str) -> _Token:
        if self.tok.text != text:
            raise self.error(f"expected {what}, got {self._show(self.tok)}")
        tok = self.tok
        self.i += 1
        return tok

    @staticmethod
    def _show(tok: _Token) -> str:
        return tok.text if tok.kind == "end" else repr(tok.text)

    def parse(self) -> List[Union[_Layer, _Group]]:
        first = self.tok
        if first.kind != "name" or first.text.upper() != "INPUT":
            raise self.error(f"a spec starts with INPUT, got {self._show(first)}")
        self.i += 1
        if self.tok.kind == "end":
            raise self.error("expected '->' and at least one layer after INPUT")
        self.expect("->", "'->' after INPUT")
        items = self.sequence(stop="end")
        if self.tok.kind != "end":
            raise self.error(f"expected '->' or end of spec, got {self._show(self.tok)}")
        return items

    def sequence(self, stop: str) -> List[Union[_Layer, _Group]]:
        items = [self.element()]
        while self.tok.text == "->":
            self.i += 1
            items.append(self.element())
        if stop == "]" and self.tok.text != "]":
            raise self.error(f"expected '->' or ']' to close the group, got {self._show(self.tok)}")
        return items

    def element(self) -> Union[_Layer, _Group]:
        tok = self.tok
        if tok.text == "[":
            self.i += 1
            if self.tok.text == "]":
                raise self.error("empty group '[]'")
            node: Union[_Layer, _Group] = _Group(self.sequence(stop="]"), tok.pos)
            self.expect("]", "']'")
        elif tok.kind == "name":
            node = self.layer()
        else:
            raise self.error(f"expected a layer name or '[', got {self._show(tok)}")
        seen_repeat = seen_optional = False
        while self.tok.text in ("*", "?"):
            op = self.tok
            self.i += 1
            if op.text == "*":
                if seen_repeat:
                    raise self.error("repetition '*N' given twice", op)
                count = self.tok
                if count.kind != "num" or not count.text.isdigit():
                    raise self.error(f"expected a non-negative integer after '*', got {self._show(count)}")
                node.repeat = int(count.text)
                seen_repeat = True
                self.i += 1
            else:
                if seen_optional:
                    raise self.error("'?' given twice", op)
                node.optional = seen_optional = True
        return node

    def layer(self) -> _Layer:
        tok = self.tok
        name = tok.text.upper()
        if name not in _LAYERS:
            raise self.error(f"unknown layer {tok.text!r} (known: {', '.join(n for n in _LAYERS if n != 'INPUT')})")
        if name == "INPUT":
            raise self.error("INPUT may only appear at the start of the spec")
        self.i += 1
        positional, aliases, params = _LAYERS[name]
        raw: List[Tuple[Optional[_Token], Any, _Token]] = []
        if self.tok.text == "(":
            self.i += 1
            while True:
                raw.append(self.argument())
                if self.tok.text == ",":
                    self.i += 1
                    continue
                self.expect(")", f"',' or ')' in the options of {name}")
                break
        options: Dict[str, Any] = {}
        explicit = set()
        for index, (key, value, vtok) in enumerate(raw):
            if key is None:
                if any(k is not None for k, _, _ in raw[:index]):
                    raise self.error("positional option after a keyword option", vtok)
                if index >= len(positional):
                    limit = f"at most {len(positional)} positional option(s)" if positional else "no options"
                    raise self.error(f"{name} takes {limit}", vtok)
                param = positional[index]
            else:
                param = aliases.get(key.text.lower())
                if param is None:
                    known = ", ".join(sorted(aliases)) or "none"
                    raise self.error(f"unknown option {key.text!r} for {name} (known: {known})", key)
            if param in explicit:
                raise self.error(f"option {param!r} of {name} given twice", vtok)
            try:
                options[param] = params[param][0](value, f"{name} option {param!r}")
            except TypeError as exc:
                raise self.error(f"{exc}, got {vtok.text!r}", vtok) from None
            explicit.add(param)
        for param, (_, default) in params.items():
            options.setdefault(param, default)
        return _Layer(name, options, explicit, tok.pos)

    def argument(self) -> Tuple[Optional[_Token], Any, _Token]:
        tok = self.tok
        if tok.kind == "name" and self.tokens[self.i + 1].text == "=":
            self.i += 2
            value_tok = self.tok
            return tok, self.value(), value_tok
        return None, self.value(), tok

    def value(self):
        tok = self.tok
        if tok.kind == "num":
            self.i += 1
            return int(tok.text) if tok.text.isdigit() else float(tok.text)
        if tok.kind == "name":
            self.i += 1
            return tok.text
        raise self.error(f"expected an option value, got {self._show(tok)}")


# ---- expansion with tiling checks -------------------------------------------------------------------

class _TilingError(ValueError):
    """A layer whose window does not fit or whose stride leaves pixels unused."""


@dataclass
class _Planned:
    """One layer of the expanded architecture and the feature-map size it receives."""

    layer: _Layer
    in_hw: Optional[Tuple[int, int]]  # None once flattened
    number: int  # 1-based position among the layers (INPUT is layer 0)


def describe(layer: _Layer) -> str:
    """The layer with its effective options, e.g. ``POOL(max, k=3, s=2)``."""
    o = layer.options
    if layer.name == "CONV":
        return f"CONV({o['filters']}, k={o['k']}, s={o['s']}, p={o['p']})"
    if layer.name == "POOL":
        pad = f", p={o['p']}" if o["p"] else ""
        return f"POOL({o['type']}, k={o['k']}, s={o['s'] or o['k']}{pad})"
    if layer.name == "FC":
        return f"FC({o['units']})" if o["units"] is not None else "FC"
    if layer.name in ("DROPOUT", "LRELU", "ELU"):
        return f"{layer.name}({next(iter(o.values()))})"
    return layer.name


def _conv_padding(k: int, s: int, p) -> Union[int, str]:
    """'same' -> (k−1)/2 for odd k; for even k PyTorch's asymmetric 'same' (stride 1) or (k−1)//2."""
    if p == "same":
        return (k - 1) // 2 if k % 2 or s != 1 else "same"
    if p == "valid":
        return 0
    return p


def _window_output(layer: _Layer, number: int, hw: Tuple[int, int]) -> Tuple[int, int]:
    """Output size of a CONV/POOL layer, or a _TilingError naming the layer and the sizes involved."""
    o = layer.options
    k, s = o["k"], (o["s"] or o["k"])
    pad = _conv_padding(k, s, o["p"]) if layer.name == "CONV" else o["p"]
    if pad == "same":
        return hw
    out = []
    where = f"layer {number} {describe(layer)} on a {hw[0]}x{hw[1]} input"
    for axis, n in zip(("height", "width"), hw):
        span = n + 2 * pad - k
        if span < 0:
            raise _TilingError(f"{where}: the {k}x{k} window does not fit the {axis} "
                               f"({n} + 2·{pad} padding = {n + 2 * pad} < {k})")
        unused = span % s
        if unused:
            raise _TilingError(
                f"{where} leaves {unused} pixel{'s' if unused > 1 else ''} unused along the {axis}: "
                f"({n} + 2·{pad} − {k}) = {span} is not divisible by the stride {s}; change the padding, "
                f"window or stride, or the input size")
        out.append(span // s + 1)
    return tuple(out)


class _Expander:
    """Flattens groups and repetitions, resolves '?', and checks tiling along the way."""

    def __init__(self, spec: str):
        self.spec = spec
        self.planned: List[_Planned] = []
        self.skipped: List[str] = []

    def items(self, items, hw):
        for node in items:
            for _ in range(node.repeat):
                if not node.optional:
                    hw = self._node(node, hw)
                    continue
                mark, skipped_mark = len(self.planned), len(self.skipped)
                try:
                    hw = self._node(node, hw)
                except _TilingError as exc:
                    del self.planned[mark:], self.skipped[skipped_mark:]
                    what = describe(node) if isinstance(node, _Layer) else "group"
                    self.skipped.append(f"optional {what} at column {node.pos + 1} skipped: {exc}")
        return hw

    def _node(self, node, hw):
        if isinstance(node, _Group):
            return self.items(node.items, hw)
        number = len(self.planned) + 1
        name = node.name
        if name in ("CONV", "POOL", "GAP") and hw is None:
            raise _pointer(self.spec, node.pos, f"{name} needs a feature map but the features were already "
                                                "flattened (by an earlier FC or GAP)")
        self.planned.append(_Planned(node, hw, number))
        if name in ("CONV", "POOL"):
            try:
                return _window_output(node, number, hw)
            except _TilingError as exc:
                exc.pos = node.pos
                raise
        if name in ("GAP", "FC"):
            return None
        return hw


# ---- building ----------------------------------------------------------------------------------------

def _input_chw(input_shape) -> Tuple[int, int, int]:
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (shape is None or len(shape) not in (2, 3, 4)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
        raise ValueError(f"blueprint: expected input_shape as (C, H, W), (H, W) or (N, C, H, W) of positive "
                         f"ints, got {input_shape!r}")
    return (1,) + shape if len(shape) == 2 else shape[-3:]


def _twos(n: int) -> int:
    """How many times n can be halved exactly."""
    count = 0
    while n % 2 == 0:
        n //= 2
        count += 1
    return count


def _fc_units(planned: List[_Planned], num_classes: Optional[int], spec: str) -> Dict[int, int]:
    """Output size of each FC: explicit, num_classes for the last one, DEFAULT_HIDDEN_UNITS otherwise."""
    fcs = [p for p in planned if p.layer.name == "FC"]
    units = {}
    for p in fcs:
        given = p.layer.options["units"]
        if p is fcs[-1]:
            if given is None:
                if num_classes is None:
                    raise _pointer(spec, p.layer.pos, "the last FC has no size and num_classes is None; "
                                                      "write FC(n) or pass num_classes")
                given = num_classes
            elif num_classes is not None and given != num_classes:
                raise _pointer(spec, p.layer.pos, f"the last FC has {given} outputs but num_classes={num_classes}")
        units[p.number] = given if given is not None else DEFAULT_HIDDEN_UNITS
    return units


def _rule_of_thumb_warnings(planned: List[_Planned], chw: Tuple[int, int, int]) -> List[str]:
    found = []
    downsampling = sum(1 for p in planned if p.layer.name in ("CONV", "POOL")
                       and (p.layer.options["s"] or p.layer.options["k"]) > 1)
    needed = max(2, downsampling)
    _, h, w = chw
    if min(_twos(h), _twos(w)) < needed:
        found.append(f"input {h}x{w} is divisible by 2 only {min(_twos(h), _twos(w))} time(s); the lecture "
                     f"recommends sizes divisible by 2 many times (e.g. 32, 64, 96, 224) — here at least "
                     f"{needed} for {downsampling} downsampling layer(s)")
    for p in planned:
        o = p.layer.options
        if p.layer.name == "CONV" and o["s"] == 1:
            pad = _conv_padding(o["k"], 1, o["p"])
            if pad == "same":
                found.append(f"layer {p.number} {describe(p.layer)}: an even window has no symmetric padding "
                             f"(F−1)/2; prefer odd filter sizes (3, 5)")
            elif 2 * pad != o["k"] - 1:
                found.append(f"layer {p.number} {describe(p.layer)}: padding {pad} ≠ (F−1)/2 = "
                             f"{(o['k'] - 1) / 2:g} for a stride-1 convolution (the map shrinks)")
        if p.layer.name == "POOL":
            k, s = o["k"], o["s"] or o["k"]
            if k > 3 or s > 2:
                found.append(f"layer {p.number} {describe(p.layer)}: pooling windows larger than 3 or strides "
                             f"larger than 2 discard too much (the lecture's usual choices: k=2, s=2 or k=3, s=2)")
    return found


def _build_modules(planned: List[_Planned], chw, units: Dict[int, int]) -> Tuple[List[Module], Optional[int]]:
    """The layers, and the number of output features if the network ends flattened (else None)."""
    modules: List[Module] = []
    channels, flat = chw[0], None  # flat: number of features once flattened
    for p in planned:
        o, name = p.layer.options, p.layer.name
        if name == "CONV":
            pad = _conv_padding(o["k"], o["s"], o["p"])
            modules.append(Conv2d(channels, o["filters"], o["k"], stride=o["s"], padding=pad))
            channels = o["filters"]
        elif name == "POOL":
            cls = MaxPool2d if o["type"] == "max" else AvgPool2d
            modules.append(cls(o["k"], stride=o["s"] or o["k"], padding=o["p"]))
        elif name == "GAP":
            modules.extend([GlobalAvgPool2d(), Flatten()])
            flat = channels
        elif name == "FC":
            if flat is None:
                modules.append(Flatten())
                flat = channels * p.in_hw[0] * p.in_hw[1]
            modules.append(Linear(flat, units[p.number]))
            flat = units[p.number]
        elif name == "BN":
            cls, size = (BatchNorm2d, channels) if flat is None else (BatchNorm1d, flat)
            modules.append(cls(size, eps=o["eps"], momentum=o["momentum"]))
        elif name == "DROPOUT":
            modules.append(Dropout(o["p"]))
        elif name == "RELU":
            modules.append(ReLU())
        elif name == "LRELU":
            modules.append(LeakyReLU(o["slope"]))
        elif name == "ELU":
            modules.append(ELU(o["alpha"]))
        elif name == "TANH":
            modules.append(Tanh())
        elif name == "SIGMOID":
            modules.append(Sigmoid())
        else:  # pragma: no cover - the parser only admits the names above
            raise AssertionError(name)
    return modules, flat


def blueprint(spec: str, input_shape: Sequence[int], num_classes: Optional[int] = None) -> Sequential:
    """Build the network described by ``spec`` (see the module docstring) for ``input_shape``.

    ``input_shape`` is (C, H, W), (H, W) for one channel, or (N, C, H, W) (N is ignored).
    Returns a Sequential (Flatten inserted before the first FC) with ``blueprint_warnings``
    (rule-of-thumb messages, also issued as BlueprintWarning), ``blueprint_skipped`` (optional
    layers left out), ``blueprint_spec`` and ``blueprint_output_shape`` (per sample).
    """
    if not isinstance(spec, str):
        raise TypeError(f"blueprint: expected spec as a str, got {type(spec).__name__}")
    if num_classes is not None and (not isinstance(num_classes, int) or isinstance(num_classes, bool)
                                    or num_classes < 1):
        raise ValueError(f"blueprint: expected num_classes as a positive int or None, got {num_classes!r}")
    chw = _input_chw(input_shape)
    items = _Parser(spec).parse()
    expander = _Expander(spec)
    try:
        out_hw = expander.items(items, chw[1:])
    except _TilingError as exc:
        raise _pointer(spec, exc.pos, str(exc)) from None
    planned = expander.planned
    if not planned:
        raise ValueError(f"blueprint: {spec!r} builds no layer (every element repeated *0 or skipped)")
    units = _fc_units(planned, num_classes, spec)
    modules, flat = _build_modules(planned, chw, units)
    if flat is not None:
        out_shape: Tuple[int, ...] = (flat,)
    else:
        convs = [m for m in modules if isinstance(m, Conv2d)]
        out_shape = (convs[-1].out_channels if convs else chw[0],) + tuple(out_hw)
    model = Sequential(*modules)
    found = _rule_of_thumb_warnings(planned, chw)
    for message in found:
        warnings.warn(f"blueprint: {message}", BlueprintWarning, stacklevel=2)
    model.blueprint_warnings = found
    model.blueprint_skipped = list(expander.skipped)
    model.blueprint_spec = spec
    model.blueprint_output_shape = out_shape
    return model


__all__ = ["blueprint", "BlueprintWarning", "describe"]
