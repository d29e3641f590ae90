"""Registry cases of the teacher–student kernels (:mod:`.teacher2`, :mod:`.teacher3`): the module-default
problem of each model at seed 0 and the large-step schedule decayed at 50 %."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...kernels import KernelCase
from ...rng import stream

_BLAS = "the reference's matrix products (BLAS) sum in another order than the kernel's loops"


def teacher_cases(name: str, kernels, refs, config, data, init, sgd_lr: float | None = None) -> list[KernelCase]:
    """The predict / loss / jacobian / sgd cases of one teacher–student model.

    small: the default n training points (sgd: 3000 steps, 15 records); bench: 10⁴ fresh points for
    predict / loss / Jacobian (sgd: 5·10⁴ steps, 200 records). ``sgd_lr`` overrides the default peak η
    where it diverges on so short a run (the case must not diverge: a diverged run compares few steps)."""
    from ..model import checkpoints

    def problem(size):
        c = config()
        X, y, Xt, yt, _ = data(c.d, c.m_teacher, c.n, 10_000, 0)
        if size != "small":
            X, y = Xt, yt
        return c, X, y, tuple(np.ascontiguousarray(p) for p in init(c.d, c.m, c.init_scale, 0))

    def predict_args(size):
        _, X, _, params = problem(size)
        return (X, *params, np.empty(X.shape[0]))

    def loss_args(size):
        _, X, y, params = problem(size)
        return (X, y, *params)

    def jacobian_args(size):
        _, X, _, params = problem(size)
        return (X, *params, np.empty((X.shape[0], sum(p.size for p in params))))

    def sgd_args(size):
        c, X, y, params = problem("small")
        steps, K = (3000, 15) if size == "small" else (50_000, 200)
        c = replace(c, steps=steps, transition=0.5, **({} if sgd_lr is None else {"lr": sgd_lr}))
        idx = stream(0, "relu/registry-batches").integers(0, c.n, size=steps)
        rec_at = checkpoints(steps, K)
        recs = [np.zeros((rec_at.size, *p.shape)) for p in params]
        return (X, y, *params, c.schedule(), idx, rec_at, *recs, np.zeros(rec_at.size))

    return [
        KernelCase(f"relu.predict.{name}", kernels.predict, refs.predict, predict_args, rtol=1e-13, atol=1e-14, why=_BLAS),
        KernelCase(f"relu.loss.{name}", kernels.loss, refs.loss, loss_args, rtol=1e-13, why=_BLAS),
        KernelCase(f"relu.jacobian.{name}", kernels.jacobian, refs.jacobian, jacobian_args, rtol=1e-13, atol=1e-14,
                   why=_BLAS),
        KernelCase(f"relu.sgd.{name}", kernels.sgd, refs.sgd, sgd_args, rtol=1e-9, atol=1e-11, why=_BLAS),
    ]
