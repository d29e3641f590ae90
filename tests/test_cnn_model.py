"""Single-layer CNN model (toymodels.cnn.model): the public ``backend=`` switch (numba kernels vs
their numpy references, same results to 1e-10; the kernels themselves are compared with the
references by the registry, tests/test_kernel_parity.py); loss, input and GradAlign gradients = central finite differences at points away from the
ReLU kinks; = torch autograd in float64 (GradAlign by double backprop, create_graph=True);
torch twin conversion; torch's default initialization; validation at the public boundary.

Deterministic tests (fixed seeds); the only Monte-Carlo test is the initialization scale
(test_init_matches_torch_default_scale, 5 s.e., passes for every seed 0–99)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from toymodels.errors import ConfigError
from toymodels.cnn import _kernels
from toymodels.cnn import _reference as ref
from toymodels.cnn import model as mm
from toymodels.cnn.model import CNNParams

# small, non-square problems so that H/W and channel mix-ups cannot cancel
DIMS = dict(C=2, H=4, W=5, M=3, K=3)


def _problem(N=5, seed=0, C=2, H=4, W=5, M=3, K=3, eta_scale=0.05, lo=0.0, hi=1.0):
    rng = np.random.default_rng(seed)
    p = mm.init_params(C, H, W, M, K, seed=seed)
    # a larger-than-default conv scale makes the ReLU masks depend strongly on the input
    p.Wc *= 2.0
    x = rng.uniform(lo, hi, size=(N, C, H, W))
    y = rng.integers(0, K, size=N)
    eta = rng.uniform(-eta_scale, eta_scale, size=x.shape)
    return p, x, y, eta


def _preacts(p: CNNParams, x: np.ndarray) -> np.ndarray:
    """All conv pre-activations a (N, M, H·W) (via the im2col reference)."""
    return ref._forward(x, *p.arrays)[1]


def _kink_free_problem(h, margin_factor=10.0, **kw):
    """The first seed whose pre-activations at x and x + η are all farther from 0 than
    ``margin_factor`` times what a step h in one parameter or input coordinate can move them: a step
    in Wc[m,c,u,v] moves a by ≤ h·max|x̄|, in bc by ≤ h, in one input coordinate by ≤ h·max|Wc|
    (U, c do not touch a). Then the ReLU masks are constant on the whole difference stencil."""
    for seed in range(200):
        p, x, y, eta = _problem(seed=seed, **kw)
        bound = h * max(1.0, np.abs(x).max(), np.abs(x + eta).max(), np.abs(p.Wc).max())
        amin = min(np.abs(_preacts(p, x)).min(), np.abs(_preacts(p, x + eta)).min())
        if amin > margin_factor * bound:
            return p, x, y, eta
    raise AssertionError("no kink-free problem found")


def _flat(obj):
    if isinstance(obj, CNNParams):
        return obj.flat()
    return np.asarray(obj, dtype=np.float64).ravel()


def _close(a, b, rel=1e-10):
    a, b = _flat(a), _flat(b)
    scale = max(np.abs(b).max(), 1e-300)
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * scale)


# ----------------------------------------------------------------------------------------------
# numba = numpy reference
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("N, dims", [(5, DIMS), (37, dict(C=3, H=7, W=6, M=4, K=10)), (1, dict(C=1, H=3, W=3, M=1, K=3))])
def test_backends_agree_through_the_public_api(N, dims):
    """Every public function with ``backend="numpy"`` gives the numba result (the wiring: validation,
    buffers, the reduction of the per-chunk gradient rows, the scale 1/N and the sign of ∇Ω)."""
    p, x, y, eta = _problem(N=N, seed=N, **dims)
    _close(mm.logits(p, x), mm.logits(p, x, backend="numpy"))
    _close(mm.losses(p, x, y), mm.losses(p, x, y, backend="numpy"))
    la, ga = mm.loss_and_grad(p, x, y)
    lb, gb = mm.loss_and_grad(p, x, y, backend="numpy")
    assert la == pytest.approx(lb, rel=1e-12)
    for a, b in zip(ga.arrays, gb.arrays):
        _close(a, b)
    _close(mm.input_grad(p, x, y), mm.input_grad(p, x, y, backend="numpy"))
    for both in (True, False):
        oa, ga, g1a = mm.gradalign_loss_and_grad(p, x, y, eta, both=both, return_input_grad=True)
        ob, gb, g1b = mm.gradalign_loss_and_grad(p, x, y, eta, both=both, return_input_grad=True,
                                                 backend="numpy")
        assert oa == pytest.approx(ob, rel=1e-10, abs=1e-14)
        _close(ga, gb)      # relative to the largest entry of the whole gradient
        _close(g1a, g1b)
    # the GradAlign cosines agree with two plain input-gradient passes
    assert 1.0 - mm.gradalign_cos(p, x, y, eta).mean() == pytest.approx(oa, rel=1e-10, abs=1e-14)


def test_32x32_layout():
    """The CIFAR-sized problem of the spec (3×32×32, 4 filters, 10 classes)."""
    p, x, y, eta = _problem(N=3, seed=1, C=3, H=32, W=32, M=4, K=10, eta_scale=8 / 255)
    _close(mm.logits(p, x), mm.logits(p, x, backend="numpy"))
    _close(mm.input_grad(p, x, y), mm.input_grad(p, x, y, backend="numpy"))
    _close(mm.loss_and_grad(p, x, y)[1], mm.loss_and_grad(p, x, y, backend="numpy")[1])
    _close(mm.gradalign_loss_and_grad(p, x, y, eta)[1], mm.gradalign_loss_and_grad(p, x, y, eta, backend="numpy")[1])


def test_result_does_not_depend_on_thread_count():
    """Chunking depends on N only, so the sums (and results) are bitwise identical for any number
    of numba threads."""
    import numba

    p, x, y, eta = _problem(N=40, seed=3)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        r1 = (mm.loss_and_grad(p, x, y)[1].flat(), mm.gradalign_loss_and_grad(p, x, y, eta)[1].flat())
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        r2 = (mm.loss_and_grad(p, x, y)[1].flat(), mm.gradalign_loss_and_grad(p, x, y, eta)[1].flat())
    finally:
        numba.set_num_threads(old)
    for a, b in zip(r1, r2):
        assert np.array_equal(a, b)


# ----------------------------------------------------------------------------------------------
# finite differences (central, at points where no mask changes on the stencil)
# ----------------------------------------------------------------------------------------------
H_FD = 1e-6


@pytest.fixture
def serial():
    """One numba thread: the FD tests make hundreds of tiny kernel calls, for which waking the
    thread pool costs more than the work."""
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(old)


def _fd_params(fun, p: CNNParams, h=H_FD) -> np.ndarray:
    theta = p.flat()
    out = np.empty_like(theta)
    for k in range(theta.size):
        tp, tm = theta.copy(), theta.copy()
        tp[k] += h
        tm[k] -= h
        out[k] = (fun(CNNParams.from_flat(tp, p.shapes)) - fun(CNNParams.from_flat(tm, p.shapes))) / (2 * h)
    return out


def test_loss_gradient_matches_finite_differences(serial):
    p, x, y, _ = _kink_free_problem(H_FD)
    _, g = mm.loss_and_grad(p, x, y)
    fd = _fd_params(lambda q: mm.loss(q, x, y), p)
    # central-difference error: O(h²) truncation + O(1e-16/h) rounding ≈ 1e-10 here
    np.testing.assert_allclose(g.flat(), fd, rtol=1e-6, atol=1e-8)


def test_input_gradient_matches_finite_differences(serial):
    # x inside [h, 1 − h] so that the stencil stays a valid input
    p, x, y, _ = _kink_free_problem(H_FD, lo=0.01, hi=0.99)
    g = mm.input_grad(p, x, y)
    fd = np.empty_like(x)
    # examples are independent: perturb one coordinate of every example at once
    for idx in np.ndindex(x.shape[1:]):
        xp, xm = x.copy(), x.copy()
        xp[(slice(None),) + idx] += H_FD
        xm[(slice(None),) + idx] -= H_FD
        fd[(slice(None),) + idx] = (mm.losses(p, xp, y) - mm.losses(p, xm, y)) / (2 * H_FD)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("both", [True, False])
def test_gradalign_gradient_matches_finite_differences(both, serial):
    """Ω(θ) = mean(1 − cos) is smooth in θ while no mask changes; its exact gradient (both=True) is
    the central difference of Ω. With both=False the clean gradient ∇ₓℓ(x) is frozen at θ₀, so the
    difference is taken of 1 − cos(g₁(θ₀), g₂(θ)), computed here from plain input gradients."""
    # x + η stays in [0, 1] so that the frozen-g₁ variant can use the public input_grad
    p, x, y, eta = _kink_free_problem(H_FD, eta_scale=0.1, lo=0.1, hi=0.9)
    omega, g = mm.gradalign_loss_and_grad(p, x, y, eta, both=both)
    N = x.shape[0]
    g1_0 = mm.input_grad(p, x, y).reshape(N, -1)

    def omega_of(q):
        if both:
            return mm.gradalign_loss_and_grad(q, x, y, eta)[0]
        g2 = mm.input_grad(q, x + eta, y).reshape(N, -1)
        cos = (g1_0 * g2).sum(1) / np.linalg.norm(g1_0, axis=1) / np.linalg.norm(g2, axis=1)
        return float(np.mean(1 - cos))

    assert omega == pytest.approx(omega_of(p), rel=1e-12)
    fd = _fd_params(omega_of, p)
    scale = np.abs(fd).max()
    assert scale > 1e-4  # the regularizer is not trivially flat here
    np.testing.assert_allclose(g.flat(), fd, rtol=1e-5, atol=1e-7 * max(1.0, scale))


def test_kink_free_helper_is_meaningful():
    """The FD problems really have ReLUs on both sides (the masks are neither all on nor all off)."""
    p, x, _, eta = _kink_free_problem(H_FD)
    for pts in (x, x + eta):
        on = (_preacts(p, pts) > 0).mean()
        assert 0.1 < on < 0.9


# ----------------------------------------------------------------------------------------------
# torch autograd (float64)
# ----------------------------------------------------------------------------------------------
def _torch_setup(p, x, y):
    torch = pytest.importorskip("torch")
    from toymodels.cnn.torch_twin import to_torch

    net = to_torch(p, x.shape[2], x.shape[3])
    return torch, net, torch.from_numpy(x), torch.from_numpy(np.asarray(y, dtype=np.int64))


def _tgrads(net):
    return np.concatenate([t.grad.detach().numpy().ravel() for t in net.parameters()])


@pytest.mark.parametrize("dims", [DIMS, dict(C=3, H=8, W=8, M=4, K=10)])
def test_against_torch_autograd(dims):
    p, x, y, eta = _problem(N=9, seed=7, **dims)
    torch, net, X, Y = _torch_setup(p, x, y)
    F = torch.nn.functional
    tol = 1e-10   # float64: the differences are rounding, ~1e-16 relative (spec: 1e-8)

    z = net(X)
    _close(mm.logits(p, x), z.detach().numpy(), tol)
    loss = F.cross_entropy(z, Y)
    net.zero_grad()
    loss.backward()
    lo, g = mm.loss_and_grad(p, x, y)
    assert lo == pytest.approx(loss.item(), rel=1e-12)
    _close(g, _tgrads(net), tol)

    X1 = X.clone().requires_grad_(True)
    l1 = F.cross_entropy(net(X1), Y, reduction="sum")        # per-example gradients, not / N
    g1, = torch.autograd.grad(l1, X1, create_graph=True)
    _close(mm.input_grad(p, x, y), g1.detach().numpy(), tol)

    X2 = (X + torch.from_numpy(eta)).requires_grad_(True)
    g2, = torch.autograd.grad(F.cross_entropy(net(X2), Y, reduction="sum"), X2, create_graph=True)
    for both in (True, False):
        a = g1 if both else g1.detach()
        cos = F.cosine_similarity(a.flatten(1), g2.flatten(1), dim=1)
        omega = (1 - cos).mean()
        net.zero_grad()
        omega.backward(retain_graph=True)
        om, gg = mm.gradalign_loss_and_grad(p, x, y, eta, both=both)
        assert om == pytest.approx(omega.item(), rel=1e-10, abs=1e-14)
        _close(gg, _tgrads(net), tol)


def test_relu_derivative_at_zero_matches_torch():
    """Filter 0 is identically zero (Wc[0] = 0, bc[0] = 0), so its pre-activations are exactly 0:
    ReLU'(0) := 0 as in torch, i.e. no gradient flows through it."""
    p, x, y, eta = _problem(N=4, seed=2)
    p.Wc[0] = 0.0
    p.bc[0] = 0.0
    torch, net, X, Y = _torch_setup(p, x, y)
    F = torch.nn.functional
    net.zero_grad()
    F.cross_entropy(net(X), Y).backward()
    _, g = mm.loss_and_grad(p, x, y)
    assert np.all(g.Wc[0] == 0) and g.bc[0] == 0
    _close(g, _tgrads(net), 1e-10)
    X1 = X.clone().requires_grad_(True)
    g1, = torch.autograd.grad(F.cross_entropy(net(X1), Y, reduction="sum"), X1)
    _close(mm.input_grad(p, x, y), g1.numpy(), 1e-10)


def test_all_relus_off_gives_zero_gradients_and_unit_cosine():
    """With Wc = 0, bc = 0 every ReLU sits at 0: ∇ₓℓ = 0 exactly, the cosine is undefined and counts
    as 1, so Ω = 0 with a zero gradient (documented convention)."""
    p, x, y, eta = _problem(N=3, seed=4)
    p.Wc[:] = 0.0
    p.bc[:] = 0.0
    assert np.all(mm.input_grad(p, x, y) == 0)
    for backend in mm.BACKENDS:
        om, g = mm.gradalign_loss_and_grad(p, x, y, eta, backend=backend)
        assert om == 0.0 and np.all(g.flat() == 0)
    assert np.all(mm.gradalign_cos(p, x, y, eta) == 1.0)


# ----------------------------------------------------------------------------------------------
# torch twin
# ----------------------------------------------------------------------------------------------
def test_torch_twin_round_trip_and_logits():
    torch = pytest.importorskip("torch")
    from toymodels.cnn.torch_twin import from_torch, make_torch_model, to_torch

    p, x, _, _ = _problem(N=6, seed=5, C=3, H=6, W=7, M=4, K=5)
    net = to_torch(p, 6, 7)
    q = from_torch(net)
    for a, b in zip(p.arrays, q.arrays):
        assert a.dtype == b.dtype == np.float64 and np.array_equal(a, b)
    _close(net(torch.from_numpy(x)).detach().numpy(), mm.logits(p, x), 1e-12)
    # a fresh twin (torch's own init) converts to parameters of the shapes init_params makes
    fresh = make_torch_model(3, 6, 7, 4, 5)
    assert from_torch(fresh).shapes == mm.init_params(3, 6, 7, 4, 5).shapes
    assert next(fresh.parameters()).dtype == torch.float64
    # square images need no H, W; non-square ones do
    sq = mm.init_params(3, 8, 8, 4, 10, seed=1)
    assert np.array_equal(from_torch(to_torch(sq)).U, sq.U)
    with pytest.raises(ValueError, match="H and W"):
        to_torch(p)


def test_init_is_deterministic_and_within_torch_bounds():
    torch = pytest.importorskip("torch")
    a, b, c = mm.init_params(seed=0), mm.init_params(seed=0), mm.init_params(seed=1)
    assert all(np.array_equal(u, v) for u, v in zip(a.arrays, b.arrays))
    assert not np.array_equal(a.U, c.U)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 32 * 32, 10))
    # torch's bounds, from torch's own formulas: kaiming_uniform(a=√5) and the bias rule
    for layer, (w, bias) in ((net[0], (a.Wc, a.bc)), (net[3], (a.U, a.c))):
        fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(layer.weight)
        gain = torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5))
        bw = gain * math.sqrt(3.0 / fan_in)
        bb = 1.0 / math.sqrt(fan_in)
        assert np.abs(w).max() <= bw and np.abs(bias).max() <= bb
        assert layer.weight.abs().max().item() <= bw * (1 + 1e-6)
        assert np.abs(w).max() > 0.9 * bw      # not a smaller scale


@pytest.mark.parametrize("seed", [0, 1])
def test_init_matches_torch_default_scale(seed):
    """MC: the entries of U (n = 40960) are U(−b, b), b = 1/√(M·H·W): E[u²] = b²/3 with
    s.e. = b²·√(4/45)/√n; asserted within 5 s.e. (passes for every seed 0–99)."""
    p = mm.init_params(seed=seed)
    for arr, fan_in in ((p.U, 4 * 32 * 32), (p.Wc, 27)):
        b = 1 / math.sqrt(fan_in)
        n = arr.size
        se = b * b * math.sqrt(4 / 45) / math.sqrt(n)
        assert abs((arr ** 2).mean() - b * b / 3) < 5 * se
        assert abs(arr.mean()) < 5 * b / math.sqrt(3 * n)


# ----------------------------------------------------------------------------------------------
# parameters container and validation
# ----------------------------------------------------------------------------------------------
def test_flat_round_trip():
    p = mm.init_params(**DIMS, seed=3)
    v = p.flat()
    q = CNNParams.from_flat(v, p.shapes)
    assert all(np.array_equal(a, b) for a, b in zip(p.arrays, q.arrays))
    assert v.size == p.size == 2 * 3 * 9 + 3 + 3 * 3 * 20 + 3
    q.U[0, 0] = 123.0            # from_flat gives views of v
    assert v[2 * 3 * 9 + 3] == 123.0
    with pytest.raises(ConfigError, match="vec"):
        CNNParams.from_flat(v[:-1], p.shapes)


@pytest.mark.parametrize("case, match", [
    ("x_shape", "x must have shape"),
    ("x_range", r"x must have all entries in \[0, 1\]"),
    ("x_nan", r"x must have all entries in \[0, 1\]"),
    ("x_hw", "H×W"),
    ("y_range", r"y must hold integer labels in \[0, 2\]"),
    ("y_float", "y must hold integer labels"),
    ("y_shape", "y must have shape"),
    ("U_shape", "params.U"),
    ("bc_shape", "params.bc"),
    ("Wc_nan", "params.Wc must be finite"),
    ("eta_shape", "eta must have the shape"),
    ("eta_inf", "eta must be finite"),
    ("backend", "backend must be one of"),
])
def test_validation(case, match):
    p, x, y, eta = _problem(N=4, seed=0)
    kw = {}
    if case == "x_shape":
        x = x[0]
    elif case == "x_range":
        x = x + 0.5
    elif case == "x_nan":
        x = x.copy()
        x[0, 0, 0, 0] = np.nan
    elif case == "x_hw":
        x = x[:, :, :3]
    elif case == "y_range":
        y = y.copy()
        y[0] = 3
    elif case == "y_float":
        y = y + 0.5
    elif case == "y_shape":
        y = y[:2]
    elif case == "U_shape":
        p.U = p.U[:, :-1]
    elif case == "bc_shape":
        p.bc = p.bc[:2]
    elif case == "Wc_nan":
        p.Wc[0, 0, 0, 0] = np.nan
    elif case == "eta_shape":
        eta = eta[:2]
    elif case == "eta_inf":
        eta = eta.copy()
        eta[0, 0, 0, 0] = np.inf
    elif case == "backend":
        kw["backend"] = "cuda"
    with pytest.raises(ConfigError, match=match):
        mm.gradalign_loss_and_grad(p, x, y, eta, **kw)


def test_integer_valued_float_labels_are_accepted():
    p, x, y, _ = _problem(N=4, seed=0)
    assert mm.loss(p, x, y.astype(float)) == mm.loss(p, x, y)


def test_kernel_grad_row_layout():
    """The per-chunk gradient row holds Wc, bc, U in the padded-row layout, c."""
    M, C, H, W, K = 3, 2, 4, 5, 3
    assert _kernels.grad_row_size(M, C, H, W, K) == M * C * 9 + M + K * M * H * (W + 2) + K
    assert _kernels.n_chunks(1) == 1 and _kernels.n_chunks(10**6) == _kernels.MAX_CHUNKS


# ----------------------------------------------------------------------------------------------
# fused FGSM-AT + GradAlign step gradient
# ----------------------------------------------------------------------------------------------
def _unfused_step(p, x, y, eta, eps, alpha, lam, both, backend="numba"):
    """FGSM δ, CE at x + δ and GradAlign by the three separate public calls."""
    from toymodels.cnn import attacks

    d = attacks.pgd(p, x, y, eps, alpha, 1, 1, random_start=False, backend=backend)
    L, gL = mm.loss_and_grad(p, x + d, y, backend=backend)
    om, gO = mm.gradalign_loss_and_grad(p, x, y, eta, both=both, backend=backend)
    return L, om, gL.flat() + lam * gO.flat(), d


@pytest.mark.parametrize("N, dims", [(1, DIMS), (37, DIMS), (9, dict(C=3, H=7, W=6, M=4, K=10)),
                                     (4, dict(C=3, H=32, W=32, M=4, K=10))])
@pytest.mark.parametrize("both", [False, True])
def test_fused_fgsm_gradalign_matches_separate_calls(N, dims, both):
    """fgsm_gradalign_loss_and_grad = FGSM (pgd, 1 step from 0) + loss_and_grad(x + δ) + λ·GradAlign,
    for α = ε and a reduced step, on both backends (δ bitwise: same arithmetic); the chunk counts
    of N = 37 (odd chunks) and N = 1 exercise the pairing of examples in the ∇U sweeps."""
    p, x, y, eta = _problem(N=N, seed=N + 7, **dims)
    eps, lam = 0.05, 0.36
    for alpha in (eps, 0.6 * eps):
        ref_out = _unfused_step(p, x, y, eta, eps, alpha, lam, both, backend="numpy")
        for backend in mm.BACKENDS:
            L, om, g, d = mm.fgsm_gradalign_loss_and_grad(p, x, y, eta, eps, alpha=alpha, lam=lam, both=both,
                                                          backend=backend)
            for target in (_unfused_step(p, x, y, eta, eps, alpha, lam, both), ref_out):
                assert np.array_equal(d, target[3])
                assert L == pytest.approx(target[0], rel=1e-12)
                assert om == pytest.approx(target[1], rel=1e-10, abs=1e-14)
                _close(g, target[2])
    # default α = ε is FGSM
    from toymodels.cnn import attacks

    assert np.array_equal(mm.fgsm_gradalign_loss_and_grad(p, x, y, eta, eps, lam=lam)[3], attacks.fgsm(p, x, y, eps))


def test_fused_with_zero_input_gradients():
    """Examples whose input gradients vanish (all ReLUs off at x: cos := 1, δ = 0) contribute only
    their cross-entropy gradient; mixed with ordinary examples in one chunk."""
    p, x, y, eta = _problem(N=40, seed=5)
    x[::3] = 0.0                         # every third image black ...
    p.Wc[:] = np.abs(p.Wc)
    p.bc[:] = -0.2 * np.abs(p.Wc).sum(axis=(1, 2, 3))   # ... so that all its pre-activations are < 0
    eta *= 0.5
    g1 = mm.input_grad(p, x, y)
    assert np.all(g1[::3] == 0) and np.all(np.abs(g1[1::3]).max(axis=(1, 2, 3)) > 0)
    for both in (False, True):
        L, om, g, d = mm.fgsm_gradalign_loss_and_grad(p, x, y, eta, 0.05, lam=0.5, both=both)
        Lr, omr, gr, dr = _unfused_step(p, x, y, eta, 0.05, 0.05, 0.5, both, backend="numpy")
        assert np.all(d[::3] == 0) and np.array_equal(d, dr)
        assert L == pytest.approx(Lr, rel=1e-12) and om == pytest.approx(omr, rel=1e-10)
        _close(g, gr)


def test_fused_does_not_depend_on_thread_count():
    import numba

    p, x, y, eta = _problem(N=40, seed=3)
    old = numba.get_num_threads()
    try:
        out = []
        for t in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(t)
            out.append(mm.fgsm_gradalign_loss_and_grad(p, x, y, eta, 0.05, lam=0.4)[2].flat())
    finally:
        numba.set_num_threads(old)
    assert np.array_equal(out[0], out[1])


@pytest.mark.parametrize("kw, match", [(dict(eps=-0.1), "eps must be >= 0"), (dict(alpha=-1.0), "alpha must be >= 0"),
                                       (dict(lam=float("nan")), "lam must be a finite number"),
                                       (dict(backend="cuda"), "backend must be one of")])
def test_fused_validation(kw, match):
    p, x, y, eta = _problem(N=4, seed=0)
    args = dict(eps=0.05, lam=0.3) | kw
    eps = args.pop("eps")
    with pytest.raises(ConfigError, match=match):
        mm.fgsm_gradalign_loss_and_grad(p, x, y, eta, eps, **args)
