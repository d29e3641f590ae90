"""Numba kernels of the relu package, one module per model (numpy references of the same names and
parameters in :mod:`toymodels.relu._reference`, registered there in ``CASES``):

* :mod:`.net1d` — the two-layer net f = Σⱼ aⱼReLU(wⱼx + bⱼ) in 1D: predict, loss, Jacobian, batch-1 SGD,
  Jacobian ranks, full-batch GD / normalized SAM (Fig. 6.4, 6.12, 6.13, 5.7);
* :mod:`.teacher2` — the bias-free two-layer net in ℝᵈ (Fig. 6.10, 6.14);
* :mod:`.teacher3` — the bias-free three-layer net (Fig. 6.5).
"""
from . import net1d, teacher2, teacher3  # noqa: F401
