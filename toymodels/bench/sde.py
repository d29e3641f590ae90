"""SDE benchmark workload: :func:`toymodels.sde._kernels.em_dln` vs
:func:`toymodels.sde._reference.em_dln`.

``sde_dln_em_2e4``: 20 000 Euler–Maruyama steps of eq. (6.58) on the DLN u⊙v of Fig. 6.2 (n = 80,
d = 200, 20-sparse β*, seed 0), γ = 0.009, noise scale √(ηδ) = 0.01, pre-drawn Z, loss recorded every
100 steps, in one kernel call (``--quick``: 2 000 steps). Target: numba ≥ 1.25× the lean numpy loop (it
was 2× against the reference; measured 1.2–2.1× the lean loop, 2.5–3× the reference) (both are
dominated by three n×d matrix–vector products per step; numpy's BLAS is already efficient at this
size, the kernel saves the per-step Python and temporary-array overhead).

Baselines (issue 17): ``numpy_s`` is a lean numpy loop of the same recursion, same Z —
:func:`lean_em_dln` folds drift and noise into one vector before the transposed product
(u ← u − v ⊙ Xᵀq, v ← v − u ⊙ Xᵀq, q = γ r/(2n) − √γ·scale·z: two n×d matrix–vector products per
step instead of the reference's three) and :func:`lean_em_relu3` replaces the explicit 50 × 160 Jacobian by
one batched forward pass and one backward pass of qᵀf(X) (q = γ r/n − √γ·scale·z), which is φ_θ(X)ᵀq.
``reference_s`` is the readable reference of :mod:`toymodels.sde._reference`. Both lean loops agree
with the reference to rounding (tests/test_bench_lean.py).

Physical limits (one core: 76 GFLOP/s, the measured copy bandwidth):

* ``sde_dln_em_2e4``: the step needs X(u⊙v) and Xᵀq: 4nd = 64 000 flops (+ ~10d elementwise);
  X (n·d·8 = 128 KB) stays in L2, so no DRAM traffic per step (Z's row: 640 B). Floor
  2·10⁴ × 6.6·10⁴ / 76e9 ≈ 17 ms; compute (in practice L2-bandwidth) bound.
* ``sde_relu3_em_2e4``: forward 2n(m₁d + m₂m₁ + m₂) = 16 000 flops, backward of qᵀf ≈ 2× that:
  ≈ 48 000 flops per step, all operands in L1/L2 (no DRAM traffic). Floor ≈ 13 ms.
"""
from __future__ import annotations

import math

import numpy as np

from ..datasets import make_sparse_regression
from ..sde import _kernels, _reference
from ..rng import stream
from . import BenchContext, audit, best_of, first_call, workload


def _args(data, steps: int, Z) -> tuple:
    n, d = data.X.shape
    rec = np.full(steps // 100 + 1, np.nan)
    return (data.X, data.y, np.full(d, 0.1), np.full(d, 0.01), np.full(steps, 0.009), np.full(steps, 0.01),
            Z, 0, steps, 100, rec)


def lean_em_dln(X, y, u, v, gamma, scale, Z, t0, t1, rec_every, rec):
    """:func:`toymodels.sde._reference.em_dln` (same arguments, outputs and return value, equal to
    rounding) as a lean numpy loop: per step r = X(u⊙v) − y, q = γ r/(2n) − √γ·scale·z, g = Xᵀq,
    u ← u − v⊙g, v ← v − u⊙g (old u), in preallocated buffers."""
    n, d = X.shape
    XT = X.T
    gam = (gamma / (2.0 * n)).tolist()
    sc = (np.sqrt(gamma) * scale).tolist()
    w, g, tmp = np.empty(d), np.empty(d), np.empty(d)
    res, q = np.empty(n), np.empty(n)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(t0, t1):
            np.multiply(u, v, out=w)
            np.dot(X, w, out=res)
            res -= y
            if not math.isfinite(float(res @ res)):
                return t
            np.multiply(res, gam[t], out=q)
            if sc[t] != 0.0:
                np.multiply(Z[t - t0], sc[t], out=res)
                q -= res
            np.dot(XT, q, out=g)
            np.multiply(v, g, out=tmp)
            np.multiply(u, g, out=g)
            u -= tmp
            v -= g
            if (t + 1) % rec_every == 0:
                np.multiply(u, v, out=w)
                np.dot(X, w, out=res)
                res -= y
                lt = 0.25 * float(res @ res) / n
                rec[(t + 1) // rec_every] = lt
                if not math.isfinite(lt):
                    return t
    return -1


def lean_em_relu3(X, y, theta, m1, m2, gamma, scale, Z, t0, t1, rec_every, rec):
    """:func:`toymodels.sde._reference.em_relu3` (same arguments, outputs and return value, equal to
    rounding) as a lean numpy loop: θ ← θ − φ_θ(X)ᵀq with q = γ r/n − √γ·scale·z computed as the
    gradient of qᵀf(X) by one batched backward pass (no Jacobian)."""
    n, d = X.shape
    o = m1 * d
    W1, W2, a = theta[:o].reshape(m1, d), theta[o:o + m2 * m1].reshape(m2, m1), theta[o + m2 * m1:]
    gam = (gamma / n).tolist()
    sc = (np.sqrt(gamma) * scale).tolist()
    H1, R1, G1 = np.empty((n, m1)), np.empty((n, m1)), np.empty((n, m1))
    H2, R2, G2 = np.empty((n, m2)), np.empty((n, m2)), np.empty((n, m2))
    f, q = np.empty(n), np.empty(n)
    gW1, gW2, ga = np.empty((m1, d)), np.empty((m2, m1)), np.empty(m2)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(t0, t1):
            np.dot(X, W1.T, out=H1)
            np.maximum(H1, 0.0, out=R1)
            np.dot(R1, W2.T, out=H2)
            np.maximum(H2, 0.0, out=R2)
            np.dot(R2, a, out=f)
            f -= y
            loss = 0.5 * float(f @ f) / n
            if t % rec_every == 0:
                rec[t // rec_every] = loss
            if not math.isfinite(loss):
                return t
            np.multiply(f, gam[t], out=q)
            if sc[t] != 0.0:
                np.multiply(Z[t - t0], sc[t], out=f)
                q -= f
            np.dot(q, R2, out=ga)
            np.multiply(q[:, None], a, out=G2)
            G2 *= H2 > 0.0
            np.dot(G2.T, R1, out=gW2)
            np.dot(G2, W2, out=G1)
            G1 *= H1 > 0.0
            np.dot(G1.T, X, out=gW1)
            W1 -= gW1
            W2 -= gW2
            a -= ga
    return -1


@workload("sde_dln_em_2e4", target=1.25, description="SDE (6.58) EM on the DLN u*v, n=80, d=200, 2e4 steps")
def sde_dln(ctx: BenchContext) -> dict:
    data = make_sparse_regression(n=80, d=200, k=20, n_test=10, seed=0)
    steps = ctx.steps(20_000)
    Z = stream(0).standard_normal((steps, 80))
    compile_s, cached = first_call("sde.em_dln", _kernels.em_dln, _args(data, 1, Z[:1]))
    numba_s, numba_rep, a_nb = best_of(_kernels.em_dln, lambda: _args(data, steps, Z), ctx.repeats)
    lean_s, lean_rep, a_ln = best_of(lean_em_dln, lambda: _args(data, steps, Z), ctx.repeats,
                                     budget_s=ctx.numpy_budget_s)
    ref_s, numpy_rep, a_np = best_of(_reference.em_dln, lambda: _args(data, steps, Z), ctx.repeats,
                                     budget_s=ctx.numpy_budget_s)
    u, w = a_nb[2], a_np[2]
    res = {"numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
           "numpy_repeats": lean_rep, "reference_repeats": numpy_rep, "numba_repeats": numba_rep, "steps": steps,
           "n": 80, "d": 200, "max_rel_diff": float(np.max(np.abs(u - w)) / np.max(np.abs(w))),
           "lean_max_rel_diff": float(np.max(np.abs(a_ln[2] - w)) / np.max(np.abs(w)))}
    return audit(res, "lean numpy", lean_s, ref_s, 4 * 80 * 200 + 10 * 200, 0.0, steps,
                 "two n x d matrix-vector products per step, X (128 KB) in L2: no DRAM traffic per step")


@workload("sde_relu3_em_2e4", target=1.25,
          description="SDE (6.58) EM on the 3-layer ReLU student (10-10, d=5, n=50), 2e4 steps")
def sde_relu3(ctx: BenchContext) -> dict:
    """:func:`toymodels.sde._kernels.em_relu3` vs :func:`toymodels.sde._reference.em_relu3`:
    20 000 steps of (6.58) from Fig. 6.5's student init (seed 0), γ = 10⁻⁴, noise scale 0.05,
    pre-drawn Z, loss recorded every 10 steps (``--quick``: 2 000). Each step builds the 50 × 160
    Jacobian. Target numba ≥ 1.25× the lean numpy loop (which needs no Jacobian; it was 2× against the
    reference; measured 1.5–1.9× the lean loop, 3.8–5.1× the reference)."""
    from ..sde.relu import SDEReLUConfig, problem, teacher_config

    X, y, _, _, th0, shapes = problem("relu3", teacher_config(SDEReLUConfig(model="relu3", steps=10)))
    steps = ctx.steps(20_000)
    n = X.shape[0]
    Z = stream(0).standard_normal((steps, n))

    def args(S):
        return (X, y, th0.copy(), shapes[0][0], shapes[1][0], np.full(S, 1e-4), np.full(S, 0.05), Z[:S], 0, S,
                10, np.full((S - 1) // 10 + 1, np.nan))

    compile_s, cached = first_call("sde.em_relu3", _kernels.em_relu3, args(1))
    numba_s, numba_rep, a_nb = best_of(_kernels.em_relu3, lambda: args(steps), ctx.repeats)
    lean_s, lean_rep, a_ln = best_of(lean_em_relu3, lambda: args(steps), ctx.repeats, budget_s=ctx.numpy_budget_s)
    ref_s, numpy_rep, a_np = best_of(_reference.em_relu3, lambda: args(steps), ctx.repeats,
                                     budget_s=ctx.numpy_budget_s)
    m1, m2, d = shapes[0][0], shapes[1][0], X.shape[1]
    res = {"numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
           "numpy_repeats": lean_rep, "reference_repeats": numpy_rep, "numba_repeats": numba_rep, "steps": steps,
           "n": n, "p": int(th0.size),
           "max_rel_diff": float(np.max(np.abs(a_nb[2] - a_np[2])) / np.max(np.abs(a_np[2]))),
           "lean_max_rel_diff": float(np.max(np.abs(a_ln[2] - a_np[2])) / np.max(np.abs(a_np[2])))}
    return audit(res, "lean numpy", lean_s, ref_s, 3 * 2 * n * (m1 * d + m2 * m1 + m2), 0.0, steps,
                 "one batched forward + backward of a 160-parameter net on 50 points per step, all in L1/L2")
