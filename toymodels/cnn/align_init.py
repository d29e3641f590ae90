r"""Gradient alignment at initialization of a single-layer CNN (thesis Ch. 2, Lemma 2, eqs. 2.5,
2.6, 2.9, 2.10; thesis.txt l.439–464 and l.531–597).

Model (the one the proof of Lemma 2 expands, thesis l.439–441 and l.541)
-----------------------------------------------------------------------
An input x ∈ ℝ^{kp} is the concatenation of k **non-overlapping** patches z₁, …, z_k ∈ ℝ^p. With m
filters w_r ∈ ℝ^p, biases b = 0 and outgoing weights u_{ri} (filter r, patch i; U ∈ ℝ^{m×k}),

    f(x) = Σ_{r=1}^m Σ_{i=1}^k u_{ri} max{⟨w_r, z_i⟩, 0} + c,
    [∇ₓf(x)]_{patch i} = Σ_{r=1}^m u_{ri} 1[⟨w_r, z_i⟩ ≥ 0] w_r.

For a loss ℓ(x, y) = L(y f(x)) whose derivative has a constant sign (logistic / binary
cross-entropy), ∇ₓℓ = L'(y f) y ∇ₓf, so the loss-derivative scalar cancels in the cosine:
cos(∇ₓℓ(x), ∇ₓℓ(x+η)) = cos(∇ₓf(x), ∇ₓf(x+η)). That cosine is what is computed here; eq. 2.6 is
its m = 1 case. Random quantities (all independent): w_r ~ N(0, σ_w² I_p), u_{ri} ~ N(0, σ_u²),
z_i ~ U([0, 1]^p), η_i ~ U([−ε, ε]^p) (x + η is not clipped). Expanded (thesis l.541),

    cos = Σ_i c_iᵀ G c'_i / √(Σ_i c_iᵀ G c_i · Σ_i c'_iᵀ G c'_i),   G = W Wᵀ,
    c_i = u_{·i} ⊙ 1[W z_i ≥ 0],   c'_i = u_{·i} ⊙ 1[W (z_i + η_i) ≥ 0].

Scaling W or U scales both gradients, so **nothing here depends on σ_w or σ_u** (they are kept
for fidelity; defaults σ_w = √(2/p), He fan-in init of the filters, and σ_u = √(1/(mk)), LeCun
fan-in init of the linear layer).

Returned quantities
-------------------
``cos_finite_mean/std/se``
    Monte Carlo over ``samples`` independent draws of (W, U, Z, η) at the given k, m: mean, standard
    deviation (ddof = 1) and standard error std/√S. A draw in which a gradient is exactly zero
    (every ReLU off at x or at x + η; only plausible for tiny k·m) has no cosine: it is left out
    and counted in ``n_degenerate``.
``cos_pooled`` (± ``cos_pooled_se``, delta method)
    mean(⟨∇f(x),∇f(x+η)⟩) / √(mean ‖∇f(x)‖² · mean ‖∇f(x+η)‖²) over the same draws. The cross terms
    r ≠ l of the expanded sums have mean zero (u_{ri}u_{li}, r ≠ l, is independent of the rest with
    mean 0), so this ratio of expectations equals eq. 2.9 **exactly at every finite k, m**: a
    finite-size check of the limit.
``cos_limit`` (± ``cos_limit_se``)
    eq. 2.9, the k, m → ∞ limit. Writing w = ‖w‖θ with ‖w‖ independent of θ ~ U(S^{p−1}):
    E‖w‖² = pσ_w²; each denominator factor is E[‖w‖² 1[⟨w, z⟩ ≥ 0]] = ½pσ_w² (w ↦ −w symmetry; the
    thesis' 0.5pσ_w² is right, also with z + η); the numerator is pσ_w² P_θ(⟨θ,z⟩ ≥ 0, ⟨θ,z+η⟩ ≥ 0)
    and two half-spaces whose normals make an angle φ share a fraction (π − φ)/(2π) of the sphere.
    Hence, exactly in w,

        cos_limit = 1 − E_{z,η}[∠(z, z + η)] / π,

    evaluated by Monte Carlo over (z, η) with ``limit_samples`` draws (angle by Kahan's stable
    2·atan2(‖ẑ − x̂‖, ‖ẑ + x̂‖)); the error estimate is std(∠)/(π√n). Since z is a positive
    combination of z + η and z − η, ∠(z, z+η) + ∠(z, z−η) ≤ π, so cos_limit ≥ ½ for every ε (→ ½ as
    ε → ∞). Why it is the limit: in the expanded numerator and denominators divided by km, the
    r = l terms converge to the expectations of eq. 2.9 as k, m → ∞, and the r ≠ l terms have mean
    zero and relative size O(1/√(kp)) — they vanish because k → ∞ (m → ∞ alone would not remove
    them); m → ∞ averages over filters.
``bound_hoeffding`` (Fig. 2.9's "first lower bound", thesis l.591)
    max{1 − (1/(pσ_w²)) E_{w,z}[‖w‖² e^{−⟨θ,z⟩²/(2ε²)}], ½} = max{1 − E_{θ,z}[e^{−⟨θ,z⟩²/(2ε²)}], ½}.
``bound_cs`` (after Cauchy–Schwarz, thesis l.561 divided by ½pσ_w², l.576)
    max{1 − √(1 + 2/p) · E_{θ,z}[e^{−⟨θ,z⟩²/ε²}]^{1/2}, ½}.
``bound_final`` (eq. 2.10, the statement of Lemma 2)
    max{1 − √2 · E_{θ,z}[e^{−⟨θ,z⟩²/ε²}]^{1/2}, ½}.

The θ-expectations are exact: ⟨θ, z⟩ = ‖z‖ t with t² ~ Beta(½, (p−1)/2), so
E_θ[e^{−a t²}] = ₁F₁(½; p/2; −a) (the Beta moment generating function); only z is sampled (the same
z as for ``cos_limit``). Each bound's error estimate comes from the sample std over z (delta method
for the square root); ``*_term`` are the values before max{·, ½}, and the ``*_se`` refer to them.
By construction cos_limit ≥ bound_hoeffding ≥ bound_cs ≥ bound_final ≥ ½ (the first is the
lemma, the others hold draw by draw: Jensen and √(1+2/p) ≤ √2 for p ≥ 2).

Random numbers
--------------
Draws come in chunks (of a size that depends only on (p, k, m) for the finite-k, m cosine, 2¹⁴ for
the limit); chunk c draws each array from its own named stream of :mod:`toymodels.rng`,
``(seed, "align-init/<array>", c)`` with <array> ∈ {W, U, Z, V} for the finite-k, m cosine and
{limit/z, limit/V} for the limit and the bounds, so the first S draws do not depend on the
requested total. The noise is η = ε(2V − 1) with V ~ U[0, 1): runs that differ only in ε share all
draws (smooth curves in ε).
"""
from __future__ import annotations

import math
import time

import numpy as np
from scipy.special import hyp1f1

from ..errors import ConfigError, check_int, check_range
from ..progress import progress
from ..rng import check_seed, stream
from .model import _impl

__all__ = ["align_init", "finite_alignment_samples", "limit_and_bounds", "EPS_MAX", "P_MAX", "K_MAX", "M_MAX",
           "SAMPLES_MAX", "LIMIT_SAMPLES_MAX", "PER_SAMPLE_MAX", "SIGMA_MIN", "SIGMA_MAX",
           "RESULT_KEYS"]

EPS_MAX = 1000.0
P_MAX, K_MAX, M_MAX = 10_000, 1_000_000, 100_000
#: Monte-Carlo draws at most (finite k, m: 4 numbers of output a draw; limit: 16 bytes a draw per chunk)
SAMPLES_MAX, LIMIT_SAMPLES_MAX = 10 ** 8, 10 ** 9
#: init scales (the results do not depend on them; far outside, W Wᵀ under- or overflows)
SIGMA_MIN, SIGMA_MAX = 1e-50, 1e50
#: doubles drawn per finite-k,m sample at most (W, U, Z, V): 8·10⁷ bytes
PER_SAMPLE_MAX = 10_000_000
#: doubles drawn per chunk of finite-k,m samples (≈32 MB)
CHUNK_DOUBLES = 1 << 22
LIMIT_CHUNK = 1 << 14
RESULT_KEYS = ("cos_finite_mean", "cos_finite_std", "cos_finite_se", "cos_limit", "bound_hoeffding",
               "bound_final")


# ------------------------------------------------------------------------------------- validation
def _resolve(p, k, m, eps, samples, sigma_w, sigma_u, seed, limit_samples) -> dict:
    p = check_int("p", p, 2, P_MAX)
    k = check_int("k", k, 1, K_MAX)
    m = check_int("m", m, 1, M_MAX)
    eps = check_range("eps", eps, 0.0, EPS_MAX, lo_open=True)
    samples = check_int("samples", samples, 2, SAMPLES_MAX)
    limit_samples = check_int("limit_samples", limit_samples, 100, LIMIT_SAMPLES_MAX)
    seed = check_seed(seed)
    per = _per_sample(p, k, m)
    if per > PER_SAMPLE_MAX:
        raise ConfigError("k", f"is too large together with m and p: one sample needs 2kp + mp + mk = {per} "
                               f"random numbers, at most {PER_SAMPLE_MAX}", k)
    sigma_w = math.sqrt(2.0 / p) if sigma_w is None else check_range("sigma_w", sigma_w, SIGMA_MIN, SIGMA_MAX)
    sigma_u = math.sqrt(1.0 / (m * k)) if sigma_u is None else check_range("sigma_u", sigma_u, SIGMA_MIN, SIGMA_MAX)
    return {"p": p, "k": k, "m": m, "eps": eps, "samples": samples, "limit_samples": limit_samples,
            "sigma_w": sigma_w, "sigma_u": sigma_u, "seed": seed}


def _per_sample(p: int, k: int, m: int) -> int:
    return 2 * k * p + m * p + m * k


def _chunk_size(p: int, k: int, m: int) -> int:
    return int(max(1, min(4096, CHUNK_DOUBLES // _per_sample(p, k, m))))


def _chunk_rngs(seed: int, names, chunk: int) -> list:
    """The generators of chunk number ``chunk``, one named stream (seed, "align-init/<name>", chunk)
    per array. One generator per array keeps every array of a short last chunk a prefix of the
    full-size one, so the first S draws never depend on the requested total."""
    return [stream(seed, f"align-init/{name}", chunk) for name in names]


#: the streams of the finite-k, m draws (W, U, Z, V) and of the limit and the bounds (z, V)
FINITE_STREAMS = ("W", "U", "Z", "V")
LIMIT_STREAMS = ("limit/z", "limit/V")


# -------------------------------------------------------------------------------------- finite k, m
def _draw_chunk(rngs, n, p, k, m, eps, sigma_w, sigma_u):
    """One chunk of n draws of W, U, Z and η = ε(2V − 1), each array from its own generator."""
    gw, gu, gz, gv = rngs
    W = sigma_w * gw.standard_normal((n, m, p))
    U = sigma_u * gu.standard_normal((n, m, k))
    Z = gz.random((n, k, p))
    H = eps * (2.0 * gv.random((n, k, p)) - 1.0)
    return W, U, Z, H


def finite_alignment_samples(p=27, k=100, m=4, eps=8 / 255, samples=2000, sigma_w=None, sigma_u=None,
                             seed=0, *, backend="numba", show_progress=False) -> dict:
    """Per-draw inner products of ∇ₓf(x) and ∇ₓf(x + η) for the finite-k, m CNN of the module
    docstring.

    Parameters
    ----------
    backend : {"numba", "numpy"}
        The numba kernel or its numpy reference (same draws, same results up to rounding).

    Returns
    -------
    dict
        ``num``, ``n0``, ``n1`` (float arrays of length ``samples``: ⟨∇f(x), ∇f(x+η)⟩, ‖∇f(x)‖²,
        ‖∇f(x+η)‖²), ``flips`` (int array: ReLU units that change between x and x + η) and the
        resolved ``config``.
    """
    impl = _impl(backend)
    cfg = _resolve(p, k, m, eps, samples, sigma_w, sigma_u, seed, 1000)
    p, k, m, S = cfg["p"], cfg["k"], cfg["m"], cfg["samples"]
    num, n0, n1 = np.empty(S), np.empty(S), np.empty(S)
    flips = np.empty(S, dtype=np.int64)
    chunk = _chunk_size(p, k, m)
    with progress(S, disable=not show_progress, desc="finite k,m", unit="draw") as bar:
        for s0 in range(0, S, chunk):
            n = min(chunk, S - s0)
            rngs = _chunk_rngs(cfg["seed"], FINITE_STREAMS, s0 // chunk)
            W, U, Z, H = _draw_chunk(rngs, n, p, k, m, cfg["eps"], cfg["sigma_w"], cfg["sigma_u"])
            impl.alignment_terms(W, U, Z, H, num[s0:s0 + n], n0[s0:s0 + n], n1[s0:s0 + n], flips[s0:s0 + n])
            bar.update(n)
    cfg.pop("limit_samples")
    return {"num": num, "n0": n0, "n1": n1, "flips": flips, "config": cfg}


def _finite_summary(d: dict, k: int, m: int) -> dict:
    num, n0, n1 = d["num"], d["n0"], d["n1"]
    ok = (n0 > 0) & (n1 > 0)
    cos = np.full(num.shape, np.nan)
    cos[ok] = num[ok] / np.sqrt(n0[ok] * n1[ok])
    c = cos[ok]
    n = c.size
    mean = float(c.mean()) if n else float("nan")
    std = float(c.std(ddof=1)) if n > 1 else float("nan")
    # ratio of means N̄/√(Ā B̄) and its delta-method standard error (log scale)
    S = num.size
    mN, mA, mB = num.mean(), n0.mean(), n1.mean()
    if mN > 0 and mA > 0 and mB > 0:
        pooled = float(mN / math.sqrt(mA * mB))
        g = np.array([1.0 / mN, -0.5 / mA, -0.5 / mB])
        cov = np.cov(np.vstack([num, n0, n1]))
        pooled_se = float(pooled * math.sqrt(max(g @ cov @ g, 0.0) / S))
    else:
        pooled, pooled_se = float("nan"), float("nan")
    return {"cos_finite_mean": mean, "cos_finite_std": std,
            "cos_finite_se": std / math.sqrt(n) if n > 1 else float("nan"),
            "cos_finite_n": int(n), "n_degenerate": int(S - n),
            "cos_pooled": pooled, "cos_pooled_se": pooled_se,
            "flip_fraction": float(d["flips"].mean() / (k * m))}, cos


# ---------------------------------------------------------------------------------- limit, bounds
class _Moments:
    """Running mean and M2 (Chan et al.) of several named series, combined chunk by chunk."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, {}, {}

    def add(self, **series):
        nb_ = next(iter(series.values())).size
        for key, x in series.items():
            mb, m2b = float(x.mean()), float(((x - x.mean()) ** 2).sum())
            if self.n == 0:
                self.mean[key], self.m2[key] = mb, m2b
            else:
                delta = mb - self.mean[key]
                tot = self.n + nb_
                self.mean[key] += delta * nb_ / tot
                self.m2[key] += m2b + delta * delta * self.n * nb_ / tot
        self.n += nb_

    def se(self, key):
        return math.sqrt(self.m2[key] / (self.n - 1) / self.n)


def _angle(z, x):
    """∠(z, x) row by row, Kahan's formula 2·atan2(‖ẑ − x̂‖, ‖ẑ + x̂‖) (accurate for tiny angles)."""
    zh = z / np.linalg.norm(z, axis=1, keepdims=True)
    xh = x / np.linalg.norm(x, axis=1, keepdims=True)
    return 2.0 * np.arctan2(np.linalg.norm(zh - xh, axis=1), np.linalg.norm(zh + xh, axis=1))


def limit_and_bounds(p=27, eps=8 / 255, limit_samples=200_000, seed=0) -> dict:
    """eq. 2.9 (``cos_limit``) and the lower bounds of the proof of Lemma 2, with Monte-Carlo
    standard errors; see the module docstring for the formulas. Independent of k, m, σ_w, σ_u."""
    cfg = _resolve(p, 1, 1, eps, 2, None, None, seed, limit_samples)
    p, eps, n_tot = cfg["p"], cfg["eps"], cfg["limit_samples"]
    mom = _Moments()
    for s0 in range(0, n_tot, LIMIT_CHUNK):
        n = min(LIMIT_CHUNK, n_tot - s0)
        gz, gv = _chunk_rngs(cfg["seed"], LIMIT_STREAMS, s0 // LIMIT_CHUNK)
        z = gz.random((n, p))
        x = z + eps * (2.0 * gv.random((n, p)) - 1.0)
        s = np.einsum("ij,ij->i", z, z)                              # ‖z‖²
        mom.add(angle=_angle(z, x),
                h=hyp1f1(0.5, 0.5 * p, -s / (2.0 * eps * eps)),      # E_θ exp(−⟨θ,z⟩²/(2ε²))
                f=hyp1f1(0.5, 0.5 * p, -s / (eps * eps)))            # E_θ exp(−⟨θ,z⟩²/ε²)
    ea, eh, ef = mom.mean["angle"], mom.mean["h"], mom.mean["f"]
    c_cs = math.sqrt(1.0 + 2.0 / p)
    sq = math.sqrt(ef)
    se_sqrt = mom.se("f") / (2.0 * sq) if sq > 0 else float("nan")
    hoeff = 1.0 - eh
    cs = 1.0 - c_cs * sq
    final = 1.0 - math.sqrt(2.0) * sq
    return {"cos_limit": 1.0 - ea / math.pi, "cos_limit_se": mom.se("angle") / math.pi,
            "bound_hoeffding": max(hoeff, 0.5), "bound_hoeffding_term": hoeff,
            "bound_hoeffding_se": mom.se("h"),
            "bound_cs": max(cs, 0.5), "bound_cs_term": cs, "bound_cs_se": c_cs * se_sqrt,
            "bound_final": max(final, 0.5), "bound_final_term": final,
            "bound_final_se": math.sqrt(2.0) * se_sqrt,
            "E_exp_half": eh, "E_exp_full": ef,
            "config": {"p": p, "eps": eps, "limit_samples": n_tot, "seed": cfg["seed"]}}


# ---------------------------------------------------------------------------------------- public
def align_init(p=27, k=100, m=4, eps=8 / 255, samples=2000, sigma_w=None, sigma_u=None, seed=0, *,
               limit_samples=200_000, backend="numba", show_progress=False,
               return_samples=False) -> dict:
    """Gradient alignment cos(∇ₓℓ(x), ∇ₓℓ(x+η)) of a randomly initialized single-layer CNN: at finite
    k patches and m filters (Monte Carlo), its k, m → ∞ limit (eq. 2.9) and the lower bounds of
    Lemma 2 (Hoeffding, Cauchy–Schwarz, eq. 2.10). Model, formulas and error estimates: see the
    module docstring.

    Parameters
    ----------
    p : int ≥ 2
        patch dimension (27 = 3×3×3 as for CIFAR-10).
    k, m : int ≥ 1
        number of non-overlapping patches and of filters.
    eps : float in (0, 1000]
        ℓ∞ radius of the uniform noise η ~ U([−ε, ε]^{kp}).
    samples : int ≥ 2
        Monte-Carlo draws of (W, U, Z, η) for the finite-k, m cosine.
    sigma_w, sigma_u : float in [1e-50, 1e50] or None
        init scales (None: √(2/p) and √(1/(mk))); the results do not depend on them.
    seed : int ≥ 0
    limit_samples : int ≥ 100
        draws of (z, η) for the limit and the bounds.
    backend : {"numba", "numpy"}
        finite-k, m kernel or its numpy reference.
    return_samples : bool
        also return the per-draw cosines (key ``cos_samples``, NaN for degenerate draws).

    Returns
    -------
    dict
        ``cos_finite_mean``, ``cos_finite_std``, ``cos_finite_se``, ``cos_limit``,
        ``bound_hoeffding``, ``bound_final`` and the extras ``cos_finite_n``, ``n_degenerate``,
        ``cos_pooled(_se)``, ``flip_fraction``, ``cos_limit_se``, ``bound_cs``, ``*_term``,
        ``*_se``, ``seconds`` and the resolved ``config``.

    Raises
    ------
    toymodels.errors.ConfigError
        on invalid input (names the parameter and its valid range).
    """
    cfg = _resolve(p, k, m, eps, samples, sigma_w, sigma_u, seed, limit_samples)
    t0 = time.perf_counter()
    fin = finite_alignment_samples(cfg["p"], cfg["k"], cfg["m"], cfg["eps"], cfg["samples"],
                                   cfg["sigma_w"], cfg["sigma_u"], cfg["seed"], backend=backend,
                                   show_progress=show_progress)
    t1 = time.perf_counter()
    summary, cos = _finite_summary(fin, cfg["k"], cfg["m"])
    lim = limit_and_bounds(cfg["p"], cfg["eps"], cfg["limit_samples"], cfg["seed"])
    t2 = time.perf_counter()
    lim.pop("config")
    out = {**summary, **lim,
           "seconds": {"finite": round(t1 - t0, 4), "limit_and_bounds": round(t2 - t1, 4)},
           "config": {**cfg, "backend": backend,
                      "model": "single-layer CNN, k non-overlapping patches, m filters, ReLU, b = 0; "
                               "cos of input gradients (loss-derivative scalar cancels)"}}
    if return_samples:
        out["cos_samples"] = cos
    return out
