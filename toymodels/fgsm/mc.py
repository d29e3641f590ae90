"""Monte-Carlo estimates of E‖δ_FGSM-RS‖₂² and E‖δ_FGSM-RS‖₂ beside Lemma 1's closed form.

δ = clip(η + α s, −ε, ε) coordinate-wise, η ~ U([−ε, ε]^d) (eq. 2.3 without the [0, 1]^d image
projection), for a sign vector s chosen by ``sign``:

* ``"random"`` (default): i.i.d. Rademacher signs, drawn per sample, independent of η;
* ``"plus"`` / ``"minus"`` / ``"alternating"``: the fixed vectors (1,…,1), (−1,…,−1), (1,−1,1,…);
* ``"outward"``: sᵢ = sign(ηᵢ) (the gradient sign of ℓ(x') = ½‖x' − x‖² at x' = x + η). This sign
  *depends* on η and is outside Lemma 1's hypotheses; its exact value is
  :func:`~toymodels.fgsm.lemma1.sq_norm_outward` (the counterexample in ERRATA.md).

For the first four the law of ‖δ‖₂ is the same (see :mod:`toymodels.fgsm.lemma1`), so the estimates
must agree with :func:`~toymodels.fgsm.lemma1.sq_norm_exact` within their standard errors.

Randomness: the counter-based streams ``(seed, "fgsm/eta")`` and ``(seed, "fgsm/sign")`` of
:mod:`toymodels.rng` (see :mod:`toymodels.fgsm._kernels`); sample j of a run is a fixed function of
(seed, j, d, ε, α, sign), whatever the chunking or thread count.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from ..backends import check_backend
from ..errors import ConfigError, RunError, check_choice, check_int, check_range
from ..progress import progress
from ..rng import check_seed, key64
from . import _kernels, _reference
from .lemma1 import (EPS_RANGE, bound_norm, fgsm_equivalent_eps, lemma1_formula, sq_norm_exact, sq_norm_outward,
                     sq_norm_variance)

__all__ = ["SIGNS", "FGSMConfig", "FGSMResult", "resolve", "simulate", "sample_sq_norms", "stream_keys",
           "MAX_D", "MAX_SAMPLES", "EPS_RANGE"]

SIGNS = ("random", "plus", "minus", "alternating", "outward")
#: samples per kernel call (progress granularity; results do not depend on it)
CHUNK = 1 << 16
#: the largest dimension: a fixed sign vector takes 8 bytes a coordinate (8 GB at 10⁹)
MAX_D = 10 ** 9
#: the most samples of one run (the stream counter is sample·d + i < 2⁶²)
MAX_SAMPLES = 1 << 40
#: why ``d`` is bounded (part of the error message)
D_WHY = "a fixed sign vector takes 8 bytes a coordinate: at most 8 GB"


@dataclass(frozen=True)
class FGSMConfig:
    """One Monte-Carlo run. ``alpha=None`` means 1.25ε (Wong et al.'s recommended step)."""

    d: int = 3072
    eps: float = 8 / 255
    alpha: float | None = None
    samples: int = 100_000
    sign: str = "random"
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class FGSMResult:
    """Closed forms and Monte-Carlo estimates (means with their standard errors) of one run."""

    config: dict
    closed_form_sq_norm: float       # E‖δ‖² exact (piecewise; = eq. 2.4's cubic·d on [0, 2ε])
    lemma1_formula_sq_norm: float    # eq. 2.4 as printed (wrong for α > 2ε)
    bound_norm: float                # √(E‖δ‖²) ≥ E‖δ‖ (Lemma 1)
    closed_form_sq_norm_sd: float    # exact standard deviation of ‖δ‖² (for the s.e. of the MC mean)
    mc_sq_norm: float
    mc_sq_norm_se: float | None
    mc_norm: float
    mc_norm_se: float | None
    fgsm_equivalent_eps: float       # ε' with ε'√d = √(E‖δ‖²)
    fgsm_equivalent_eps_mc: float    # ε' with ε'√d = MC estimate of E‖δ‖
    samples_per_s: float
    mc_seconds: float
    compile_s: float | None
    backend: str
    outward_sq_norm: float | None = None  # exact E‖δ‖² for sign="outward" (η-dependent sign)
    sq_norms: np.ndarray | None = field(default=None, repr=False)

    def summary(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sq_norms"}
        out["config"] = dict(self.config)
        target = self.outward_sq_norm if self.config["sign"] == "outward" else self.closed_form_sq_norm
        se, diff = self.mc_sq_norm_se, self.mc_sq_norm - target
        # a degenerate law (e.g. every coordinate clipped) has se ~ rounding noise: no z-score then
        out["mc_sq_norm_z"] = (0.0 if abs(diff) <= 1e-12 * abs(target) else None if not se else diff / se)
        out["jensen_gap"] = self.bound_norm - self.mc_norm
        out["draws_per_s"] = self.samples_per_s * self.config["d"]
        return out


def resolve(cfg: FGSMConfig) -> FGSMConfig:
    """Validate ``cfg`` (any α ≥ 0 is allowed here; the CLI restricts α to Lemma 1's [0, 2ε]).

    Raises :class:`~toymodels.errors.ConfigError` naming the field and its valid range."""
    d = check_int("d", cfg.d, 1, MAX_D)
    samples = check_int("samples", cfg.samples, 1, MAX_SAMPLES)
    seed = check_seed(cfg.seed)
    check_choice("sign", cfg.sign, SIGNS)
    eps = check_range("eps", cfg.eps, *EPS_RANGE)
    alpha = 1.25 * eps if cfg.alpha is None else check_range("alpha", cfg.alpha, 0.0, EPS_RANGE[1])
    if samples * d >= 1 << 62:
        raise ConfigError("samples", f"must be < 2^62 / d = {(1 << 62) // d} at d = {d} (the stream counter "
                                     "is sample·d + coordinate)", samples)
    return replace(cfg, d=d, samples=samples, seed=seed, eps=eps, alpha=alpha)


def stream_keys(seed: int) -> tuple[np.uint64, np.uint64]:
    """(key_eta, key_sign): the keys of the counter-based streams ``(seed, "fgsm/eta")`` and
    ``(seed, "fgsm/sign")`` of :mod:`toymodels.rng`."""
    return key64(seed, "fgsm/eta"), key64(seed, "fgsm/sign")


def _mode_and_signs(sign, d: int) -> tuple[int, np.ndarray]:
    if not isinstance(sign, str):
        s = np.ascontiguousarray(sign, dtype=np.float64)
        if s.shape != (d,) or not np.all(np.abs(s) == 1):
            raise ConfigError("sign", f"must be one of {{{', '.join(SIGNS)}}} or a length-{d} vector of ±1",
                              sign)
        return _kernels.MODE_FIXED, s
    check_choice("sign", sign, SIGNS)
    if sign == "random":
        return _kernels.MODE_RANDOM, np.ones(1)         # the kernel reads signs only in MODE_FIXED
    if sign == "outward":
        return _kernels.MODE_OUTWARD, np.ones(1)
    if sign == "plus":
        return _kernels.MODE_FIXED, np.ones(d)
    if sign == "minus":
        return _kernels.MODE_FIXED, -np.ones(d)
    return _kernels.MODE_FIXED, np.where(np.arange(d) % 2 == 0, 1.0, -1.0)


_COMPILE_S: list[float] = []


def warm_kernel() -> float:
    """Compile (or load from numba's cache) the kernel for the argument types used here, once per
    process; returns the seconds that first call took."""
    if not _COMPILE_S:
        t = time.perf_counter()
        _kernels.sq_norms(np.uint64(1), np.uint64(2), 0, 2, 1.0, 0.5, 0, np.ones(2), np.empty(1))
        _COMPILE_S.append(time.perf_counter() - t)
    return _COMPILE_S[0]


def _backend_fn(backend: str):
    return {"numba": _kernels.sq_norms, "numpy": _reference.sq_norms}[check_backend(backend)]


def sample_sq_norms(d: int, eps: float, alpha: float, samples: int, *, sign="random", seed: int = 0,
                    start: int = 0, backend: str = "numba") -> np.ndarray:
    """‖δ⁽ʲ⁾‖₂² for the samples j = start, …, start + samples − 1 of the stream ``seed``.

    ``sign`` is one of :data:`SIGNS` or an explicit ±1 vector of length d. Bit-identical between
    ``backend="numba"`` and ``backend="numpy"``, and independent of how a run is split into calls."""
    cfg = resolve(FGSMConfig(d=d, eps=eps, alpha=alpha, samples=samples, seed=seed,
                             sign=sign if isinstance(sign, str) else "plus"))
    check_int("start", start, 0, MAX_SAMPLES)
    if (start + cfg.samples) * cfg.d >= 1 << 62:
        raise ConfigError("start", f"must be < 2^62 / d − samples = {(1 << 62) // cfg.d - cfg.samples} (the stream "
                                   "counter is sample·d + coordinate)", start)
    mode, signs = _mode_and_signs(sign, cfg.d)
    key_eta, key_sign = stream_keys(cfg.seed)
    out = np.empty(cfg.samples)
    _backend_fn(backend)(key_eta, key_sign, int(start), cfg.d, cfg.eps, cfg.alpha, mode, signs, out)
    return out


class _Moments:
    """Running mean and sum of squared deviations, merged chunk by chunk (Chan et al.)."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, x: np.ndarray) -> None:
        nb = x.size
        mb = float(np.mean(x))
        m2b = float(np.sum((x - mb) ** 2))
        n = self.n + nb
        delta = mb - self.mean
        self.mean += delta * nb / n
        self.m2 += m2b + delta * delta * self.n * nb / n
        self.n = n

    def se(self) -> float | None:
        return math.sqrt(self.m2 / (self.n - 1) / self.n) if self.n > 1 else None


def simulate(config: FGSMConfig = FGSMConfig(), *, backend: str = "numba", show_progress: bool = False,
             keep_samples: bool = False) -> FGSMResult:
    """Estimate E‖δ‖₂² and E‖δ‖₂ by Monte Carlo and put them beside Lemma 1's closed form.

    Parameters
    ----------
    config : FGSMConfig
        d, ε, α (default 1.25ε; any α ≥ 0), number of samples, sign mode, seed.
    backend : {"numba", "numpy"}
        The numba kernel or its numpy reference (bit-identical samples).
    show_progress : bool
        tqdm bar on stderr.
    keep_samples : bool
        Keep every ‖δ‖₂² in ``result.sq_norms``.

    Returns
    -------
    FGSMResult
        ``mc_*_se`` is the sample standard deviation / √samples (None for a single sample);
        ``samples_per_s`` times the sampling loop only (compilation is ``compile_s``).
    """
    cfg = resolve(config)
    fn = _backend_fn(backend)
    compile_s = warm_kernel() if backend == "numba" else None
    mode, signs = _mode_and_signs(cfg.sign, cfg.d)
    key_eta, key_sign = stream_keys(cfg.seed)
    sq_m, nrm_m = _Moments(), _Moments()
    kept = np.empty(cfg.samples) if keep_samples else None
    buf = np.empty(min(CHUNK, cfg.samples))
    t0 = time.perf_counter()
    with progress(cfg.samples, disable=not show_progress, desc="FGSM-RS MC", unit="sample") as bar:
        for j0 in range(0, cfg.samples, CHUNK):
            out = buf[: min(CHUNK, cfg.samples - j0)]
            fn(key_eta, key_sign, j0, cfg.d, cfg.eps, cfg.alpha, mode, signs, out)
            if not np.all(np.isfinite(out)):
                raise RunError(f"non-finite ‖δ‖² in samples {j0}..{j0 + out.size - 1}")
            sq_m.add(out)
            nrm_m.add(np.sqrt(out))
            if kept is not None:
                kept[j0:j0 + out.size] = out
            bar.update(out.size)
    seconds = time.perf_counter() - t0
    d, eps, alpha = cfg.d, cfg.eps, cfg.alpha
    return FGSMResult(
        config=cfg.as_dict(), closed_form_sq_norm=sq_norm_exact(d, eps, alpha),
        lemma1_formula_sq_norm=lemma1_formula(d, eps, alpha), bound_norm=bound_norm(d, eps, alpha),
        closed_form_sq_norm_sd=math.sqrt(max(sq_norm_variance(d, eps, alpha), 0.0)),
        mc_sq_norm=sq_m.mean, mc_sq_norm_se=sq_m.se(), mc_norm=nrm_m.mean, mc_norm_se=nrm_m.se(),
        fgsm_equivalent_eps=fgsm_equivalent_eps(eps, alpha),
        fgsm_equivalent_eps_mc=nrm_m.mean / math.sqrt(d),
        samples_per_s=cfg.samples / seconds if seconds > 0 else float("inf"), mc_seconds=seconds,
        compile_s=compile_s, backend=backend,
        outward_sq_norm=sq_norm_outward(d, eps, alpha) if cfg.sign == "outward" else None,
        sq_norms=kept)
