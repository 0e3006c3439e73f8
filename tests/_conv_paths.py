"""Test helpers over the convolution path registry: force a path on or off, ask the planner."""
from fastconv.nn.functional.conv import common, path_gemm, path_ocvec, planner
from fastconv.nn.functional.conv.geometry import problem_from_shapes
from fastconv.nn.functional.conv.registry import PASSES


def switch(monkeypatch, name: str, value) -> None:
    """``value`` True: every pass runs path ``name`` where eligible; False: never; None: the
    planner decides (undoes either)."""
    forced = {p: n for p, n in planner.settings.forced.items() if n != name}
    disabled = planner.settings.disabled - {name}
    if value is True:
        forced.update({p: name for p in PASSES})
    elif value is False:
        disabled = disabled | {name}
    monkeypatch.setattr(planner.settings, "forced", forced)
    monkeypatch.setattr(planner.settings, "disabled", disabled)


def chosen(image_shape, weight_shape, geometry, dtype="float32", pass_="forward") -> str:
    """The path the planner would run for ``pass_`` of this call now."""
    return planner.choose(problem_from_shapes(image_shape, weight_shape, geometry, dtype), pass_)[0]


def dx_as_conv(image_shape, out_channels, geometry) -> bool:
    weight_shape = (out_channels, image_shape[1], geometry.kh, geometry.kw)
    return path_ocvec.dx_as_conv(problem_from_shapes(image_shape, weight_shape, geometry, "float32"))


__all__ = ["switch", "chosen", "chosen_path", "dx_as_conv", "common", "path_gemm", "planner", "PASSES"]


def chosen_path(image_shape, weight_shape, geometry, dtype="float32"):
    """(forward path, None): the shape of the planner's answer the older tests index."""
    return chosen(image_shape, weight_shape, geometry, dtype), None
