"""SGD as label-noise GD and its SDE model (thesis Ch. 6, Prop. 6.3.1, eqs. 6.8, 6.9, 6.58).

* :mod:`.label_noise` — the per-step identity "SGD = full-batch GD with labels y + ξ_t" (generic:
  needs only a model's residuals and Jacobian) and the moments of ξ_t.
* :mod:`.em` — Euler–Maruyama on geometric Brownian motion: measured strong/weak orders.
* :mod:`.dln` — SGD vs the SDE discretization (6.58) vs gradient flow on a DLN (u⊙v, Fig. 6.2/6.9).
* :mod:`.relu` — the same comparison on the ReLU teacher–student models (``relu2``, ``relu3``; Fig. 6.9).
* :mod:`.dln2d` — label-noise GD on the 2-parameter DLN u = v of Fig. 6.8.
"""
