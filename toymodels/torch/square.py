"""Square Attack (thesis Ch. 3, Algorithms 1–3) for any torch classifier, batched over points, cpu or cuda.

Same problem, definitions and query accounting as the numba/numpy twin :mod:`toymodels.square`
(:mod:`~toymodels.square.attack_linf`, :mod:`~toymodels.square.attack_l2`), whose schedule, side and
bump functions are reused here verbatim. For a classifier f : [0, 1]^{C×H×W} → R^K (logits), a point
x with label y and radius ε, random search minimises over x̂ ∈ [0, 1]^d with ‖x̂ − x‖_p ≤ ε

* untargeted: the margin loss f_y(x̂) − max_{k≠y} f_k(x̂) (``loss="ce"``: −CE); success when
  argmax_k f_k(x̂) ≠ y;
* targeted (target t): the cross-entropy logsumexp_k f_k(x̂) − f_t(x̂) (``loss="margin"``:
  max_{k≠t} f_k(x̂) − f_t(x̂)); success when argmax = t (first maximal class on ties).

ℓ∞ (Alg. 1 + 2): init x̂ = clip(x + ε v, 0, 1), v ∈ {−1, 1}^{C×1×W} (vertical stripes); at iteration
i = 1..N−1, side h = round(√(pᵢ H W)) in [1, min(H, W)], a uniform h×h window, one sign per channel,
candidate clip(x + ε ρ) inside the window and x̂ outside (= Π(x̂ + 2ερ 𝟙_window)); signs redrawn (up to
``max_tries`` pre-drawn tries) until the window changes. ℓ₂ (Alg. 1 + 3, eq. 3.2): the 5×5-tiling
init rescaled to ‖ν‖₂ = ε; at each iteration two windows W₁, W₂ and the mass-moving update with the
η^{(h₁,h₂)} bumps (h ≥ 3), keeping ‖ν‖₂ = ε before the clipping to [0, 1] (Prop. 3.4.1).
p schedule (``schedule``): the thesis' pᵢ = p_init·2^{−m}, m = #{t ∈ (10, 50, 200, 1000, 2000, 4000, 6000,
8000) : ⌊10⁴ i/N⌋ ≥ t}, or the reference code's (also 500; ``rescale=False`` uses the raw index), see
:mod:`toymodels.square.options`, as are ``loss`` ("margin" | "ce") and the defaults of N and p by image
size. A proposal is accepted when it strictly lowers the loss or succeeds. ``n_queries[n]`` counts the
evaluations of f on point n (init included, ≤ N per restart); a point is no longer queried after its first
success; ``restarts`` attack the unbroken points again (:mod:`toymodels.square.search`, the loop both
twins run).

Randomness: every draw (stripes / tiles, targets, windows, signs, flips) comes from
``toymodels.rng.stream(seed)`` (= ``numpy.random.default_rng(seed)``) in exactly the order and shapes of the
twin, then moves to the model's device, so on the same model (e.g. the single-layer CNN and its torch twin,
:func:`toymodels.cnn.torch_twin.to_torch`) both return the same perturbations and query counts. Draws cost
O(n·C) numbers per iteration, negligible next to one forward pass.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, RunError, check_choice, check_int
from ..progress import progress
from ..rng import stream
from ..square.attack_l2 import eta_update, l2_draws, l2_side
from ..square.attack_linf import P_HALVINGS, check_attack_args, p_schedule, resolve_budget, square_side
from ..square.options import P_HALVINGS_REFERENCE, check_search_options
from ..square.search import SearchSpec, attack_labels, random_search
from . import losses
from .config import NORMS

__all__ = ["SquareResult", "square_attack", "margin_and_loss", "P_HALVINGS", "P_HALVINGS_REFERENCE", "p_schedule"]


@dataclass
class SquareResult:
    """Outcome of :func:`square_attack`: ``x_adv`` (tensor on the input's device, same dtype) and per
    point numpy arrays ``n_queries`` (int64), ``success`` (bool), ``loss`` (final loss), ``target``
    (targeted runs, else None), ``sides`` (side h⁽ⁱ⁾ of iteration i = 1..N−1, 0 where nothing ran)."""

    x_adv: torch.Tensor
    n_queries: np.ndarray
    success: np.ndarray
    loss: np.ndarray
    target: np.ndarray | None
    sides: np.ndarray

    @property
    def failure_rate(self) -> float:
        return float(1.0 - self.success.mean()) if self.success.size else float("nan")

    @property
    def mean_queries(self) -> float:
        """Mean query count over the successful points (NaN if none)."""
        return float(self.n_queries[self.success].mean()) if self.success.any() else float("nan")

    @property
    def median_queries(self) -> float:
        return float(np.median(self.n_queries[self.success])) if self.success.any() else float("nan")


def margin_and_loss(z: torch.Tensor, lab: torch.Tensor, targeted: bool, loss: str | None = None):
    """(success, loss) from logits z (n, K) and labels/targets ``lab`` (n,), the losses of
    :mod:`toymodels.square.options` built from :mod:`toymodels.torch.losses`: untargeted margin
    m(z, y) or −CE(z, y); targeted CE(z, t) or −m(z, t) = max_{k≠t} z_k − z_t."""
    loss = ("ce" if targeted else "margin") if loss is None else loss
    pred = z.argmax(dim=1)
    success = pred == lab if targeted else pred != lab
    if loss == "ce":
        return success, (losses.ce(z, lab) if targeted else -losses.ce(z, lab))
    return success, (-losses.margin(z, lab) if targeted else losses.margin(z, lab))


class TorchOps:
    """Array operations of :func:`toymodels.square.search.random_search` for torch tensors."""

    margin_and_loss = staticmethod(margin_and_loss)

    @staticmethod
    def nonzero(mask):
        return torch.nonzero(mask).flatten()

    @staticmethod
    def zeros(n, kind, like):
        dt = {"bool": torch.bool, "int": torch.int64, "float": torch.float64}[kind]
        return torch.zeros(n, dtype=dt, device=like.device)

    @staticmethod
    def copy(x):
        return x.clone()


@contextmanager
def _eval_mode(model):
    flags = [(m, m.training) for m in model.modules()] if isinstance(model, torch.nn.Module) else []
    if flags:
        model.eval()
    try:
        yield
    finally:
        for m, t in flags:
            m.training = t


def _predict(model, x, batch_size, step):
    with torch.no_grad():
        if batch_size is None or x.shape[0] <= batch_size:
            z = model(x)
        else:
            z = torch.cat([model(x[s:s + batch_size]) for s in range(0, x.shape[0], batch_size)])
    if not torch.isfinite(z).all():
        raise RunError(f"the model returned non-finite scores at iteration {step}")
    return z


def _window_index(pos, h, C, H, W, dev):
    """Flat indices (n, C, h·h) into the H·W plane of the h×h windows with corners ``pos`` (n, 2)
    (row-major inside the window); used with ``gather``/``scatter`` on x.flatten(2)."""
    p = torch.from_numpy(np.asarray(pos, dtype=np.int64)).to(dev)
    ar = torch.arange(h, device=dev)
    flat = ((p[:, 0, None] + ar)[:, :, None] * W + (p[:, 1, None] + ar)[:, None, :]).reshape(-1, 1, h * h)
    return flat.expand(-1, C, -1)


def _window_mask(pos, h, H, W, dev):
    p = torch.from_numpy(np.asarray(pos, dtype=np.int64)).to(dev)
    rows, cols = torch.arange(H, device=dev), torch.arange(W, device=dev)
    inr = (rows[None] >= p[:, :1]) & (rows[None] < p[:, :1] + h)
    inc = (cols[None] >= p[:, 1:]) & (cols[None] < p[:, 1:] + h)
    return inr[:, :, None] & inc[:, None, :]                                   # (n, H, W)


def linf_propose(x, x_best, eps, pos, side, signs):
    """ℓ∞ proposal (Alg. 2), torch version of :func:`toymodels.square._reference.linf_propose`:
    ``signs`` (T, n, C) tries; the first try whose clipped window differs from x̂'s is used (the last
    one if none does). Returns (x_new, tries_used)."""
    n, C, H, W = x.shape
    T = signs.shape[0]
    idx = _window_index(pos, side, C, H, W, x.device)
    xw, bw = x.flatten(2).gather(2, idx), x_best.flatten(2).gather(2, idx)     # (n, C, h·h)
    s = torch.as_tensor(signs, dtype=x.dtype, device=x.device)
    # tries are scanned lazily: almost every point changes at its first try, so later tries are
    # evaluated only on the (few) points still undecided; same result as scanning all T at once
    first = torch.full((n,), T - 1, device=x.device, dtype=torch.int64)
    chosen = torch.empty_like(xw)
    todo = torch.arange(n, device=x.device)
    for t in range(T):
        cand = torch.clamp(xw[todo] + eps * s[t, todo][:, :, None], 0.0, 1.0)
        chosen[todo] = cand                       # the last try stays when no try changes the window
        if t == T - 1:
            break
        changed = ((cand - bw[todo]).abs() >= 1e-12).flatten(1).any(dim=1)
        first[todo[changed]] = t
        todo = todo[~changed]
        if todo.numel() == 0:
            break
    x_new = x_best.flatten(2).clone().scatter_(2, idx, chosen)
    return x_new.view_as(x_best), first + 1


def l2_init(x, eps, rng):
    """The 5×5-tiling initial iterate clip(x + ε ν₀/‖ν₀‖₂, 0, 1), draws as the twin's ``l2_init``."""
    N, C, H, W = x.shape
    s = max(min(H, W) // 5, 1)
    oh, ow = (H - 5 * s) // 2, (W - 5 * s) // 2
    flips = rng.random(size=(5, 5, N)) < 0.5
    signs = rng.choice(np.array([-1.0, 1.0]), size=(5, 5, N, C))
    dev, dt = x.device, x.dtype
    etas = [torch.as_tensor(eta_update(s, t), dtype=dt, device=dev) for t in (False, True)]
    fl = torch.from_numpy(flips).to(dev)
    sg = torch.from_numpy(signs).to(device=dev, dtype=dt)
    nu = torch.zeros_like(x)
    for a in range(5):
        for b in range(5):
            tile = torch.where(fl[a, b][:, None, None], etas[1][None], etas[0][None])       # (N, s, s)
            nu[:, :, oh + a * s: oh + (a + 1) * s, ow + b * s: ow + (b + 1) * s] = \
                sg[a, b][:, :, None, None] * tile[:, None]
    nu = nu * (eps / torch.sqrt((nu ** 2).sum(dim=(1, 2, 3), keepdim=True)))
    return torch.clamp(x + nu, 0.0, 1.0)


def l2_propose(x, x_best, eps, pos1, pos2, h, flips, signs):
    """ℓ₂ proposal (Alg. 3), torch version of :func:`toymodels.square.attack_l2.l2_propose`.
    Returns (x_new, nu_new) with ‖nu_new‖₂ = ε (Prop. 3.4.1) and x_new = clip(x + nu_new, 0, 1)."""
    n, C, H, W = x.shape
    dev, dt = x.device, x.dtype
    nu = x_best - x
    m1 = _window_mask(pos1, h, H, W, dev)
    m2 = _window_mask(pos2, h, H, W, dev)
    unused = eps ** 2 - (nu ** 2).sum(dim=(1, 2, 3))
    union_sq = ((nu ** 2) * (m1 | m2)[:, None]).sum(dim=(2, 3))
    avail = torch.sqrt(torch.clamp(union_sq + unused[:, None] / C, min=0.0))
    idx = _window_index(pos1, h, C, H, W, dev)
    v1 = nu.flatten(2).gather(2, idx).view(n, C, h, h)
    n1 = torch.sqrt((v1 ** 2).sum(dim=(2, 3), keepdim=True))
    old = torch.where(n1 > 0, v1 / torch.where(n1 > 0, n1, torch.ones_like(n1)), torch.zeros_like(v1))
    e0, e1 = (torch.as_tensor(eta_update(h, t), dtype=dt, device=dev) for t in (False, True))
    fl = torch.as_tensor(np.asarray(flips), device=dev)
    eta = torch.where(fl[:, None, None], e1[None], e0[None])
    fresh = torch.as_tensor(signs, dtype=dt, device=dev)[:, :, None, None] * eta[:, None]
    temp = fresh + old
    nt = torch.sqrt((temp ** 2).sum(dim=(2, 3), keepdim=True))
    # ν_temp = 0 when W₁ holds exactly −ρη: the direction is undefined, use the fresh bump (as the twin)
    degenerate = nt <= 1e-12
    temp = torch.where(degenerate, fresh, temp / torch.where(degenerate, torch.ones_like(nt), nt))
    nu_new = (nu * (~m2)[:, None]).flatten(2).scatter_(2, idx, (temp * avail[:, :, None, None]).reshape(n, C, -1))
    nu_new = nu_new.view_as(nu)
    return torch.clamp(x + nu_new, 0.0, 1.0), nu_new


def _check_inputs(x, y, norm, eps, n_queries, p_init, max_tries, batch_size, restarts):
    """(x as a tensor, y as int64 numpy, N, p) after checking every argument (ConfigError); N and p
    None get the size defaults of :mod:`toymodels.square.options`."""
    check_int("max_tries", max_tries, 1)
    if batch_size is not None:
        check_int("batch_size", batch_size, 1)
    x = torch.as_tensor(x)
    if not torch.is_floating_point(x) or x.ndim != 4:
        raise ConfigError("x", "must be a floating (N, C, H, W) tensor", f"{tuple(x.shape)} {x.dtype}")
    n_queries, p_init = resolve_budget(norm, x.shape, n_queries, p_init, restarts)
    check_attack_args(eps, n_queries, p_init)
    y_np = np.asarray(y.detach().cpu() if torch.is_tensor(y) else y, dtype=np.int64)
    if y_np.shape != (x.shape[0],):
        raise ConfigError("y", f"must have shape ({x.shape[0]},)", y_np.shape)
    if x.numel() and not (bool(torch.isfinite(x).all()) and float(x.min()) >= 0 and float(x.max()) <= 1):
        raise ConfigError("x", "must lie in [0, 1]")
    if norm == "l2" and min(x.shape[2], x.shape[3]) < 3:
        raise ConfigError("x", "must have images of height and width >= 3 for the l2 attack", tuple(x.shape))
    return x, y_np, n_queries, p_init


def _initial(x, eps: float, norm: str, rng):
    """x̂₀: vertical stripes clip(x ± ε) (ℓ∞) or the 5×5 tiling (ℓ₂), drawn as the twin."""
    if norm == "linf":
        N, C, _, W = x.shape
        stripes = rng.choice(np.array([-eps, eps]), size=(N, C, 1, W))
        return torch.clamp(x + torch.as_tensor(stripes, dtype=x.dtype, device=x.device), 0.0, 1.0)
    return l2_init(x, eps, rng)


def _propose(norm, xa, xb, eps, p, rng, max_tries):
    """One proposal for the n active points (x, x̂ = ``xa``, ``xb``): (x_new, side h), drawn as the twin."""
    n, C, H, W = xa.shape
    if norm == "linf":
        h = square_side(p, H, W)
        pos = np.stack([rng.integers(0, H - h + 1, size=n), rng.integers(0, W - h + 1, size=n)], axis=1)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(max_tries, n, C))
        return linf_propose(xa, xb, eps, pos, h, signs)[0], h
    h = l2_side(p, H, W)
    pos1, pos2, flips = l2_draws(rng, n, h, H, W)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n, C))
    return l2_propose(xa, xb, eps, pos1, pos2, h, flips, signs)[0], h


def _labels(y_np, target, targeted, rng, dev, drawn):
    """The ``labels(z)`` callback of the search: checks y against K, draws the targets as the twin."""
    def labels(z):
        K = z.shape[1]
        if not targeted and y_np.size and (y_np.min() < 0 or y_np.max() >= K):
            raise ConfigError("y", f"must be integers in [0, {K - 1}]")
        t = target.detach().cpu().numpy() if torch.is_tensor(target) else target
        lab_np, t = attack_labels(y_np, t, targeted, K, rng)       # same draws as the numba twin
        drawn.append(t)
        return torch.from_numpy(np.asarray(lab_np, dtype=np.int64)).to(dev)
    return labels


def square_attack(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y, *, norm: str = "linf",
                  eps: float, n_queries: int | None = None, p_init: float | None = None, targeted: bool = False,
                  target=None, loss: str | None = None, schedule: str = "thesis", rescale: bool = True,
                  restarts: int = 1, seed: int = 0, max_tries: int = 16, batch_size: int | None = None,
                  show_progress: bool = False) -> SquareResult:
    """Run the Square Attack on the batch (x, y).

    Parameters
    ----------
    model : nn.Module (or callable) mapping x (n, C, H, W) in [0, 1] to logits (n, K). An nn.Module is
        put in eval mode for the attack and its train/eval flags restored afterwards.
    x : tensor (N, C, H, W) in [0, 1], on the model's device; y : labels (N,) (tensor or array).
    norm : "linf" or "l2".  eps : radius ε > 0.
    n_queries : budget N ≥ 1 per point and restart (init included); default by image size: 5,000 for
        images of side ≤ 64 (AutoAttack), else 1,000 (:func:`toymodels.square.options.default_n_queries`).
    p_init : initial fraction p ∈ (0, 1] of the image covered by a square; default by image size: 0.8
        for side ≤ 64 (AutoAttack), else 0.05 (ℓ∞) / 0.1 (ℓ₂) (the thesis' ImageNet values).
    targeted : attack towards ``target`` (default: drawn uniformly among the K − 1 wrong classes).
    loss : "margin" or "ce" (None: margin untargeted, CE targeted), see :mod:`toymodels.square.options`.
    schedule : "thesis" or "reference" (the authors' code / AutoAttack: also halves p after 500).
    rescale : scale the iteration index to a 10⁴-query budget (AutoAttack's ``resc_schedule``).
    restarts : attack the points still unbroken again with fresh draws (queries accumulate).
    seed : the stream ``toymodels.rng.stream(seed)``, the only source of randomness (twin-identical draws).
    max_tries : ℓ∞ sign tries per iteration.  batch_size : evaluate the model in chunks (memory).

    Returns
    -------
    SquareResult (``n_queries`` summed over the restarts; ``sides`` of restart r at r·(N − 1) + i − 1)
    """
    norm = check_choice("norm", norm, NORMS)
    x, y_np, n_queries, p_init = _check_inputs(x, y, norm, eps, n_queries, p_init, max_tries, batch_size, restarts)
    loss = check_search_options(loss, schedule, rescale, restarts, targeted)
    eps, dev, N = float(eps), x.device, x.shape[0]
    if N == 0:
        e = np.zeros(0)
        return SquareResult(x.clone(), e.astype(np.int64), e.astype(bool), e, e.astype(np.int64) if targeted else None,
                            np.zeros(restarts * max(n_queries - 1, 0), dtype=np.int64))
    rng, drawn = stream(seed), []
    with _eval_mode(model), progress(restarts * (n_queries - 1), disable=not show_progress, desc=f"square-{norm}",
                                     unit="query") as bar:
        spec = SearchSpec(lambda v, i: _predict(model, v, batch_size, i), lambda xs: _initial(xs, eps, norm, rng),
                          lambda xa, xb, p: _propose(norm, xa, xb, eps, p, rng, max_tries),
                          _labels(y_np, target, targeted, rng, dev, drawn), n_queries, p_init, targeted, loss,
                          schedule, rescale, restarts, bar)
        x_adv, queries, success, loss_best, sides = random_search(TorchOps, spec, x)
    return SquareResult(x_adv, queries.cpu().numpy(), success.cpu().numpy(), loss_best.detach().cpu().numpy(),
                        drawn[0] if targeted else None, sides)
