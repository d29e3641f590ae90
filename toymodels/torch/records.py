"""What a training run measures for a thesis figure beyond its history and final evaluation (issue 16).

A sweep keeps only each run's JSON result (no checkpoints), so the measurements a figure needs are
taken inside the run, by :func:`toymodels.torch.train.run`, each switched on by a config field:

* ``final_eps`` — PGD accuracy / loss of the final model at several radii (Fig. 2.3, :func:`final_by_eps`);
* ``final_linearization`` — the linearization error vs ‖δ‖₂ (Fig. 2.10, :func:`final_linearization_of`,
  :mod:`toymodels.torch.linearization`);
* ``interpolate_switch`` — the loss along w_switch → w_final of a switched run (Fig. 5.10,
  :func:`switch_interpolation`);
* ``record_filters`` — relative change and kernels of the conv layers (Fig. 6.17, :func:`filter_records`);
* ``sharpness_rho`` / ``sharpness_every`` — m-sharpness at the end and over training (Figs. 5.2, 5.3,
  5.19, :func:`sharpness_final`, :func:`sharpness_record`, :mod:`toymodels.torch.msharpness`).

The functions take the run ``r`` (:class:`toymodels.torch.train._Run`: ``cfg``, ``net``, ``data``,
``ev_idx``, ``D``, ``device``) and its state ``st``; none draws from the training's random streams.
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch

from . import attacks
from .device import torch_generator

__all__ = ["final_by_eps", "final_linearization_of", "switch_interpolation", "alpha_key", "conv_layers",
           "initial_convs", "shown_layers", "filter_records", "figure_records", "sharpness_record",
           "sharpness_final", "INTERP_N_EVAL", "INTERP_BN_N"]


def final_linearization_of(r) -> dict:
    """``final_linearization``: :func:`toymodels.torch.linearization.final_linearization` of the final
    model on the final evaluation's points (every rank computes all of them: the result is replicated)."""
    from .linearization import final_linearization

    idx = r.ev_idx[:r.cfg.final_n]
    return final_linearization(r.net, r.data[2][idx], r.data[3][idx], r.cfg.eps, r.cfg.seed)


def final_by_eps(r, net) -> dict:
    """``final_eps`` (train-at): ``{"pgd_acc_by_eps": {key: acc}, "pgd_loss_by_eps": {key: mean loss}}``
    under PGD-``final_pgd_steps``-``final_restarts`` with α = ε/4 on the final evaluation's ``final_n``
    points, for each listed radius ε (the keys are the strings of ``final_eps``); ``{}`` when none are
    listed. The random starts are the final evaluation's (the same uniform draws of the stream
    ``(seed, "eval-noise")``, scaled to ε), so at ε = ``eps`` the numbers are ``pgd_acc`` / ``pgd_loss``
    of the final evaluation exactly. ``net`` is the bare module."""
    from .._cli import parse_number

    cfg, D = r.cfg, r.D
    if not cfg.final_eps:
        return {}
    ev = r.ev_idx[:cfg.final_n]
    n_ev, idx = len(ev), ev[D.rank::D.world]
    x, y = r.data[2][idx], r.data[3][idx]
    shape = tuple(x.shape[1:])
    net.eval()
    acc, loss = {}, {}
    for key in cfg.final_eps:
        eps = parse_number(key)
        g = torch_generator(cfg.seed, "eval-noise")
        attacks.uniform_noise((n_ev,) + shape, eps, g, x)        # the gradient-alignment noise of _attack_sums
        starts = attacks.uniform_noise((cfg.final_restarts, n_ev) + shape, eps, g, x)[:, D.rank::D.world]
        d = attacks.pgd(net, x, y, eps, eps / 4, cfg.final_pgd_steps, cfg.final_restarts, noise=starts)
        a, lsum = D.sum(list(attacks.accuracy_loss(net, x + d, y)), r.device)
        acc[key], loss[key] = a / n_ev, lsum / n_ev
    return {"pgd_acc_by_eps": acc, "pgd_loss_by_eps": loss}


# ------------------------------------------------------------------------------------------------
# records of thesis Figs. 5.10 and 6.17 (issue 16): the loss along w_switch -> w_final, conv filters
# ------------------------------------------------------------------------------------------------
#: the in-run interpolation's points: the ``interpolate`` command's defaults (``--n-eval`` 1024 training and
#: test points, the thesis's; ``--bn-n`` 5000 training points for the BatchNorm statistics, its code's)
INTERP_N_EVAL, INTERP_BN_N = 1024, 5000


def alpha_key(alpha: float) -> str:
    """The key of α in ``interpolation[...]``: ``f"{α:.12g}"`` ("-1", "-0.75", "0", "1"), a number string."""
    return f"{float(alpha):.12g}"


def switch_interpolation(r, st) -> dict:
    """Thesis Fig. 5.10: train / test loss and error of (1 − α)·w_switch + α·w_final for the
    ``interpolate_switch`` values of α evenly spaced in [``interpolate_alpha_min``, ``interpolate_alpha_max``],
    by :func:`toymodels.torch.interpolate.interpolate` (BatchNorm statistics re-estimated at every α on the
    first :data:`INTERP_BN_N` training images, as the ``interpolate`` command) on the first
    :data:`INTERP_N_EVAL` training images (unaugmented, the labels trained on) and test images.

    w_switch is the model at the start of epoch ``switch_at`` (after ``switch_at`` − 1 epochs of the first
    method), w_final the model after the last epoch: for ERM → SAM, w_ERM is the ERM model that SAM
    fine-tunes, not a separate ERM run continued to the end. Returns ``{"train_loss": {alpha_key(α): value},
    "test_loss": ..., "train_err": ..., "test_err": ..., "distance": ‖w_final − w_switch‖₂}``."""
    from .interpolate import interpolate

    cfg = r.cfg
    start = copy.deepcopy(r.net)
    start.load_state_dict(st.w_switch)
    xtr, ytr, xte, yte = r.data
    n, m = min(INTERP_N_EVAL, len(ytr)), min(INTERP_N_EVAL, len(yte))
    alphas = np.linspace(cfg.interpolate_alpha_min, cfg.interpolate_alpha_max, cfg.interpolate_switch)
    res = interpolate(start, r.net, xtr[:n], ytr[:n], alphas, x_test=xte[:m], y_test=yte[:m], bn="recompute",
                      bn_x=xtr[:min(INTERP_BN_N, len(ytr))])
    keys = [alpha_key(a) for a in res["alpha"]]
    out = {k: dict(zip(keys, res[k])) for k in ("train_loss", "test_loss", "train_err", "test_err")}
    return {**out, "distance": res["distance"]}


def conv_layers(net: torch.nn.Module) -> dict:
    """Layer key → every ``nn.Conv2d`` of ``net`` in module order; the key is the module's name inside the
    network (after the input :class:`~toymodels.torch.models.Normalize`, if any) with dots made
    underscores: ``"layer2_0_conv1"``; the CNN's only conv is ``"0"``."""
    from .models import Normalize

    if isinstance(net, torch.nn.Sequential) and len(net) == 2 and isinstance(net[0], Normalize):
        net = net[1]
    return {name.replace(".", "_"): m for name, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)}


def initial_convs(net: torch.nn.Module) -> dict:
    """Layer key → a copy of the conv weight W_0 (taken before training; the seed's initialization)."""
    return {k: m.weight.detach().clone() for k, m in conv_layers(net).items()}


def shown_layers(keys: list, kernel_sizes: list) -> list:
    """The four conv layers whose filters are recorded: among those with kernels larger than 1×1 (all if
    none is), the first, the last and the two at 1/3 and 2/3 of the depth (fewer if there are fewer)."""
    cand = [k for k, s in zip(keys, kernel_sizes) if s > 1] or list(keys)
    L = len(cand)
    return [cand[i] for i in sorted({round(j * (L - 1) / 3) for j in range(4)})] if L else []


def filter_records(net: torch.nn.Module, w0: dict, n: int) -> dict:
    """Thesis Fig. 6.17: ``weight_change`` = {layer: ‖W_T − W_0‖_F / ‖W_0‖_F} of every conv layer
    (:func:`conv_layers`, weights only, in float64) and ``filters`` = {layer: {"init": W_0[:n, 0],
    "final": W_T[:n, 0]}} — the first ``n`` filters' k×k kernels on the first input channel, nested lists —
    for the four layers of :func:`shown_layers`."""
    convs = conv_layers(net)
    change = {}
    for k, m in convs.items():
        w, w_0 = m.weight.detach().double(), w0[k].double()
        change[k] = float(torch.linalg.vector_norm(w - w_0) / torch.linalg.vector_norm(w_0))
    shown = shown_layers(list(convs), [m.weight.shape[-1] for m in convs.values()])
    filters = {k: {"init": w0[k][:n, 0].double().tolist(), "final": convs[k].weight.detach()[:n, 0].double().tolist()}
               for k in shown}
    return {"weight_change": change, "filters": filters}


def figure_records(r, st, w0) -> dict:
    """The result fields of ``interpolate_switch`` and ``record_filters`` (only those configured; None
    after a divergence)."""
    out = {}
    ok = st.diverged_at is None
    if r.cfg.interpolate_switch:
        out["interpolation"] = switch_interpolation(r, st) if ok and st.w_switch is not None else None
    if r.cfg.record_filters:
        rec = filter_records(r.net, w0, r.cfg.record_filters) if ok else {"weight_change": None, "filters": None}
        out.update(rec)
    return out


# ------------------------------------------------------------------------------------------------
# m-sharpness of thesis Figs. 5.2, 5.3, 5.19 (issue 16; toymodels.torch.msharpness)
# ------------------------------------------------------------------------------------------------
def _sharpness_points(r) -> tuple:
    """The first ``sharpness_n`` (default min(1024, N)) training points as trained on (labels with their
    noise, no augmentation)."""
    n = r.cfg.sharpness_n or min(1024, len(r.data[1]))
    return r.data[0][:n], r.data[1][:n]


def sharpness_record(r, epoch: int) -> dict:
    """The history fields of epoch ``epoch`` when it is a multiple of ``sharpness_every`` (> 0):
    ``m_sharpness`` (test-time BN) and ``m_sharpness_train_bn`` (training-time BN: each m-batch's
    statistics) at the first ρ, the first m and the largest K; the same number for a net without
    BatchNorm. The measurement restores the model bitwise and draws no random number."""
    cfg = r.cfg
    if not cfg.sharpness_every or epoch % cfg.sharpness_every:
        return {}
    from .._cli import parse_number
    from .msharpness import has_batchnorm, m_sharpness

    x, y = _sharpness_points(r)
    kw = dict(rho=parse_number(cfg.sharpness_rho[0]), m=cfg.sharpness_m[0], steps=max(cfg.sharpness_steps))
    ev = m_sharpness(r.net, x, y, bn="eval", **kw)
    return {"m_sharpness": ev,
            "m_sharpness_train_bn": m_sharpness(r.net, x, y, bn="train", **kw) if has_batchnorm(r.net) else ev}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def sharpness_final(r, st) -> dict:
    """The final model's m-sharpness (test-time BN) with ``sharpness_rho`` set and no divergence:
    ``m_sharpness`` {K: {ρ: s}} at the first m; with several K ``m_sharpness_suboptimality`` {K: {ρ:
    s_K / s_Kmin}} (K > Kmin; None when s_Kmin = 0); with several m ``m_sharpness_by_m`` {K: {m: s}} and
    ``m_sharpness_suboptimality_by_m`` {K: {m: ratio}} at the first ρ; ``m_sharpness_info`` (n, m, the
    seconds it took: not in ``runtime_s``)."""
    cfg = r.cfg
    if not cfg.sharpness_rho or st.diverged_at is not None:
        return {}
    from .._cli import parse_number
    from .msharpness import m_sharpness

    t0 = time.perf_counter()
    x, y = _sharpness_points(r)
    rhos = {key: parse_number(key) for key in cfg.sharpness_rho}
    ks, ms = sorted(cfg.sharpness_steps), list(cfg.sharpness_m)
    val = {str(k): {key: m_sharpness(r.net, x, y, rho=rho, m=ms[0], steps=k) for key, rho in rhos.items()}
           for k in ks}
    out = {"m_sharpness": val}
    if len(ks) > 1:
        out["m_sharpness_suboptimality"] = {str(k): {key: _ratio(val[str(k)][key], val[str(ks[0])][key])
                                                     for key in rhos} for k in ks[1:]}
    if len(ms) > 1:
        key0 = cfg.sharpness_rho[0]
        by_m = {str(k): {str(m): val[str(k)][key0] if m == ms[0] else
                         m_sharpness(r.net, x, y, rho=rhos[key0], m=m, steps=k) for m in sorted(ms)} for k in ks}
        out["m_sharpness_by_m"] = by_m
        if len(ks) > 1:
            out["m_sharpness_suboptimality_by_m"] = {str(k): {mk: _ratio(v, by_m[str(ks[0])][mk])
                                                              for mk, v in by_m[str(k)].items()} for k in ks[1:]}
    out["m_sharpness_info"] = {"n": len(y), "m": ms[0], "bn": "eval", "runtime_s": time.perf_counter() - t0}
    return out
