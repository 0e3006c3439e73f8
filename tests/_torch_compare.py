"""Run one computation in fastconv and in PyTorch on the same float64 data and compare results and
gradients (the cotangent is a fixed random array per floating output)."""
import numpy as np

import fastconv as fc


def outputs(result):
    if isinstance(result, tuple):  # named tuples too
        return list(result)
    return [result]


def compare(fc_fn, torch_fn, arrays, torch, grad=True, rtol=1e-10, atol=1e-12, seed=0):
    """Apply both functions to tensors made from ``arrays`` (float arrays require grad when ``grad``)
    and assert equal outputs (values, dtypes) and equal input gradients."""
    ours_in = [fc.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    ours, theirs = outputs(fc_fn(*ours_in)), outputs(torch_fn(*theirs_in))
    assert len(ours) == len(theirs)
    rng = np.random.default_rng(seed)
    ours_loss, theirs_loss = None, None
    for o, t in zip(ours, theirs):
        expected = t.detach().numpy()
        assert o.shape == tuple(t.shape), (o.shape, tuple(t.shape))
        assert str(o.dtype) == str(t.dtype).replace("torch.", ""), (o.dtype, t.dtype)
        np.testing.assert_allclose(o.numpy(), expected, rtol=rtol, atol=atol)
        if grad and o.dtype.kind == "f" and t.requires_grad:
            v = rng.standard_normal(o.shape)
            term_o, term_t = (o * fc.tensor(v)).sum(), (t * torch.tensor(v)).sum()
            ours_loss = term_o if ours_loss is None else ours_loss + term_o
            theirs_loss = term_t if theirs_loss is None else theirs_loss + term_t
    if ours_loss is not None:
        ours_loss.backward()
        theirs_loss.backward()
        for o, t in zip(ours_in, theirs_in):
            if t.requires_grad:
                expected = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
                got = np.zeros(o.shape) if o.grad is None else o.grad.numpy()
                np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
    return ours, theirs
