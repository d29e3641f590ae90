"""Adaptive sharpness (thesis Ch. 7, eq. 7.1): average case by Monte Carlo, worst case by Auto-PGD,
m-sharpness over batches, the diagonal-linear-network closed forms of Sec. 7.6.2 / App. 7.8.2, linear /
logistic classifiers (with the logit normalization of eq. 7.5), the two-layer ReLU net, Kendall τ
(eq. 7.4), and the 1-sharpness of linear models (Sec. 5.4).

``python -m toymodels.sharpness {dln, linear, one-sharpness}``.
"""
from .batches import batch_partition, m_sharpness
from .dln import (block_eigenvalues, dln_grad, dln_hessian, dln_loss, dln_rescaling, hessian_whitened_min,
                  measure_dln, rescaled_hessian, rescaled_lambda_max_closed, rescaled_trace_closed)
from .kendall import kendall_tau
from .linear import (gaussian_mixture, linear_grad, linear_hessian, linear_loss, measure_linear,
                     train_linear)
from .measures import MaxSharpness, apgd_checkpoints, avg_sharpness, max_sharpness
from .one_sharpness import (demo_equal_one_sharpness, interpolating_solutions, one_sharpness_margin_closed,
                            one_sharpness_pgd, one_sharpness_square_closed)
from .relu import measure_relu, relu_gauss_newton, relu_grad, relu_loss, relu_rescale

__all__ = ["avg_sharpness", "max_sharpness", "apgd_checkpoints", "MaxSharpness", "dln_loss", "dln_grad",
           "dln_hessian", "hessian_whitened_min", "block_eigenvalues", "dln_rescaling", "rescaled_hessian",
           "rescaled_trace_closed", "rescaled_lambda_max_closed", "measure_dln",
           "batch_partition", "m_sharpness", "kendall_tau",
           "gaussian_mixture", "linear_loss", "linear_grad", "linear_hessian", "train_linear",
           "measure_linear", "relu_loss", "relu_grad", "relu_gauss_newton", "relu_rescale", "measure_relu",
           "one_sharpness_square_closed", "one_sharpness_margin_closed", "one_sharpness_pgd",
           "interpolating_solutions", "demo_equal_one_sharpness"]
