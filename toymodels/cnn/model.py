"""The single-layer CNN of thesis Sec. 2.5 (details l.598–633, l.663–680): parameters, forward pass,
loss, gradients and the GradAlign regularizer (eq. 2.7) with its exact parameter gradient.

Model, for x ∈ [0, 1]^{C×H×W} (channels first, float64 throughout):

    a = conv₃ₓ₃(x, Wc) + bc   (stride 1, zero padding 1, cross-correlation as in torch; a ∈ R^{M×H×W})
    h = ReLU(a)               (ReLU'(0) := 0, as torch)
    z = U vec(h) + c          (vec: C-order flatten over (M, H, W), = torch.flatten(h, 1))
    ℓ(x, y) = logsumexp(z) − z_y                                   (cross-entropy)

with Wc ∈ R^{M×C×3×3}, bc ∈ R^M, U ∈ R^{K×MHW}, c ∈ R^K. Batch loss L = (1/N) Σₙ ℓ(xₙ, yₙ).

GradAlign (eq. 2.7), with pre-drawn ηₙ (the caller draws ηₙ ~ U[−ε, ε]^d):

    Ω = (1/N) Σₙ [1 − cos(∇ₓℓ(xₙ, yₙ), ∇ₓℓ(xₙ + ηₙ, yₙ))],

cosines of the flattened per-example input gradients. Its gradient w.r.t. θ = (Wc, bc, U, c) is the
exact double-backprop gradient derived by hand in :mod:`toymodels.cnn._kernels` (ReLU masks have zero
derivative almost everywhere). If one of the two input gradients of an example is exactly zero its
cosine is undefined; we set cos := 1 (no contribution to Ω or its gradient).

Every public function validates its inputs (shapes, labels in [0, K), x ∈ [0, 1], finiteness) and
raises :class:`toymodels.errors.ConfigError` naming the offending argument; ``backend="numpy"`` runs
the plain-numpy references (:mod:`toymodels.cnn._reference`, same names and arguments) instead of
the numba kernels (:mod:`toymodels.cnn._kernels`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends import BACKENDS, check_backend
from ..errors import ConfigError, check_int, check_nonneg
from ..rng import check_seed, stream
from . import _kernels
from . import _reference

__all__ = [
    "CNNParams", "init_params", "logits", "losses", "loss", "accuracy", "loss_and_grad", "input_grad",
    "gradalign_cos", "gradalign_loss_and_grad", "fgsm_gradalign_loss_and_grad", "BACKENDS",
]


@dataclass
class CNNParams:
    """Parameters of the single-layer CNN: conv weight ``Wc`` (M, C, 3, 3), conv bias ``bc`` (M,),
    linear weight ``U`` (K, M·H·W), linear bias ``c`` (K,). Same layout as the torch twin
    (conv.weight, conv.bias, linear.weight, linear.bias)."""

    Wc: np.ndarray
    bc: np.ndarray
    U: np.ndarray
    c: np.ndarray

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        return (self.Wc.shape, self.bc.shape, self.U.shape, self.c.shape)

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (self.Wc, self.bc, self.U, self.c)

    @property
    def size(self) -> int:
        return int(sum(a.size for a in self.arrays))

    def flat(self) -> np.ndarray:
        """All parameters as one new float64 vector, in the order (Wc, bc, U, c), each C-order."""
        return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in self.arrays])

    @classmethod
    def from_flat(cls, vec: np.ndarray, shapes) -> "CNNParams":
        """Inverse of :meth:`flat` (the arrays are views of ``vec`` when it is float64 contiguous)."""
        vec = np.ascontiguousarray(vec, dtype=np.float64)
        sizes = [int(np.prod(s)) for s in shapes]
        if vec.ndim != 1 or vec.shape[0] != sum(sizes):
            raise ConfigError("vec", f"must be a vector of length {sum(sizes)} for shapes {shapes}", vec.shape)
        out, o = [], 0
        for s, k in zip(shapes, sizes):
            out.append(vec[o:o + k].reshape(s))
            o += k
        return cls(*out)

    def copy(self) -> "CNNParams":
        return CNNParams(*(np.array(a, dtype=np.float64, copy=True) for a in self.arrays))


def init_params(C: int = 3, H: int = 32, W: int = 32, M: int = 4, K: int = 10, *,
                seed: int | np.random.Generator = 0) -> CNNParams:
    """torch's default initialization, drawn from the stream ``seed`` (an int: :func:`toymodels.rng.stream`
    (seed), the numbers of ``numpy.random.default_rng(seed)``; or a Generator, used as is).

    nn.Conv2d / nn.Linear use kaiming-uniform with a = √5 for the weights and U(−1/√fan_in,
    1/√fan_in) for the biases; kaiming-uniform(a=√5) has bound gain·√(3/fan_in) with
    gain = √(2/(1 + a²)) = 1/√3, i.e. also 1/√fan_in. So every entry is U(−1/√fan_in, 1/√fan_in)
    with fan_in = 9C for (Wc, bc) and M·H·W for (U, c); drawn in the order Wc, bc, U, c."""
    for name, v in (("C", C), ("H", H), ("W", W), ("M", M)):
        check_int(name, v, 1)
    check_int("K", K, 2)
    rng = seed if isinstance(seed, np.random.Generator) else stream(check_seed(seed))
    bw = 1.0 / np.sqrt(9 * C)
    bu = 1.0 / np.sqrt(M * H * W)
    Wc = rng.uniform(-bw, bw, size=(M, C, 3, 3))
    bc = rng.uniform(-bw, bw, size=M)
    U = rng.uniform(-bu, bu, size=(K, M * H * W))
    c = rng.uniform(-bu, bu, size=K)
    return CNNParams(Wc, bc, U, c)


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------
def _impl(backend: str):
    """The module that computes for ``backend``: the numba kernels or their numpy references."""
    return _kernels if check_backend(backend) == "numba" else _reference


def _params(params: CNNParams) -> tuple[np.ndarray, ...]:
    if not isinstance(params, CNNParams):
        raise ConfigError("params", "must be a CNNParams", type(params).__name__)
    Wc, bc, U, c = (np.ascontiguousarray(a, dtype=np.float64) for a in params.arrays)
    if Wc.ndim != 4 or Wc.shape[2:] != (3, 3) or Wc.shape[0] < 1 or Wc.shape[1] < 1:
        raise ConfigError("params.Wc", "must have shape (M, C, 3, 3) with M, C >= 1", Wc.shape)
    M = Wc.shape[0]
    if bc.shape != (M,):
        raise ConfigError("params.bc", f"must have shape (M,) = ({M},)", bc.shape)
    if U.ndim != 2 or U.shape[0] < 2 or U.shape[1] % M:
        raise ConfigError("params.U", f"must have shape (K, M*H*W) with K >= 2 and M = {M}", U.shape)
    if c.shape != (U.shape[0],):
        raise ConfigError("params.c", f"must have shape (K,) = ({U.shape[0]},)", c.shape)
    for name, a in (("Wc", Wc), ("bc", bc), ("U", U), ("c", c)):
        if not np.isfinite(a).all():
            raise ConfigError(f"params.{name}", "must be finite")
    return Wc, bc, U, c


def _x(x, P, name: str = "x") -> np.ndarray:
    """x as a C-contiguous float64 (N, C, H, W) array in [0, 1] matching the parameters."""
    Wc, _, U, _ = P
    x = np.ascontiguousarray(x, dtype=np.float64)
    C, M = Wc.shape[1], Wc.shape[0]
    if x.ndim != 4 or x.shape[0] < 1 or x.shape[1] != C:
        raise ConfigError(name, f"must have shape (N, C={C}, H, W) with N >= 1", x.shape)
    if M * x.shape[2] * x.shape[3] != U.shape[1]:
        raise ConfigError(name, f"has H×W = {x.shape[2]}×{x.shape[3]} but params.U has {U.shape[1]} = M·H·W "
                                f"columns (M = {M})")
    # NaN fails both comparisons, so this also rejects non-finite entries
    if not (x.min() >= 0.0 and x.max() <= 1.0):
        raise ConfigError(name, "must have all entries in [0, 1] (finite)")
    return x


def _y(y, N: int, K: int) -> np.ndarray:
    ya = np.asarray(y)
    if ya.shape != (N,):
        raise ConfigError("y", f"must have shape (N,) = ({N},)", ya.shape)
    if ya.dtype.kind not in "iu":
        if ya.dtype.kind == "f" and np.all(np.isfinite(ya)) and np.all(ya == np.round(ya)):
            ya = ya.astype(np.int64)
        else:
            raise ConfigError("y", f"must hold integer labels in [0, {K - 1}]", f"dtype {ya.dtype}")
    if N and (ya.min() < 0 or ya.max() >= K):
        raise ConfigError("y", f"must hold integer labels in [0, {K - 1}]", f"values in [{ya.min()}, {ya.max()}]")
    return np.ascontiguousarray(ya, dtype=np.int64)


def _perturbation(d, x: np.ndarray, name: str, bound: float | None = None) -> np.ndarray:
    d = np.ascontiguousarray(d, dtype=np.float64)
    if d.shape != x.shape:
        raise ConfigError(name, f"must have the shape of x {x.shape}", d.shape)
    if not np.isfinite(d).all():
        raise ConfigError(name, "must be finite")
    if bound is not None and np.abs(d).max() > bound:
        raise ConfigError(name, f"must satisfy |{name}| <= {bound!r} entrywise", f"max {np.abs(d).max()!r}")
    return d


def _validate(params, x, y=None):
    P = _params(params)
    x = _x(x, P)
    if y is None:
        return P, x
    return P, x, _y(y, x.shape[0], P[2].shape[0])


def _dims(P, x) -> tuple[int, int, int, int, int]:
    """(M, C, H, W, K)."""
    return P[0].shape[0], x.shape[1], x.shape[2], x.shape[3], P[2].shape[0]


def _gbuf(P, x) -> np.ndarray:
    """Per-chunk gradient rows for the kernels (layout of ``_kernels.grad_row_size``)."""
    return np.empty((_kernels.n_chunks(x.shape[0]), _kernels.grad_row_size(*_dims(P, x))))


def _grad_from_buf(impl, gbuf: np.ndarray, scale: float, P, x) -> CNNParams:
    out = np.empty(sum(a.size for a in P))
    impl.reduce_grad(gbuf, float(scale), *_dims(P, x), out)
    return CNNParams.from_flat(out, [a.shape for a in P])


# ----------------------------------------------------------------------------------------------
# unchecked cores (arrays already validated; used by attacks and metrics)
# ----------------------------------------------------------------------------------------------
def _logits_core(P, x, backend="numba"):
    z = np.empty((x.shape[0], P[2].shape[0]))
    _impl(backend).logits(x, *P, z)
    return z


def _losses_core(P, x, y, backend="numba"):
    z = _logits_core(P, x, backend)
    zmax = z.max(axis=1)
    return np.log(np.exp(z - zmax[:, None]).sum(axis=1)) + zmax - z[np.arange(z.shape[0]), y]


def _input_grad_core(P, x, y, backend="numba"):
    losses = np.empty(x.shape[0])
    g = np.empty_like(x)
    _impl(backend).input_grad(x, y, *P, losses, g)
    return losses, g


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
def logits(params: CNNParams, x, *, backend: str = "numba") -> np.ndarray:
    """Logits z = U vec(ReLU(conv(x, Wc) + bc)) + c, shape (N, K)."""
    check_backend(backend)
    P, x = _validate(params, x)
    return _logits_core(P, x, backend)


def losses(params: CNNParams, x, y, *, backend: str = "numba") -> np.ndarray:
    """Per-example cross-entropy ℓ(xₙ, yₙ) = logsumexp(zₙ) − zₙ,yₙ, shape (N,)."""
    check_backend(backend)
    P, x, y = _validate(params, x, y)
    return _losses_core(P, x, y, backend)


def loss(params: CNNParams, x, y, *, backend: str = "numba") -> float:
    """Mean cross-entropy L = (1/N) Σₙ ℓ(xₙ, yₙ)."""
    return float(losses(params, x, y, backend=backend).mean())


def accuracy(params: CNNParams, x, y, *, backend: str = "numba") -> float:
    """Fraction of examples with argmaxₖ zₖ = y (ties: the first maximal class)."""
    check_backend(backend)
    P, x, y = _validate(params, x, y)
    return float((_logits_core(P, x, backend).argmax(axis=1) == y).mean())


def loss_and_grad(params: CNNParams, x, y, *, backend: str = "numba") -> tuple[float, CNNParams]:
    """(L, ∇_θ L) for the mean cross-entropy L = (1/N) Σₙ ℓ(xₙ, yₙ)."""
    impl = _impl(backend)
    P, x, y = _validate(params, x, y)
    N = x.shape[0]
    ls = np.empty(N)
    gbuf = _gbuf(P, x)
    impl.loss_grad(x, y, *P, ls, gbuf)
    return float(ls.mean()), _grad_from_buf(impl, gbuf, 1.0 / N, P, x)


def input_grad(params: CNNParams, x, y, *, backend: str = "numba", return_losses: bool = False):
    """∇ₓ ℓ(xₙ, yₙ) of each example's own loss (not divided by N), shape (N, C, H, W); with
    ``return_losses`` also the per-example losses: ``(losses, grad)``."""
    check_backend(backend)
    P, x, y = _validate(params, x, y)
    ls, g = _input_grad_core(P, x, y, backend)
    return (ls, g) if return_losses else g


def gradalign_cos(params: CNNParams, x, y, eta, *, backend: str = "numba") -> np.ndarray:
    """Per-example cos(∇ₓℓ(xₙ, yₙ), ∇ₓℓ(xₙ + ηₙ, yₙ)) (cos := 1 if either gradient is 0), shape
    (N,). x + η is used as given (not clipped to [0, 1])."""
    check_backend(backend)
    P, x, y = _validate(params, x, y)
    eta = _perturbation(eta, x, "eta")
    _, g1 = _input_grad_core(P, x, y, backend)
    _, g2 = _input_grad_core(P, x + eta, y, backend)
    return _cosines(g1, g2, zero=1.0)


def _cosines(a: np.ndarray, b: np.ndarray, zero: float) -> np.ndarray:
    """Row-wise cosine of the flattened examples; ``zero`` where either vector is 0."""
    N = a.shape[0]
    a, b = a.reshape(N, -1), b.reshape(N, -1)
    n11, n22, n12 = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b), np.einsum("ij,ij->i", a, b)
    ok = (n11 > 0) & (n22 > 0)
    den = np.where(ok, np.sqrt(n11) * np.sqrt(n22), 1.0)
    return np.where(ok, n12 / den, zero)


def gradalign_loss_and_grad(params: CNNParams, x, y, eta, *, both: bool = True,
                            return_input_grad: bool = False, backend: str = "numba"):
    """GradAlign Ω = (1/N) Σₙ [1 − cos(∇ₓℓ(xₙ, yₙ), ∇ₓℓ(xₙ + ηₙ, yₙ))] (eq. 2.7) and ∇_θ Ω.

    ``eta`` (N, C, H, W) is the pre-drawn noise (η ~ U[−ε, ε]^d in eq. 2.7), used as given: x + η
    is not clipped to [0, 1] (as in the authors' implementation; pass a clipped η to clip).
    ``both=True`` is the exact gradient (through both input gradients); ``both=False``
    differentiates only through ∇ₓℓ(x + η) and treats ∇ₓℓ(x) as a constant, as the authors'
    code does (there ∇ₓℓ(x) is the detached FGSM gradient).

    Returns ``(omega, grad)``, or ``(omega, grad, g)`` with ``return_input_grad=True`` where
    g = ∇ₓℓ(xₙ, yₙ) (N, C, H, W) is the clean input gradient computed on the way (FGSM AT +
    GradAlign can build δ_FGSM = Π(ε sign g) from it instead of a second backward pass)."""
    impl = _impl(backend)
    P, x, y = _validate(params, x, y)
    eta = _perturbation(eta, x, "eta")
    N = x.shape[0]
    cos = np.empty(N)
    g1 = np.empty_like(x) if return_input_grad else np.empty((1, 1, 1, 1))
    gbuf = _gbuf(P, x)
    impl.gradalign(x, y, eta, *P, bool(both), bool(return_input_grad), cos, g1, gbuf)
    out = (float(np.mean(1.0 - cos)), _grad_from_buf(impl, gbuf, -1.0 / N, P, x))
    return out + (g1,) if return_input_grad else out


def fgsm_gradalign_loss_and_grad(params: CNNParams, x, y, eta, eps: float, *, alpha: float | None = None,
                                 lam: float, both: bool = False, backend: str = "numba"):
    """The gradient of one FGSM-AT + GradAlign training step, in one fused pass.

    With g₁ = ∇ₓℓ(xₙ, yₙ) (the clean input gradient, needed by both FGSM and GradAlign):

        δₙ = Π(α sign g₁ₙ),   Π(d) = clip(x + clip(d, −ε, ε), 0, 1) − x      (FGSM, eq. 2.2; α = ε
                                                                            by default)
        L = (1/N) Σₙ ℓ(xₙ + δₙ, yₙ),   Ω as in :func:`gradalign_loss_and_grad` (noise ``eta``),

    returns ``(L, Ω, ∇_θ (L + λ Ω), δ)`` with δ held fixed in ∇_θ L (as FGSM AT does) and ``both``
    as in :func:`gradalign_loss_and_grad`. The result equals

        δ = attacks.pgd(params, x, y, ε, α, 1, 1, random_start=False)    (= attacks.fgsm for α = ε)
        L, gL = loss_and_grad(params, x + δ, y)
        Ω, gΩ = gradalign_loss_and_grad(params, x, y, eta, both=both)
        grad = gL + λ gΩ

    up to rounding (δ bitwise), but the numba kernel computes the clean pass once and shares the
    sweeps over the dense layer between the points x + δ and x + η, so that an FGSM + GradAlign
    step costs less than 2× an FGSM step (``python -m toymodels.bench cnn_epoch_gradalign``)."""
    impl = _impl(backend)
    eps = check_nonneg("eps", eps)
    alpha = eps if alpha is None else check_nonneg("alpha", alpha)
    lam = check_nonneg("lam", lam)
    P, x, y = _validate(params, x, y)
    eta = _perturbation(eta, x, "eta")
    N = x.shape[0]
    delta = np.empty_like(x)
    ls = np.empty(N)
    cos = np.empty(N)
    gbuf = _gbuf(P, x)
    impl.fgsm_gradalign(x, y, eta, *P, eps, alpha, lam, bool(both), delta, ls, cos, gbuf)
    return float(ls.mean()), float(np.mean(1.0 - cos)), _grad_from_buf(impl, gbuf, 1.0 / N, P, x), delta
