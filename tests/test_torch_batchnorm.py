"""toymodels.torch.batchnorm.BatchNorm2d: the same function, buffers and first derivatives as
nn.BatchNorm2d; its second derivative (closed form in the module docstring, numba passes) equals
PyTorch's own double backward and passes gradgradcheck; GradAlign's parameter gradient through a BN
network is unchanged. Deterministic (fixed generators, float64 unless stated)."""
import pytest

torch = pytest.importorskip("torch")

from toymodels.torch import attacks  # noqa: E402
from toymodels.torch.batchnorm import (BatchNorm2d, _BNBackwardFn, _double_backward,  # noqa: E402
                                       double_backward_reference, use_fast_batchnorms)
from toymodels.torch.conv import twice_differentiable, use_fast_convs  # noqa: E402

F64 = torch.float64


def _inputs(shape, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)
    C = shape[1]
    x = (torch.randn(*shape, generator=g) * 2 + 1).to(dtype)
    gy = torch.randn(*shape, generator=g).to(dtype)
    w, v = torch.randn(C, generator=g).to(dtype), torch.randn(*shape, generator=g).to(dtype)
    gw, gb = torch.randn(C, generator=g).to(dtype), torch.randn(C, generator=g).to(dtype)
    return x, gy, w, v, gw, gb


def _torch_double_backward(x, gy, w, v, gw, gb, eps=1e-5):
    """PyTorch's own second derivative of training-mode batch_norm (the independent oracle)."""
    x, w, gy = x.clone().requires_grad_(), w.clone().requires_grad_(), gy.clone().requires_grad_()
    b = torch.zeros_like(w, requires_grad=True)
    out = torch.nn.functional.batch_norm(x, None, None, w, b, True, 0.1, eps)
    dx, dw, db = torch.autograd.grad(out, (x, w, b), gy, create_graph=True)
    return torch.autograd.grad((dx * v).sum() + (dw * gw).sum() + (db * gb).sum(), (gy, x, w))


def _stats(x, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    return x.mean(dims), 1 / torch.sqrt(x.var(dims, unbiased=False) + eps)


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (2, 6, 3, 7), (7, 2, 1, 1), (3, 4, 8)])
@pytest.mark.parametrize("upstream", ["all", "x-only"])
def test_closed_form_and_kernels_equal_pytorch_double_backward(shape, upstream):
    x, gy, w, v, gw, gb = _inputs(shape)
    if upstream == "x-only":                  # GradAlign's case: only the input gradient is differentiated
        gw, gb = torch.zeros_like(gw), torch.zeros_like(gb)
    want = _torch_double_backward(x, gy, w, v, gw, gb)
    mean, invstd = _stats(x)
    for got in (double_backward_reference(gy, x, w, mean, invstd, v, gw, gb),
                _double_backward(gy, x, w, mean, invstd, v, gw, gb)):
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


def test_float32_kernels_within_float32_rounding_of_float64():
    x, gy, w, v, gw, gb = _inputs((8, 16, 6, 6))
    want = double_backward_reference(gy, x, w, *_stats(x), v, gw, gb)
    x32, gy32, w32, v32, gw32, gb32 = (t.float() for t in (x, gy, w, v, gw, gb))
    got = _double_backward(gy32, x32, w32, *_stats(x32), v32, gw32, gb32)
    for a, b in zip(got, want):
        assert a.dtype == torch.float32
        # float64 sums of float32 data: the error is that of rounding the inputs (2^-24 relative)
        # amplified by the conditioning of the centred sums; 1e-4 of the largest entry is ample for this
        # size and fails for any wrong term (each term is O(1) of the largest)
        assert float((a.double() - b).abs().max()) <= 1e-4 * float(b.abs().max())


def test_gradcheck_of_the_second_derivative():
    """The recorded backward (g_y, x, γ) ↦ (g_x, g_γ, g_β), with the batch statistics recomputed from x,
    against finite differences: this checks the second derivative of BN (our backward of it)."""
    x, gy, w, *_ = _inputs((3, 2, 4, 4), seed=3)

    def fn(gy, x, w):
        m, s = _stats(x)                       # constants to the Function; their x-dependence is in its backward
        return _BNBackwardFn.apply(gy, x, w, m.detach(), s.detach(), 1e-5)

    args = tuple(t.clone().requires_grad_() for t in (gy, x, w))
    assert torch.autograd.gradcheck(fn, args)


def _pair(C=4, momentum=0.1, affine=True, track=True):
    torch.manual_seed(0)
    ref = torch.nn.BatchNorm2d(C, momentum=momentum, affine=affine, track_running_stats=track).to(F64)
    if affine:
        with torch.no_grad():
            ref.weight.uniform_(0.5, 1.5)
            ref.bias.uniform_(-0.5, 0.5)
    fast = torch.nn.BatchNorm2d(C, momentum=momentum, affine=affine, track_running_stats=track).to(F64)
    fast.load_state_dict(ref.state_dict())
    return ref, use_fast_batchnorms(fast)


def test_values_buffers_and_first_derivatives_bitwise_nn_batchnorm():
    ref, fast = _pair()
    assert type(fast) is BatchNorm2d and set(fast.state_dict()) == set(ref.state_dict())
    x = torch.randn(6, 4, 5, 5, dtype=F64, generator=torch.Generator().manual_seed(4), requires_grad=True)
    v = torch.randn(6, 4, 5, 5, dtype=F64)
    for _ in range(2):                                   # two steps: running statistics accumulate
        outs = []
        for m in (ref, fast):
            with twice_differentiable():
                out = m(x)
            outs.append([out.detach()] + list(torch.autograd.grad((out * v).sum(), [x, m.weight, m.bias])))
        for a, b in zip(*outs):
            assert torch.equal(a, b)
        for k in ("running_mean", "running_var", "num_batches_tracked"):
            assert torch.equal(getattr(ref, k), getattr(fast, k)), k


def test_falls_back_to_nn_batchnorm_outside_or_in_eval():
    ref, fast = _pair()
    x = torch.randn(3, 4, 2, 2, dtype=F64)
    assert "_BNFn" not in type(fast(x.requires_grad_()).grad_fn).__name__       # outside the context
    with twice_differentiable():
        assert "_BNFn" in type(fast(x).grad_fn).__name__
        fast.eval()
        assert "_BNFn" not in type(fast(x).grad_fn).__name__
        ref2, fast2 = _pair(momentum=None)                                    # cumulative average
        assert "_BNFn" not in type(fast2(x).grad_fn).__name__


def _bn_net():
    torch.manual_seed(5)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1, bias=False), torch.nn.BatchNorm2d(6), torch.nn.ReLU(),
        torch.nn.Conv2d(6, 6, 3, stride=2, padding=1, bias=False), torch.nn.BatchNorm2d(6), torch.nn.Softplus(),
        torch.nn.Flatten(), torch.nn.Linear(6 * 4 * 4, 5)).to(F64)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return net


@pytest.mark.parametrize("exact", [False, True])
def test_gradalign_parameter_gradient_unchanged(exact, monkeypatch):
    """GradAlign (eq. 2.7) through a conv + BN net: the parameter gradient with the fused BN (and
    fast convs) equals the one through PyTorch's own modules."""
    from toymodels.torch import batchnorm
    calls = []
    monkeypatch.setattr(batchnorm, "_double_backward",
                        lambda *a, f=batchnorm._double_backward: calls.append(1) or f(*a))
    ref = _bn_net()
    fast = _bn_net()
    use_fast_convs(fast)
    assert any(type(m) is BatchNorm2d for m in fast.modules())
    g = torch.Generator().manual_seed(6)
    x, y = torch.rand(8, 3, 8, 8, dtype=F64, generator=g), torch.randint(0, 5, (8,), generator=g)
    noise = attacks.uniform_noise(x.shape, 8 / 255, torch.Generator().manual_seed(7), x)
    grads = []
    for net in (ref, fast):
        reg = attacks.gradalign(net, x, y, 8 / 255, noise, exact=exact)
        grads.append(torch.autograd.grad(reg, list(net.parameters())))
    assert len(calls) == (4 if exact else 2)          # both BN layers, per differentiated input gradient
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)
