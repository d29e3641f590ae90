"""Adaptive sharpness (thesis Ch. 7, eq. 7.1): average case by Monte Carlo, worst case by Auto-PGD,
and the diagonal-linear-network closed forms of Sec. 7.6.2 / App. 7.8.2.

``python -m toymodels.sharpness dln`` trains a DLN to a minimum on whitened data and measures it.
"""
from .dln import (block_eigenvalues, dln_grad, dln_hessian, dln_loss, dln_rescaling, hessian_whitened_min,
                  measure_dln, rescaled_hessian, rescaled_lambda_max_closed, rescaled_trace_closed)
from .measures import MaxSharpness, apgd_checkpoints, avg_sharpness, max_sharpness

__all__ = ["avg_sharpness", "max_sharpness", "apgd_checkpoints", "MaxSharpness", "dln_loss", "dln_grad",
           "dln_hessian", "hessian_whitened_min", "block_eigenvalues", "dln_rescaling", "rescaled_hessian",
           "rescaled_trace_closed", "rescaled_lambda_max_closed", "measure_dln"]
