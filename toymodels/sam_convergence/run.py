"""SAM iterations on the test problems: full-batch SAM (eq. 5.20) and stochastic n-SAM (eq. 5.21) /
m-SAM (eq. 5.4).

Full batch (any problem with ``grad``/``loss``):  w_{t+1} = w_t − γ_t ∇L(w_t + ρ_t ∇L(w_t)).
Stochastic (:class:`~.problems.Separable`): with I_t, J_t two batches of b i.i.d. uniform indices
(with replacement, so the batch-gradient variance is exactly σ²/b),

    w_{t+1} = w_t − γ_t ∇L_{I_t}(w_t + ρ_t ∇L_{J_t}(w_t)),   ∇L_I = (1/b) Σ_{i∈I} ∇ℓ_i;

n-SAM draws J_t independently of I_t, m-SAM uses J_t = I_t. The hot stochastic loops (many runs × T
steps) are the numba kernels :func:`._kernels.sam_separable` (:class:`~.problems.Separable`) and
:func:`._kernels.sam_logistic` (:class:`~.problems.Logistic`), with their numpy references of the same names in
:mod:`._reference`; :func:`sam_stochastic_reference` is the same iteration written generically (any problem
with ``loss``, ``grad``, ``grad_batch``), an oracle independent of both.
"""
from __future__ import annotations

import numpy as np

from ..backends import check_backend
from ..errors import check_int
from ..rng import stream
from . import _kernels, _reference
from .problems import Logistic, Separable

__all__ = ["sam_full_batch", "draw_batches", "sam_stochastic", "sam_stochastic_reference",
           "sam_stochastic_many"]


def sam_full_batch(problem, w0, gammas, rhos):
    """Run (5.20) for T = len(gammas) steps. Returns (W (T+1, d), losses (T+1,), grad_norm2 (T+1,)).

    Raises FloatingPointError at the first non-finite iterate (naming the step)."""
    gammas, rhos = np.asarray(gammas, float), np.asarray(rhos, float)
    T = gammas.size
    w = np.array(w0, float)
    W = np.empty((T + 1, w.size))
    W[0] = w
    for t in range(T):
        g = problem.grad(w)
        w = w - gammas[t] * problem.grad(w + rhos[t] * g)
        if not np.all(np.isfinite(w)):
            raise FloatingPointError(f"SAM diverged at step {t + 1}")
        W[t + 1] = w
    G = problem.grad(W)
    return W, problem.loss(W), np.sum(G * G, -1)


def draw_batches(rng, n, b, T, same: bool):
    """I, J of shape (T, b), i.i.d. uniform in [0, n); J is I for m-SAM (same=True)."""
    I = rng.integers(0, n, size=(T, b))
    J = I if same else rng.integers(0, n, size=(T, b))
    return I, J


def sam_stochastic_reference(problem, w0, gammas, rhos, I, J):
    """Stochastic SAM on any problem with ``loss``, ``grad``, ``grad_batch`` (plain numpy, through the
    problem's own methods): returns (losses (T+1,), grad_norm2 (T+1,)) as :func:`sam_stochastic` does."""
    w = np.array(w0, float)
    T = len(gammas)
    losses, g2 = np.empty(T + 1), np.empty(T + 1)
    for t in range(T + 1):
        g = problem.grad(w)
        losses[t], g2[t] = problem.loss(w), g @ g
        if t == T:
            break
        wh = w + rhos[t] * problem.grad_batch(w, J[t])
        w = w - gammas[t] * problem.grad_batch(wh, I[t])
    return losses, g2


def sam_stochastic(problem, w0, gammas, rhos, I, J, backend: str = "numba"):
    """Stochastic SAM with the batches I, J (shape (T, b)) for :class:`~.problems.Separable` and
    :class:`~.problems.Logistic`: the kernel :mod:`._kernels` (``backend="numba"``) or its numpy reference
    :mod:`._reference` (``"numpy"``). Returns (losses (T+1,), grad_norm2 (T+1,)); raises FloatingPointError
    at the first non-finite loss (naming the step). Same results as :func:`sam_stochastic_reference`."""
    impl = _kernels if check_backend(backend) == "numba" else _reference
    T = len(gammas)
    losses, g2 = np.empty(T + 1), np.empty(T + 1)
    args = (np.asarray(w0, float), np.asarray(gammas, float), np.asarray(rhos, float),
            np.ascontiguousarray(I, np.int64), np.ascontiguousarray(J, np.int64), losses, g2)
    if isinstance(problem, Separable):
        bad = impl.sam_separable(problem.a, problem.s, problem.C, *args)
    elif isinstance(problem, Logistic):
        bad = impl.sam_logistic(problem.X, problem.y, float(problem.lam), *args)
    else:
        raise TypeError(f"no stochastic kernel for {type(problem).__name__}; use sam_stochastic_reference")
    if bad >= 0:
        raise FloatingPointError(f"stochastic SAM diverged at step {bad}")
    return losses, g2


def sam_stochastic_many(problem, w0, gammas, rhos, b, runs: int, seed: int = 0, same: bool = False,
                        backend: str = "numba"):
    """``runs`` independent runs; run r draws its batches from the stream ``(seed, "run", r)`` of
    :mod:`toymodels.rng` (so run r is the same whatever the number of runs, and neighbouring seeds share
    no stream). Returns (losses (runs, T+1), grad_norm2 (runs, T+1))."""
    runs = check_int("runs", runs, 1)
    T = len(gammas)
    out_L, out_g = np.empty((runs, T + 1)), np.empty((runs, T + 1))
    for r in range(runs):
        I, J = draw_batches(stream(seed, "run", r), problem.n, b, T, same)
        out_L[r], out_g[r] = sam_stochastic(problem, w0, gammas, rhos, I, J, backend)
    return out_L, out_g
