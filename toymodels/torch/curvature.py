"""Hessian curvature of any ``nn.Module``: Hessian-vector products, top eigenvalues, Hutchinson trace and
stochastic-Lanczos spectral density (the measures of PyHessian, Yao et al. 2020), plain or rescaled
(adaptive, thesis Sec. 7.3 / App. 7.8.1), on all parameters or a subset (per layer), over a dataset in chunks.

Objective. For data given as chunks B_1, …, B_J (``batches``: an iterable of (x, y) pairs, or one pair)
with N = Σ_j |B_j| points and the parameters w ∈ R^P (the tensors of ``params`` flattened in order;
default: every parameter of the model that requires grad),

    L(w) = (1/N) Σ_j |B_j| · loss_fn(f_w(x_j), y_j),

where ``loss_fn`` returns the *mean* loss over its chunk (default: cross-entropy), so that
|B_j| · loss_fn = Σ_{i∈B_j} ℓ_i and L is the mean loss over all N points. H = ∇²L(w) is computed as the
sum over chunks of the Hessian-vector products of |B_j| · loss_fn, divided by N at the end (one chunk:
loss_fn itself, already the mean): chunking is exact (up to rounding), whatever the chunk sizes, with
``bn_mode="eval"``; in train mode BatchNorm uses each chunk's own statistics, so the objective itself
depends on the chunking.

Rescaled (adaptive) Hessian. With a scale vector c ∈ R^P, the Hessian of γ ↦ L(w + c ⊙ γ) at γ = 0,

    H_c = diag(c) H diag(c) = H ⊙ c cᵀ,

which is the matrix whose λ_max and trace give the ρ → 0 limits of worst-case ℓ₂ and average-case
adaptive sharpness (thesis Prop. 7.8.1/7.8.2: S_max → ρ²/2 λ_max(H_c), S_avg → ρ²/2 tr(H_c)).
``adaptive=True`` uses c = |w| (elementwise adaptive sharpness, as :mod:`toymodels.torch.sharpness`);
``scale=`` takes any other c (e.g. the DLN rescaling of :func:`toymodels.sharpness.dln.dln_rescaling`).
The issue's phrase "Hessian of w ↦ L(c ⊙ w) at c = |w|" is the same matrix evaluated at w' = sign(w):
d²/dw'² L(c ⊙ w') = diag(c) H(c ⊙ w') diag(c) with c ⊙ w' = w.

Model state. During a call the model is in eval mode (dropout off, BatchNorm on its running statistics)
unless ``bn_mode="train"``, which puts only the BatchNorm layers in train mode (batch statistics; dropout
stays off so that H is deterministic). On exit (also on error) every module's train/eval flag and every
buffer (BatchNorm running statistics, which a train-mode forward updates) are restored; parameters are
never written and ``.grad`` is not touched (gradients come from :func:`torch.autograd.grad`).

HVPs are double backprop (Pearlmutter's trick): g = ∇L by a backward pass with ``create_graph=True``,
then Hv = ∇(gᵀv). With a single chunk the graph of g is kept between products (``retain_graph``), so
each product costs one extra backward pass, as in PyHessian; with several chunks each product re-runs
forward and backward per chunk (memory of one chunk). ``torch.func`` (``jvp`` of ``grad``,
forward-over-reverse) was measured and not used: on CPU (1 thread) graph + 3 products on PreAct ResNet-18
with 8 images took 9.0 s against 7.6 s here (PyHessian 8.0 s); on the small CNN it was on par.

Randomness: start vectors and probe vectors are drawn with numpy from the named streams
``(seed, "curvature/…")`` of :mod:`toymodels.rng` in float64 and cast to the parameters' dtype/device,
so a seed gives the same probes on cpu and cuda.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, check_choice, check_int, check_positive
from ..rng import stream

__all__ = ["BN_MODES", "METHODS", "HessianOperator", "EigenResult", "TraceResult", "DensityResult",
           "as_batches", "layer_groups", "hvp", "top_eigenvalues", "trace", "density", "density_on_grid",
           "dense_hessian"]

BN_MODES = ("eval", "train")
#: top-eigenvalue algorithms: power iteration with deflation (PyHessian) or Lanczos (full reorthogonalization)
METHODS = ("power", "lanczos")


def _default_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(z, y)


# ----------------------------------------------------------------------------------------------------
# data, parameters, model state

def as_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None) -> list:
    """(x, y) cut into consecutive chunks of at most ``batch_size`` points (None: one chunk)."""
    n = int(x.shape[0])
    if n < 1:
        raise ConfigError("x", "must hold at least one point", n)
    if int(y.shape[0]) != n:
        raise ConfigError("y", f"must have as many points as x ({n})", int(y.shape[0]))
    bs = n if batch_size is None else check_int("batch_size", batch_size, 1)
    return [(x[s:s + bs], y[s:s + bs]) for s in range(0, n, bs)]


def _batches(batches) -> list:
    """A list of (x, y) chunks: one (x, y) pair of tensors is one chunk; an iterator is materialized
    (products iterate over the data many times)."""
    if isinstance(batches, (tuple, list)) and len(batches) == 2 and all(torch.is_tensor(t) for t in batches):
        batches = [tuple(batches)]
    try:
        out = [tuple(b) for b in batches]
    except TypeError:
        raise ConfigError("batches", "must be an (x, y) pair or an iterable of (x, y) chunks") from None
    if not out or any(len(b) != 2 for b in out):
        raise ConfigError("batches", "must hold at least one (x, y) chunk", len(out))
    for xb, yb in out:
        if int(xb.shape[0]) < 1 or int(xb.shape[0]) != int(yb.shape[0]):
            raise ConfigError("batches", "must be (x, y) chunks with the same number (>= 1) of points",
                              (tuple(xb.shape), tuple(yb.shape)))
    return out


def _params(model: torch.nn.Module, params) -> list:
    ps = [p for p in model.parameters() if p.requires_grad] if params is None else list(params)
    if not ps:
        raise ConfigError("params", "must hold at least one parameter that requires grad")
    if any(not isinstance(p, torch.Tensor) or not p.requires_grad for p in ps):
        raise ConfigError("params", "must be parameters of the model that require grad")
    if len({p.dtype for p in ps}) != 1 or len({p.device for p in ps}) != 1:
        raise ConfigError("params", "must share one dtype and device")
    return ps


def layer_groups(model: torch.nn.Module) -> dict:
    """``{module name: its own parameters}`` for every module holding parameters directly (a layer:
    weight and bias of a conv, linear or BatchNorm), in registration order; for per-layer curvature."""
    out = {}
    for name, mod in model.named_modules():
        own = [p for p in mod.parameters(recurse=False) if p.requires_grad]
        if own:
            out[name or "(root)"] = own
    return out


@contextmanager
def model_state(model: torch.nn.Module, bn_mode: str = "eval"):
    """Eval mode (BatchNorm in train mode when ``bn_mode="train"``); flags and buffers restored on exit."""
    check_choice("bn_mode", bn_mode, BN_MODES)
    flags = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    model.eval()
    if bn_mode == "train":
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.train()
    try:
        yield model
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        for m, t in flags:
            m.training = t


# ----------------------------------------------------------------------------------------------------
# the Hessian as a linear operator

class HessianOperator:
    """v ↦ H_c v (flat tensors of length P) for the mean loss over ``batches`` (module docstring).

    Use inside :func:`model_state` (the public functions do). ``n_products`` counts the products made.
    """

    def __init__(self, model, loss_fn, batches, params=None, *, adaptive: bool = False, scale=None,
                 progress_bar=None):
        self.model = model
        self.loss_fn = _default_loss if loss_fn is None else loss_fn
        self.batches = _batches(batches)
        self.params = _params(model, params)
        self.sizes = [p.numel() for p in self.params]
        self.dim = int(sum(self.sizes))
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.n_total = int(sum(int(xb.shape[0]) for xb, _ in self.batches))
        self.scale = self._scale(adaptive, scale)
        self.progress_bar = progress_bar
        self.n_products = 0
        self._graph = None            # ∇L per parameter, with its graph, when there is a single chunk

    def _scale(self, adaptive, scale):
        if scale is not None:
            if adaptive:
                raise ConfigError("scale", "must be None when adaptive=True (c = |w|)")
            c = self.flat(scale).detach().to(self.dtype)
            if c.numel() != self.dim or not bool(torch.isfinite(c).all()):
                raise ConfigError("scale", f"must be {self.dim} finite numbers (one per parameter)", c.numel())
            return c
        if adaptive:
            with torch.no_grad():
                return torch.cat([p.detach().reshape(-1) for p in self.params]).abs()
        return None

    def flat(self, v) -> torch.Tensor:
        """``v`` (a flat tensor or tensors shaped like ``params``) as one flat tensor on the device."""
        if isinstance(v, (list, tuple)):
            v = torch.cat([torch.as_tensor(t).reshape(-1) for t in v])
        v = torch.as_tensor(v)
        return v.reshape(-1).to(device=self.device, dtype=self.dtype)

    def unflat(self, v: torch.Tensor) -> list:
        return [c.view_as(p) for p, c in zip(self.params, v.split(self.sizes))]

    def _chunk_grad(self, xb, yb, weight) -> list:
        """∇(weight · loss_fn) per parameter, with its graph (weight = |B|: ∇ Σ_{i∈B} ℓ_i)."""
        out = self.model(xb.to(self.device))
        val = self.loss_fn(out, yb.to(self.device))
        if weight != 1:
            val = val * weight
        g = torch.autograd.grad(val, self.params, create_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if gi is None else gi for p, gi in zip(self.params, g)]

    def _product(self, g: list, v: torch.Tensor, retain: bool) -> torch.Tensor:
        """∇(gᵀv) flattened (zeros where g has no graph, e.g. a loss linear in a parameter)."""
        live = [i for i, gi in enumerate(g) if gi.requires_grad]
        out = torch.zeros(self.dim, device=self.device, dtype=self.dtype)
        if not live:
            return out
        vs = v.split(self.sizes)
        hv = torch.autograd.grad([g[i] for i in live], self.params, grad_outputs=[vs[i].view_as(g[i]) for i in live],
                                 retain_graph=retain, allow_unused=True)
        return torch.cat([torch.zeros_like(p).reshape(-1) if h is None else h.reshape(-1)
                          for p, h in zip(self.params, hv)])

    def _hv(self, v: torch.Tensor) -> torch.Tensor:
        """H v. One chunk: the graph of ∇L (the chunk's mean loss) is kept and reused. Several chunks:
        Σ_j ∇²(|B_j| · loss_fn) v, divided by N at the end."""
        with torch.enable_grad():
            if len(self.batches) == 1:
                if self._graph is None:
                    self._graph = self._chunk_grad(*self.batches[0], 1)
                return self._product(self._graph, v, retain=True)
            tot = None
            for xb, yb in self.batches:
                hv = self._product(self._chunk_grad(xb, yb, int(xb.shape[0])), v, retain=False)
                tot = hv if tot is None else tot + hv
            return tot / self.n_total

    def matvec(self, v) -> torch.Tensor:
        """H_c v = c ⊙ H (c ⊙ v) (H v without a scale), a flat tensor."""
        v = self.flat(v).detach()
        if self.scale is not None:
            v = self.scale * v
        hv = self._hv(v)
        if self.scale is not None:
            hv = self.scale * hv
        self.n_products += 1
        if self.progress_bar is not None:
            self.progress_bar.update(1)
        return hv.detach()

    __call__ = matvec

    def release(self) -> None:
        """Drop the retained graph (memory)."""
        self._graph = None

    def gaussian(self, rng) -> torch.Tensor:
        return torch.from_numpy(rng.standard_normal(self.dim)).to(device=self.device, dtype=self.dtype)

    def rademacher(self, rng) -> torch.Tensor:
        z = 2.0 * rng.integers(0, 2, self.dim).astype(np.float64) - 1.0
        return torch.from_numpy(z).to(device=self.device, dtype=self.dtype)


@contextmanager
def _operator(model, loss_fn, batches, params, adaptive, scale, bn_mode, progress_bar=None):
    with model_state(model, bn_mode):
        op = HessianOperator(model, loss_fn, batches, params, adaptive=adaptive, scale=scale,
                             progress_bar=progress_bar)
        try:
            yield op
        finally:
            op.release()


def hvp(model: torch.nn.Module, loss_fn: Callable | None, batches, v, params: Iterable | None = None, *,
        adaptive: bool = False, scale=None, bn_mode: str = "eval"):
    """Hessian-vector product H_c v of the mean loss L over ``batches`` (module docstring).

    Parameters
    ----------
    model : the network; ``loss_fn(model(x), y)`` must return the mean loss over the chunk (None:
        cross-entropy).
    batches : an (x, y) pair or an iterable of (x, y) chunks; chunking does not change the result.
    v : a flat tensor of length P, or tensors shaped like ``params``; the result has the same form.
    params : the parameters w (default: all that require grad); a subset gives that block of H.
    adaptive, scale : the rescaled Hessian diag(c) H diag(c) with c = |w| or c = ``scale``.
    bn_mode : "eval" (default) or "train" (BatchNorm on batch statistics).
    """
    with _operator(model, loss_fn, batches, params, adaptive, scale, bn_mode) as op:
        flat_in = torch.is_tensor(v) and v.dim() == 1 and v.numel() == op.dim
        vf = op.flat(v)
        if vf.numel() != op.dim:
            raise ConfigError("v", f"must hold {op.dim} numbers (one per parameter)", int(vf.numel()))
        hv = op.matvec(vf)
        return hv if flat_in else op.unflat(hv)


def dense_hessian(model, loss_fn, batches, params=None, *, adaptive=False, scale=None, bn_mode="eval"):
    """The P × P matrix H_c, column by column from P products (a readable reference for small models)."""
    with _operator(model, loss_fn, batches, params, adaptive, scale, bn_mode) as op:
        eye = torch.eye(op.dim, dtype=op.dtype, device=op.device)
        return torch.stack([op.matvec(eye[i]) for i in range(op.dim)], dim=1)


# ----------------------------------------------------------------------------------------------------
# top eigenvalues

@dataclass
class EigenResult:
    """Top-k eigenvalues of H_c, in the order found (power: decreasing |λ|; Lanczos: decreasing λ),
    the products each used (``iterations``; Lanczos: the step at which its Ritz value converged),
    whether each met the tolerance, and optionally the unit eigenvectors (flat, on the CPU)."""

    eigenvalues: list
    iterations: list
    converged: list
    method: str
    tol: float
    n_products: int
    eigenvectors: list | None = None

    def to_dict(self) -> dict:
        return {"eigenvalues": list(self.eigenvalues), "iterations": list(self.iterations),
                "converged": list(self.converged), "method": self.method, "tol": self.tol,
                "n_products": self.n_products}


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v)


def _orthogonalize(v: torch.Tensor, basis: list) -> torch.Tensor:
    for u in basis:
        v = v - torch.dot(v, u) * u
    return v


def _power(op: HessianOperator, k: int, tol: float, max_iter: int, seed: int):
    """Power iteration with deflation (PyHessian's ``eigenvalues``): the start vector and each iterate are
    orthogonalized against the eigenvectors found; stop when the Rayleigh quotient changes by less than
    ``tol`` relative, |λ_t − λ_{t−1}| / (|λ_{t−1}| + 1e-6) < tol."""
    vals, its, conv, vecs = [], [], [], []
    for j in range(k):
        rng = stream(seed, "curvature/power", j)
        v = _unit(_orthogonalize(op.gaussian(rng), vecs))
        lam, done, it = None, False, 0
        for it in range(1, max_iter + 1):
            v = _unit(_orthogonalize(v, vecs))
            hv = op.matvec(v)
            new = float(torch.dot(hv, v))
            nrm = float(torch.linalg.vector_norm(hv))
            if nrm == 0.0:                        # v in the null space: λ = 0 exactly
                lam, done = 0.0, True
                break
            v = hv / nrm
            if lam is not None and abs(lam - new) / (abs(lam) + 1e-6) < tol:
                lam, done = new, True
                break
            lam = new
        vals.append(lam)
        its.append(it)
        conv.append(done)
        vecs.append(v)
    return vals, its, conv, vecs


def _lanczos_steps(op: HessianOperator, v0: torch.Tensor, m: int, on_step=None):
    """m steps of Lanczos with full reorthogonalization from v0: (α, β, Q) with T = tridiag(β, α, β) and
    Q (m × P, rows orthonormal). Stops early on an invariant subspace (β ≤ 1e-10 ‖T‖) or when
    ``on_step(α, β)`` returns True."""
    q = _unit(v0)
    Q, alphas, betas = [q], [], []
    scale = 0.0
    for j in range(m):
        w = op.matvec(Q[-1])
        a = float(torch.dot(w, Q[-1]))
        alphas.append(a)
        # full reorthogonalization, twice (Gram-Schmidt is unstable once Ritz values converge)
        for _ in range(2):
            coeffs = torch.stack(Q) @ w
            w = w - coeffs @ torch.stack(Q)
        b = float(torch.linalg.vector_norm(w))
        scale = max(scale, abs(a), b)
        stop = on_step is not None and on_step(alphas, betas + [b])
        if stop or j == m - 1 or b <= 1e-10 * max(scale, 1e-300):
            betas.append(b)
            break
        betas.append(b)
        Q.append(w / b)
    return np.asarray(alphas), np.asarray(betas), torch.stack(Q[:len(alphas)])


def _tridiag(alphas, betas):
    return np.diag(alphas) + np.diag(betas[:len(alphas) - 1], 1) + np.diag(betas[:len(alphas) - 1], -1)


def _lanczos_top(op: HessianOperator, k: int, tol: float, max_iter: int, seed: int):
    """Top-k (algebraic) eigenvalues by Lanczos; Ritz pair i converged when its residual bound
    |β_m s_{m,i}| ≤ tol · |θ_i| (s_i the Ritz vector of T in the Lanczos basis)."""
    m = min(max_iter, op.dim)
    first = [None] * k

    def on_step(alphas, betas):
        j = len(alphas)
        if j < k:
            return False
        th, S = np.linalg.eigh(_tridiag(np.asarray(alphas), np.asarray(betas)))
        res = np.abs(betas[-1] * S[-1, ::-1][:k])
        for i in range(k):
            if first[i] is None and res[i] <= tol * max(abs(th[::-1][i]), 1e-300):
                first[i] = j
        return all(f is not None for f in first)

    alphas, betas, Q = _lanczos_steps(op, op.gaussian(stream(seed, "curvature/lanczos")), m, on_step)
    j = len(alphas)
    if j < k:
        raise ConfigError("k", f"must be <= {j} (the dimension of the Krylov space reached)", k)
    th, S = np.linalg.eigh(_tridiag(alphas, betas))
    order = np.argsort(th)[::-1][:k]
    exact = betas[-1] <= 1e-10 * max(np.max(np.abs(alphas)), betas.max(initial=0.0), 1e-300)
    res = np.abs(betas[-1] * S[-1, order])
    conv = [bool(exact or r <= tol * max(abs(th[i]), 1e-300)) for r, i in zip(res, order)]
    its = [first[n] if first[n] is not None else j for n in range(k)]
    S_t = torch.from_numpy(np.ascontiguousarray(S[:, order])).to(device=Q.device, dtype=Q.dtype)
    vecs = list((S_t.T @ Q).unbind(0))
    return [float(th[i]) for i in order], its, conv, vecs


def top_eigenvalues(model: torch.nn.Module, loss_fn: Callable | None, batches, params: Iterable | None = None, *,
                    k: int = 1, method: str = "power", tol: float = 1e-3, max_iter: int = 100, seed: int = 0,
                    return_vectors: bool = False, adaptive: bool = False, scale=None, bn_mode: str = "eval",
                    progress_bar=None) -> EigenResult:
    """The k top eigenvalues of H_c (module docstring).

    Parameters
    ----------
    k : how many (>= 1).
    method : "power" — power iteration with deflation, PyHessian's algorithm and stopping rule
        (relative change of the Rayleigh quotient < ``tol``; at most ``max_iter`` products per
        eigenvalue); it finds the eigenvalues of largest *magnitude*, in decreasing |λ| (a negative one
        can come first far from a minimum), and needs (k + 2) P numbers of memory. "lanczos" — Lanczos
        with full reorthogonalization (at most ``max_iter`` products in all, memory max_iter · P); it
        finds the algebraically largest and converges much faster when eigenvalues are close; each is
        converged when its Ritz residual is below ``tol`` relative.
    seed : the start vectors (streams ``(seed, "curvature/power", j)`` / ``(seed, "curvature/lanczos")``).
    return_vectors : also return the unit eigenvectors (flat, on the CPU).
    Other parameters as in :func:`hvp`.
    """
    check_int("k", k, 1)
    method = check_choice("method", method, METHODS)
    check_positive("tol", tol, 1.0)
    check_int("max_iter", max_iter, k if method == "lanczos" else 1)
    with _operator(model, loss_fn, batches, params, adaptive, scale, bn_mode, progress_bar) as op:
        if k > op.dim:
            raise ConfigError("k", f"must be <= the number of parameters ({op.dim})", k)
        run = _power if method == "power" else _lanczos_top
        vals, its, conv, vecs = run(op, k, tol, max_iter, seed)
        out = EigenResult(vals, its, conv, method, float(tol), op.n_products)
        if return_vectors:
            out.eigenvectors = [v.detach().cpu() for v in vecs]
    return out


# ----------------------------------------------------------------------------------------------------
# trace

@dataclass
class TraceResult:
    """Hutchinson estimate of tr(H_c): ``mean`` of zᵀH_c z over Rademacher z, ``se`` = std(ddof=1)/√n."""

    mean: float
    se: float
    n_samples: int
    converged: bool
    samples: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"trace": self.mean, "se": self.se, "n_samples": self.n_samples, "converged": self.converged,
                "samples": list(self.samples)}


def trace(model: torch.nn.Module, loss_fn: Callable | None, batches, params: Iterable | None = None, *,
          n_samples: int = 100, tol: float | None = None, seed: int = 0, adaptive: bool = False, scale=None,
          bn_mode: str = "eval", progress_bar=None) -> TraceResult:
    """Hutchinson's estimator tr(H_c) ≈ (1/n) Σ_s z_sᵀ H_c z_s, z_s ∈ {±1}^P i.i.d. uniform (unbiased;
    variance 2 Σ_{i≠j} (H_c)_{ij}² per sample), from the stream ``(seed, "curvature/trace")``.

    ``n_samples`` (>= 2) is the budget; with ``tol`` the loop stops early once at least 10 samples are in
    and se ≤ tol · |mean| (``converged``; without ``tol``, ``converged`` is True when the budget is
    spent). PyHessian instead stops when the running mean changes by less than ``tol`` relative, which
    says little about the error; the standard error is reported here either way.
    """
    check_int("n_samples", n_samples, 2)
    if tol is not None:
        check_positive("tol", tol)
    rng = stream(seed, "curvature/trace")
    vals = []
    with _operator(model, loss_fn, batches, params, adaptive, scale, bn_mode, progress_bar) as op:
        for _ in range(n_samples):
            z = op.rademacher(rng)
            vals.append(float(torch.dot(z, op.matvec(z))))
            if tol is not None and len(vals) >= 10:
                m, s = float(np.mean(vals)), float(np.std(vals, ddof=1) / math.sqrt(len(vals)))
                if s <= tol * abs(m):
                    break
    m, s = float(np.mean(vals)), float(np.std(vals, ddof=1) / math.sqrt(len(vals)))
    conv = tol is None or s <= tol * abs(m)
    return TraceResult(m, s, len(vals), bool(conv), vals)


# ----------------------------------------------------------------------------------------------------
# spectral density

@dataclass
class DensityResult:
    """Stochastic Lanczos quadrature: per run r, the Ritz values ``nodes[r]`` and weights ``weights[r]``
    (squared first components of T's eigenvectors; they sum to 1), so that the spectral density
    φ(t) = (1/P) Σ_i δ(t − λ_i) is approximated by (1/n_v) Σ_r Σ_l weights[r][l] δ(t − nodes[r][l])."""

    nodes: list
    weights: list
    dim: int

    def moments(self, power: int = 1) -> np.ndarray:
        """Σ_l w_l θ_l^power per run (power 1: zᵀH_c z / P for the run's Rademacher z, whose mean over
        z is tr(H_c) / P)."""
        return np.array([np.sum(np.asarray(w) * np.asarray(t) ** power) for t, w in zip(self.nodes, self.weights)])

    def to_dict(self) -> dict:
        return {"nodes": [list(t) for t in self.nodes], "weights": [list(w) for w in self.weights],
                "n_params": self.dim}


def density(model: torch.nn.Module, loss_fn: Callable | None, batches, params: Iterable | None = None, *,
            n_iter: int = 100, n_v: int = 1, seed: int = 0, adaptive: bool = False, scale=None,
            bn_mode: str = "eval", progress_bar=None) -> DensityResult:
    """Spectral density of H_c by stochastic Lanczos quadrature (PyHessian's ``density``, Ghorbani et
    al. 2019): ``n_v`` runs of ``n_iter`` Lanczos steps (full reorthogonalization; fewer when the Krylov
    space is exhausted, e.g. n_iter > P) from a normalized Rademacher vector (stream
    ``(seed, "curvature/slq", r)``). Memory n_iter · P numbers."""
    check_int("n_iter", n_iter, 1)
    check_int("n_v", n_v, 1)
    nodes, weights = [], []
    with _operator(model, loss_fn, batches, params, adaptive, scale, bn_mode, progress_bar) as op:
        for r in range(n_v):
            z = op.rademacher(stream(seed, "curvature/slq", r))
            alphas, betas, _ = _lanczos_steps(op, z, min(n_iter, op.dim))
            th, S = np.linalg.eigh(_tridiag(alphas, betas))
            nodes.append([float(t) for t in th])
            weights.append([float(w) for w in S[0] ** 2])
        dim = op.dim
    return DensityResult(nodes, weights, dim)


def density_on_grid(nodes, weights, grid=None, *, n_points: int = 10000, sigma2: float = 1e-5, pad: float = 0.01):
    """Gaussian-smoothed SLQ density on a grid (PyHessian's ``density_generate``): each node becomes a
    normal density of variance σ² = ``sigma2`` · max(1, λ_hi − λ_lo), weighted, averaged over runs.
    Default grid: ``n_points`` points on [min − pad − 6σ, max + pad + 6σ] (wide enough that it integrates
    to 1 up to the trapezoid rule; PyHessian renormalizes on a narrower grid instead). Returns
    (grid, density) as numpy arrays."""
    check_int("n_points", n_points, 2)
    check_positive("sigma2", sigma2)
    allv = np.concatenate([np.asarray(t, dtype=np.float64) for t in nodes])
    lo, hi = float(allv.min()) - pad, float(allv.max()) + pad
    var = sigma2 * max(1.0, hi - lo)
    sd = math.sqrt(var)
    if grid is None:
        grid = np.linspace(lo - 6 * sd, hi + 6 * sd, n_points)
    grid = np.asarray(grid, dtype=np.float64)
    dens = np.zeros_like(grid)
    for t, w in zip(nodes, weights):
        t, w = np.asarray(t, dtype=np.float64), np.asarray(w, dtype=np.float64)
        dens += (w[None, :] * np.exp(-(grid[:, None] - t[None, :]) ** 2 / (2 * var))).sum(1)
    return grid, dens / (len(nodes) * math.sqrt(2 * math.pi * var))
