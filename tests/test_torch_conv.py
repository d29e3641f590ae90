"""toymodels.torch.conv.Conv2d inside twice_differentiable(): the same function and first derivatives as
nn.Conv2d, correct second derivatives (gradgradcheck, and equal to nn.Conv2d's double backward), AMP,
and the input-only flag; outside it is nn.Conv2d's own autograd node. Deterministic (float64, CPU)."""
import pytest

torch = pytest.importorskip("torch")

from toymodels.torch import models  # noqa: E402
from toymodels.torch.conv import Conv2d, _Conv2dFn, input_grad_only, twice_differentiable, use_fast_convs  # noqa: E402

F64 = torch.float64
SHAPES = [(3, 8, 3, 1, 1, 1), (8, 16, 3, 2, 1, 1), (8, 8, 1, 2, 0, 1), (8, 8, 3, 2, 1, 2), (4, 6, 3, 1, 0, 1)]


def _pair(cin, cout, k, s, p, g):
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(cin, cout, k, stride=s, padding=p, groups=g).to(F64)
    fast = torch.nn.Conv2d(cin, cout, k, stride=s, padding=p, groups=g).to(F64)
    fast.load_state_dict(ref.state_dict())
    return ref, use_fast_convs(fast)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("H", [9, 10])        # odd/even sizes: the output_padding of the stride-2 cases
def test_first_and_second_derivatives_equal_nn_conv2d(shape, H):
    ref, fast = _pair(*shape)
    assert type(fast) is Conv2d
    x = torch.randn(5, shape[0], H, H, dtype=F64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    torch.testing.assert_close(fast(x), ref(x), rtol=0, atol=1e-13)
    v = torch.randn_like(ref(x))

    def derivs(m):
        with twice_differentiable():
            out = m(x)
        assert ("_Conv2dFn" in type(out.grad_fn).__name__) == (m is fast)
        first = torch.autograd.grad((out * v).sum().tanh(), [x] + list(m.parameters()), create_graph=True)
        gx = first[0]
        second = torch.autograd.grad((gx ** 2).sum() + (gx * x).sum(), [x] + list(m.parameters()))
        return [f.detach() for f in first] + list(second)

    for a, b in zip(derivs(ref), derivs(fast)):
        torch.testing.assert_close(b, a, rtol=1e-11, atol=1e-11)


def test_gradcheck_and_gradgradcheck():
    g = torch.Generator().manual_seed(2)
    args = (torch.randn(2, 4, 7, 7, dtype=F64, generator=g, requires_grad=True),
            torch.randn(6, 2, 3, 3, dtype=F64, generator=g, requires_grad=True),
            torch.randn(6, dtype=F64, generator=g, requires_grad=True))

    def fn(x, w, b):
        return _Conv2dFn.apply(x, w, b, (2, 2), (1, 1), (1, 1), 2)

    assert torch.autograd.gradcheck(fn, args)
    assert torch.autograd.gradgradcheck(fn, args)


def test_input_grad_only_skips_weight_gradients():
    ref, fast = _pair(3, 4, 3, 1, 1, 1)
    x = torch.randn(2, 3, 6, 6, dtype=F64, requires_grad=True)
    with twice_differentiable():
        o1, o2, o3 = fast(x), fast(x), fast(x)
    with input_grad_only():
        gx, = torch.autograd.grad(o1.pow(2).sum(), x)
        o2.pow(2).sum().backward()               # misuse on purpose: the weight gradient is not computed
    torch.testing.assert_close(gx, torch.autograd.grad(ref(x).pow(2).sum(), x)[0], rtol=0, atol=1e-12)
    assert fast.weight.grad is None and fast.bias.grad is None
    o3.pow(2).sum().backward()                   # outside input_grad_only: computed as usual
    torch.testing.assert_close(fast.weight.grad, torch.autograd.grad(ref(x).pow(2).sum(), ref.weight)[0],
                               rtol=1e-12, atol=1e-12)


def test_outside_the_context_it_is_nn_conv2d():
    ref, fast = _pair(3, 4, 3, 1, 1, 1)
    x = torch.randn(2, 3, 6, 6, dtype=F64, requires_grad=True)
    assert type(fast(x).grad_fn) is type(ref(x).grad_fn)
    with twice_differentiable():
        assert type(fast(x).grad_fn) is not type(ref(x).grad_fn)


def test_autocast_matches_nn_conv2d_under_bfloat16():
    ref, fast = _pair(3, 8, 3, 1, 1, 1)
    ref, fast = ref.float(), fast.float()
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    outs = []
    for m in (ref, fast):
        with torch.autocast("cpu", dtype=torch.bfloat16), twice_differentiable():
            y = m(x)
        outs.append((y, torch.autograd.grad(y.float().pow(2).sum(), [x, m.weight, m.bias])))
    assert outs[1][0].dtype == outs[0][0].dtype == torch.bfloat16
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=0, atol=0)
    for a, b in zip(outs[0][1], outs[1][1]):
        assert b.dtype == a.dtype == torch.float32
        torch.testing.assert_close(b, a, rtol=2e-2, atol=2e-2)


def test_models_use_it_and_state_dicts_are_unchanged():
    for name in ("preact-resnet18", "densenet100-12", "cnn"):
        torch.manual_seed(0)
        net = models.build_model(name, 10, 3, 16)
        convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(type(m) is Conv2d for m in convs)
    torch.manual_seed(0)
    plain = models.PreActResNet18(10, 3)         # nn.Conv2d: same keys, same initial values
    torch.manual_seed(0)
    fast = models.build_model("preact-resnet18", 10, 3, 32)
    sa, sb = plain.state_dict(), fast.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
