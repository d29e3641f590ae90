"""Diagonal linear networks (thesis Ch. 5): GD, SGD and the SAM family, and their implicit bias.

``python -m toymodels.dln --sam 1`` runs the headline experiment; see :func:`train`.
"""
from .train import (DLNConfig, DLNResult, erm_baseline, method_name, resolve, train, train_uv, uv_to_w,
                    w_to_uv)

__all__ = ["DLNConfig", "DLNResult", "erm_baseline", "method_name", "resolve", "train", "train_uv", "uv_to_w",
           "w_to_uv"]
