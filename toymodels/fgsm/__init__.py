"""The norm of the FGSM-RS perturbation (thesis Ch. 2, Lemma 1, eqs. 2.2–2.4).

``python -m toymodels.fgsm`` prints E‖δ_FGSM-RS‖₂² (closed form), Lemma 1's bound on E‖δ‖₂ and
Monte-Carlo estimates of both; see :mod:`toymodels.fgsm.lemma1` for the formulas and
:func:`simulate` for the estimates.
"""
from .lemma1 import (bound_norm, coord_abs_moment, coord_fourth_moment, coord_sq_moment, fgsm_equivalent_eps,
                     lemma1_coord_formula, lemma1_formula, outward_coord_sq_moment, sq_norm_exact,
                     sq_norm_outward, sq_norm_variance)
from .mc import SIGNS, FGSMConfig, FGSMResult, resolve, sample_sq_norms, simulate

__all__ = [
    "FGSMConfig", "FGSMResult", "SIGNS", "resolve", "simulate", "sample_sq_norms",
    "lemma1_formula", "lemma1_coord_formula", "sq_norm_exact", "coord_sq_moment", "bound_norm",
    "coord_fourth_moment", "sq_norm_variance", "coord_abs_moment", "outward_coord_sq_moment",
    "sq_norm_outward", "fgsm_equivalent_eps",
]
