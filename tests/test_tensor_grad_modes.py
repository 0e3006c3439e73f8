"""Grad modes as in PyTorch: no_grad / enable_grad / inference_mode / set_grad_enabled as context
managers, decorators with and without parentheses, and set_grad_enabled as a plain call."""
import threading

import pytest

import fastconv as fc


def recorded(lib):
    x = lib.ones(2, requires_grad=True)
    return (x * 2).requires_grad


@pytest.mark.parametrize("name", ["no_grad", "inference_mode"])
def test_disabling_modes_in_every_form_like_torch(torch, name):
    for lib in (torch, fc):
        mode = getattr(lib, name)
        with mode():
            assert not recorded(lib)
        assert recorded(lib)

        @mode
        def bare():
            return recorded(lib)

        @mode()
        def called():
            return recorded(lib)

        assert bare() is False and called() is False and recorded(lib)
        assert bare.__name__ == "bare"
    with fc.inference_mode():
        assert fc.is_inference_mode_enabled() and not fc.is_grad_enabled()
    assert not fc.is_inference_mode_enabled()
    with fc.inference_mode(False):
        assert recorded(fc)


def test_set_grad_enabled_as_call_context_and_decorator_like_torch(torch):
    for lib in (torch, fc):
        with lib.set_grad_enabled(False):
            assert not recorded(lib)
        assert recorded(lib)
        lib.set_grad_enabled(False)                 # a plain call switches at once
        try:
            assert not recorded(lib)
            with lib.set_grad_enabled(True):
                assert recorded(lib)
            assert not recorded(lib)
        finally:
            lib.set_grad_enabled(True)
        for phase in ("train", "val"):              # the transfer-learning tutorial's loop
            with lib.set_grad_enabled(phase == "train"):
                assert recorded(lib) == (phase == "train")

        @lib.set_grad_enabled(False)
        def off():
            return recorded(lib)

        assert off() is False and recorded(lib)
    with pytest.raises(TypeError, match="set_grad_enabled: expected a bool"):
        fc.set_grad_enabled("no")


def test_enable_grad_inside_no_grad_and_nesting_restores(torch):
    for lib in (torch, fc):
        with lib.no_grad():
            with lib.enable_grad():
                assert recorded(lib)

            @lib.enable_grad
            def inner():
                return recorded(lib)

            assert inner() is True and not recorded(lib)
        assert recorded(lib)


def test_decorated_function_restores_on_exception_and_grad_mode_is_per_thread():
    @fc.no_grad
    def boom():
        raise ValueError("x")

    with pytest.raises(ValueError):
        boom()
    assert fc.is_grad_enabled()
    seen = []
    with fc.no_grad():
        t = threading.Thread(target=lambda: seen.append(fc.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]
