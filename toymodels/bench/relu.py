"""Two-layer ReLU benchmark workload: :func:`toymodels.relu._kernels.net1d.sgd` + ``jacobian_ranks`` vs
:mod:`toymodels.relu._reference.net1d` (and a torch CPU reference when torch is installed).

``relu1d_sgd_30k``: Fig. 6.4's setting (Blanc et al.'s 12 points, m = 100, init seed 0), SGD with
batch 1 for 3·10⁴ steps under the warmup/decay schedule (transition 50 %, F = 400, D = 3, η = 4e-4),
parameters recorded at 250 evenly spaced checkpoints (+ the init), then the rank of φ_θ(X) (SVD of the
12 × 300 Jacobian) at each checkpoint. The same pre-drawn indices for every backend. Goal: numba
under 2 s (``meets_goal``); target numba ≥ 6× the lean numpy loop (issue 17: it was 10× against the
reference; measured 7.5–9× the lean loop, 12.5–15.7× the reference). ``torch_s``: the same run in torch (float64,
autograd for the SGD step, ``torch.func.jacrev`` + ``torch.linalg.svdvals`` for the ranks, one
thread), one repeat; ``None`` without torch (noted in the row's ``notes``). ``max_rel_diff`` compares
the numba and numpy final θ.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..relu._kernels import net1d as _kernels
from ..relu._reference import net1d as _reference
from ..relu.model import ReLUConfig, blanc_data, checkpoints, init_params
from ..relu.schedule import warmup_decay_schedule
from ..rng import stream
from . import BenchContext, audit, best_of, first_call, workload

STEPS = 30_000
N_CHECKPOINTS = 250


def _problem(steps: int):
    cfg = ReLUConfig(steps=steps, n_checkpoints=N_CHECKPOINTS)
    x, y = blanc_data()
    w, b, a = init_params(cfg.m, cfg.s_w, cfg.s_a, 0)
    lr = warmup_decay_schedule(cfg.lr, steps, cfg.transition, cfg.warmup_factor, cfg.decay_factor)
    idx = stream(0, "bench.relu.batches").integers(0, x.shape[0], size=steps)
    rec_at = checkpoints(steps, N_CHECKPOINTS)
    return cfg, x, y, w, b, a, lr, idx, rec_at


def _make_run(sgd, ranks_fn):
    def run(x, y, w, b, a, lr, idx, rec_at, rw, rb, ra, rl, tol, rk, sv):
        sgd(x, y, w, b, a, lr, idx, rec_at, rw, rb, ra, rl)
        ranks_fn(x, rw, rb, ra, tol, rk, sv)
        return w, rk
    return run


def _args(prob):
    cfg, x, y, w, b, a, lr, idx, rec_at = prob
    K = rec_at.shape[0]
    # zeros, not empty: the compile-warm-up call of _jacobian_ranks reads records no SGD run filled
    return (x, y, w.copy(), b.copy(), a.copy(), lr, idx, rec_at, np.zeros((K, cfg.m)), np.zeros((K, cfg.m)),
            np.zeros((K, cfg.m)), np.zeros(K), cfg.rank_tol, np.zeros(K, np.int64), np.zeros((K, x.shape[0])))


def _torch_run(prob) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    cfg, x, y, w, b, a, lr, idx, rec_at = prob
    torch.set_num_threads(1)
    X = torch.tensor(x, dtype=torch.float64)
    Y = torch.tensor(y, dtype=torch.float64)
    params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (w, b, a)]

    def f(p, xs):
        return torch.relu(torch.outer(xs, p[0]) + p[1]) @ p[2]

    t0 = time.perf_counter()
    snaps = []
    rec = set(int(r) for r in rec_at)
    lr_l, idx_l = lr.tolist(), idx.tolist()
    if 0 in rec:
        snaps.append([p.detach().clone() for p in params])
    for t in range(len(lr_l)):
        i = idx_l[t]
        out = f(params, X[i:i + 1])[0]
        loss = 0.5 * (out - Y[i]) ** 2
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= lr_l[t] * g
        if t + 1 in rec:
            snaps.append([p.detach().clone() for p in params])
    jac = torch.func.jacrev(lambda w_, b_, a_: f((w_, b_, a_), X), argnums=(0, 1, 2))
    for s in snaps:
        J = torch.cat(jac(*s), dim=1)
        sv = torch.linalg.svdvals(J)
        int((sv > cfg.rank_tol * sv[0]).sum())
    return time.perf_counter() - t0


# --- lean numpy baselines (issue 17): the same recursions with in-place ufuncs on preallocated buffers,
# Python floats for the schedule and indices, and the records' losses / ranks computed once at the end,
# vectorized over the checkpoints (the recursions do not read them) ------------------------------------

def _relu_net1d_losses(x, y, rw, rb, ra):
    """L(θ_k) = (1/2n)‖f_θk(x) − y‖² for every record k, one (K, n, m) pass."""
    H = np.maximum(x[None, :, None] * rw[:, None, :] + rb[:, None, :], 0.0)
    r = np.matmul(H, ra[:, :, None])[:, :, 0] - y[None, :]
    return 0.5 * np.einsum("kn,kn->k", r, r) / x.shape[0]


def lean_relu1d(x, y, w, b, a, lr, idx, rec_at, rw, rb, ra, rl, tol, rk, sv):
    """The ``relu1d_sgd_30k`` computation (:func:`toymodels.relu._reference.net1d.sgd` then
    :func:`~toymodels.relu._reference.net1d.jacobian_ranks`, same arguments and outputs, equal to
    rounding) as a lean numpy loop: ~9 ufunc calls per SGD step, the record losses in one (K, n, m)
    pass and the K singular-value problems in one batched ``np.linalg.svd``. Returns (w, ranks)
    (the final w and the ranks, as the benchmark's run function), or (step, None) at the first non-finite
    gradient factor."""
    xs, ys, lrs, ids, rec = x.tolist(), y.tolist(), lr.tolist(), idx.tolist(), rec_at.tolist()
    m, K, k = w.shape[0], len(rec), 0
    z, r, ga = np.empty(m), np.empty(m), np.empty(m)
    on = np.empty(m, bool)
    while k < K and rec[k] == 0:
        rw[k], rb[k], ra[k] = w, b, a
        k += 1
    for t in range(len(lrs)):
        i = ids[t]
        xi = xs[i]
        np.multiply(w, xi, out=z)
        z += b
        np.maximum(z, 0.0, out=r)
        g = lrs[t] * (float(a @ r) - ys[i])
        if not math.isfinite(g):
            rl[:k] = _relu_net1d_losses(x, y, rw[:k], rb[:k], ra[:k])
            return t, None
        np.greater(z, 0.0, out=on)
        np.multiply(a, g, out=ga)
        ga *= on
        r *= g
        a -= r
        b -= ga
        ga *= xi
        w -= ga
        while k < K and rec[k] == t + 1:
            rw[k], rb[k], ra[k] = w, b, a
            k += 1
    rl[:] = _relu_net1d_losses(x, y, rw, rb, ra)
    Z = x[None, :, None] * rw[:, None, :] + rb[:, None, :]                       # (K, n, m)
    onz = Z > 0.0
    J = np.concatenate([np.where(onz, ra[:, None, :] * x[None, :, None], 0.0), np.where(onz, ra[:, None, :], 0.0),
                        np.where(onz, Z, 0.0)], axis=2)
    s = np.linalg.svd(J, compute_uv=False)                                        # (K, min(n, 3m))
    sv[:, :s.shape[1]] = s
    rk[:] = np.where(s[:, 0] > 0, np.sum(s > tol * s[:, :1], axis=1), 0)
    return w, rk


def lean_teacher2_sgd(X, y, W, a, lr, idx, rec_at, rec_W, rec_a, rec_loss):
    """:func:`toymodels.relu._reference.teacher2.sgd` (same arguments, outputs and return value, equal
    to rounding) as a lean numpy loop; the record losses computed at the end in one pass."""
    lrs, ids, ys, rec = lr.tolist(), idx.tolist(), y.tolist(), rec_at.tolist()
    m, K, k = W.shape[0], len(rec), 0
    z, r, ga = np.empty(m), np.empty(m), np.empty(m)
    on = np.empty(m, bool)
    G = np.empty_like(W)
    while k < K and rec[k] == 0:
        rec_W[k], rec_a[k] = W, a
        k += 1
    for t in range(len(lrs)):
        i = ids[t]
        xi = X[i]
        np.dot(W, xi, out=z)
        np.maximum(z, 0.0, out=r)
        g = lrs[t] * (float(a @ r) - ys[i])
        if not math.isfinite(g):
            _teacher2_losses(X, y, rec_W[:k], rec_a[:k], rec_loss[:k])
            return t
        np.greater(z, 0.0, out=on)
        np.multiply(a, g, out=ga)
        ga *= on
        r *= g
        a -= r
        np.multiply(ga[:, None], xi, out=G)
        W -= G
        while k < K and rec[k] == t + 1:
            rec_W[k], rec_a[k] = W, a
            k += 1
    _teacher2_losses(X, y, rec_W, rec_a, rec_loss)
    return -1


def _teacher2_losses(X, y, rec_W, rec_a, rec_loss):
    R = np.matmul(np.maximum(np.matmul(rec_W, X.T), 0.0).transpose(0, 2, 1), rec_a[:, :, None])[:, :, 0] - y
    rec_loss[:] = 0.5 * np.einsum("kn,kn->k", R, R) / X.shape[0]


def lean_teacher3_sgd(X, y, W1, W2, a, lr, idx, rec_at, rec_W1, rec_W2, rec_a, rec_loss):
    """:func:`toymodels.relu._reference.teacher3.sgd` (same arguments, outputs and return value, equal
    to rounding) as a lean numpy loop; the record losses computed at the end in one pass."""
    lrs, ids, ys, rec = lr.tolist(), idx.tolist(), y.tolist(), rec_at.tolist()
    m1, m2 = W1.shape[0], W2.shape[0]
    K, k = len(rec), 0
    h1, r1, g1 = np.empty(m1), np.empty(m1), np.empty(m1)
    h2, r2, g2 = np.empty(m2), np.empty(m2), np.empty(m2)
    G1, G2 = np.empty_like(W1), np.empty_like(W2)
    while k < K and rec[k] == 0:
        rec_W1[k], rec_W2[k], rec_a[k] = W1, W2, a
        k += 1
    for t in range(len(lrs)):
        i = ids[t]
        xi = X[i]
        np.dot(W1, xi, out=h1)
        np.maximum(h1, 0.0, out=r1)
        np.dot(W2, r1, out=h2)
        np.maximum(h2, 0.0, out=r2)
        g = lrs[t] * (float(a @ r2) - ys[i])
        if not math.isfinite(g):
            _teacher3_losses(X, y, rec_W1[:k], rec_W2[:k], rec_a[:k], rec_loss[:k])
            return t
        np.multiply(a, g, out=g2)
        g2 *= h2 > 0.0
        np.dot(g2, W2, out=g1)
        g1 *= h1 > 0.0
        np.multiply(g1[:, None], xi, out=G1)
        np.multiply(g2[:, None], r1, out=G2)
        W1 -= G1
        W2 -= G2
        r2 *= g
        a -= r2
        while k < K and rec[k] == t + 1:
            rec_W1[k], rec_W2[k], rec_a[k] = W1, W2, a
            k += 1
    _teacher3_losses(X, y, rec_W1, rec_W2, rec_a, rec_loss)
    return -1


def _teacher3_losses(X, y, rec_W1, rec_W2, rec_a, rec_loss):
    H1 = np.maximum(np.matmul(X, rec_W1.transpose(0, 2, 1)), 0.0)                  # (K, n, m1)
    H2 = np.maximum(np.matmul(H1, rec_W2.transpose(0, 2, 1)), 0.0)                 # (K, n, m2)
    R = np.matmul(H2, rec_a[:, :, None])[:, :, 0] - y
    rec_loss[:] = 0.5 * np.einsum("kn,kn->k", R, R) / X.shape[0]


@workload("relu1d_sgd_30k", target=6.0,
          description="2-layer ReLU (m=100) on Blanc et al. 1D data, SGD b=1, 3e4 steps, 250 rank checkpoints")
def relu1d(ctx: BenchContext) -> dict:
    steps = ctx.steps(STEPS)
    prob = _problem(steps)
    nb_run = _make_run(_kernels.sgd, _kernels.jacobian_ranks)
    np_run = _make_run(_reference.sgd, _reference.jacobian_ranks)
    small = _problem(10)
    t0 = time.perf_counter()
    c1, cached = first_call("relu.sgd.net1d", _kernels.sgd, _args(small)[:12])
    c2, _ = first_call("relu.jacobian_ranks", _kernels.jacobian_ranks,
                       (small[1],) + _args(small)[8:11] + _args(small)[12:])
    compile_s = c1 + c2
    numba_s, numba_rep, a_nb = best_of(nb_run, lambda: _args(prob), ctx.repeats)
    lean_s, lean_rep, a_ln = best_of(lean_relu1d, lambda: _args(prob), ctx.repeats, budget_s=ctx.numpy_budget_s)
    ref_s, numpy_rep, a_np = best_of(np_run, lambda: _args(prob), ctx.repeats, budget_s=ctx.numpy_budget_s)
    torch_s = _torch_run(prob)
    w_nb, w_np = a_nb[2], a_np[2]
    notes = ["torch not installed: the torch_s baseline skipped"] if torch_s is None else []
    res = {"notes": notes, "numba_s": numba_s, "torch_s": torch_s, "compile_s": compile_s,
           "compile_cached": cached, "numpy_repeats": lean_rep, "reference_repeats": numpy_rep,
           "numba_repeats": numba_rep, "steps": steps, "checkpoints": N_CHECKPOINTS, "m": prob[0].m,
           "goal_numba_s": 2.0, "meets_goal": bool(numba_s < 2.0),
           "speedup_vs_torch": None if torch_s is None else torch_s / numba_s,
           "ranks_equal": bool(np.array_equal(a_nb[13], a_np[13])),
           "lean_ranks_equal": bool(np.array_equal(a_ln[13], a_np[13])),
           "max_rel_diff": float(np.max(np.abs(w_nb - w_np)) / np.max(np.abs(w_np))),
           "lean_max_rel_diff": float(np.max(np.abs(a_ln[2] - w_np)) / np.max(np.abs(w_np)))}
    m, n, K = prob[0].m, prob[1].shape[0], N_CHECKPOINTS + 1
    flops = 11 * m * steps + K * (8 * n * n * 3 * m + 6 * n * m)
    baseline, base_s = ("lean numpy", lean_s) if torch_s is None or lean_s <= torch_s else ("torch cpu", torch_s)
    return audit(res, baseline, base_s, ref_s, flops / steps, 0.0, steps,
                 "latency-bound: 3m = 300 parameters in L1, ~11m flops per SGD step (+ K SVDs of 12 x 300, "
                 "~8n^2*3m flops each, spread over the steps); no DRAM traffic per step")


# --- teacher–student models (Fig. 6.5, 6.10/6.14): SGD kernels vs their numpy references ---------------
TEACHER_STEPS = 50_000
TEACHER_CHECKPOINTS = 200


def _teacher_args(model: str, steps: int, K: int):
    """Fresh arguments of ``relu._kernels.teacher{2,3}.sgd`` for the module-default problem, seed 0, large-step
    schedule decayed at 50 %, ``K`` parameter/loss records."""
    if model == "teacher3":
        from ..relu.teacher3 import Teacher3Config as C
        from ..relu.teacher3 import init_student as init
        from ..relu.teacher3 import teacher_data as data
    else:
        from ..relu.teacher2 import Teacher2Config as C
        from ..relu.teacher2 import init_student2 as init
        from ..relu.teacher2 import teacher2_data as data
    cfg = C(steps=steps, transition=0.5)
    X, y, _, _, _ = data(cfg.d, cfg.m_teacher, cfg.n, 10, 0)
    params = init(cfg.d, cfg.m, cfg.init_scale, 0)
    idx = stream(0, "bench.relu.batches").integers(0, cfg.n, size=steps)
    rec_at = checkpoints(steps, K)
    recs = [np.zeros((rec_at.size, *p.shape)) for p in params]
    return (X, y, *[p.copy() for p in params], cfg.schedule(), idx, rec_at, *recs, np.zeros(rec_at.size))


def _teacher_workload(ctx: BenchContext, model: str) -> dict:
    from ..relu._kernels import teacher2 as _kernels2, teacher3 as _kernels3
    from ..relu._reference import teacher2 as _reference2, teacher3 as _reference3

    kern, ref = ((_kernels3.sgd, _reference3.sgd) if model == "teacher3"
                 else (_kernels2.sgd, _reference2.sgd))
    steps = ctx.steps(TEACHER_STEPS)
    compile_s, cached = first_call(f"relu.sgd.{model}", kern, _teacher_args(model, 10, 2))
    numba_s, numba_rep, a_nb = best_of(kern, lambda: _teacher_args(model, steps, TEACHER_CHECKPOINTS), ctx.repeats)
    lean = lean_teacher3_sgd if model == "teacher3" else lean_teacher2_sgd
    with np.errstate(over="ignore", invalid="ignore"):      # a diverging run (teacher2) overflows, then stops
        lean_s, lean_rep, a_ln = best_of(lean, lambda: _teacher_args(model, steps, TEACHER_CHECKPOINTS),
                                         ctx.repeats, budget_s=ctx.numpy_budget_s)
        ref_s, numpy_rep, a_np = best_of(ref, lambda: _teacher_args(model, steps, TEACHER_CHECKPOINTS),
                                         ctx.repeats, budget_s=ctx.numpy_budget_s)
    n_par = 3 if model == "teacher3" else 2
    th_nb = np.concatenate([a_nb[2 + j].ravel() for j in range(n_par)])
    th_np = np.concatenate([a_np[2 + j].ravel() for j in range(n_par)])
    th_ln = np.concatenate([a_ln[2 + j].ravel() for j in range(n_par)])
    n = a_nb[0].shape[0]
    p = int(th_nb.size)
    res = {"numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
           "numpy_repeats": lean_rep, "reference_repeats": numpy_rep, "numba_repeats": numba_rep, "steps": steps,
           "checkpoints": TEACHER_CHECKPOINTS, "n_params": p,
           "max_rel_diff": float(np.max(np.abs(th_nb - th_np)) / np.max(np.abs(th_np))),
           "lean_max_rel_diff": float(np.max(np.abs(th_ln - th_np)) / np.max(np.abs(th_np))),
           "lean_loss_max_rel_diff": float(np.max(np.abs(a_ln[-1] - a_np[-1])) / np.max(np.abs(a_np[-1])))}
    # the step at which the run stopped on a non-finite gradient factor (-1: it ran all steps)
    stop = int(kern(*_teacher_args(model, steps, TEACHER_CHECKPOINTS)))
    run = steps if stop < 0 else stop
    res.update(stopped_at=stop, steps_run=run)
    if stop >= 0:
        res["notes"] = [f"the run diverges (non-finite SGD step) at step {stop} of {steps}: every backend stops "
                        f"there, so the times and the floor cover {stop} steps"]
    # one backprop on one example ~ 6 flops per parameter; a record's full-batch loss ~ 2 n p
    flops = 6 * p * run + (TEACHER_CHECKPOINTS + 1) * 2 * n * p
    return audit(res, "lean numpy", lean_s, ref_s, flops / run, 0.0, run,
                 f"latency-bound: {p} parameters in L1, ~6p flops per SGD step; no DRAM traffic per step")


@workload("relu_teacher3_sgd_5e4", target=10.0,
          description="3-layer ReLU teacher-student (10-10, d=5, n=50), SGD b=1, 5e4 steps, 200 records")
def relu_teacher3(ctx: BenchContext) -> dict:
    """Fig. 6.5's SGD run (module defaults, seed 0, decay at 50 %): :func:`toymodels.relu._kernels.teacher3.sgd`
    vs :func:`toymodels.relu._reference.teacher3.sgd`, parameters and full-batch loss recorded at 200
    checkpoints. Target numba ≥ 10× the lean numpy loop (per-step work is one 160-parameter backprop: numpy pays
    ~10 small-array calls per step)."""
    return _teacher_workload(ctx, "teacher3")


@workload("relu_teacher2_sgd_5e4", target=10.0,
          description="2-layer ReLU teacher-student (m=50, d=2, n=50), SGD b=1, 5e4 steps, 200 records")
def relu_teacher2(ctx: BenchContext) -> dict:
    """Fig. 6.10/6.14's SGD run (module defaults, seed 0, decay at 50 %): :func:`toymodels.relu._kernels.teacher2.sgd`
    vs :func:`toymodels.relu._reference.teacher2.sgd`. Target numba ≥ 10× the lean numpy loop.

    With these settings the run diverges at step 10 766 (seed 0; both backends, ``stopped_at``), so only
    that many steps are timed (issue 17 audit; the workload's settings are left as they were)."""
    return _teacher_workload(ctx, "teacher2")
