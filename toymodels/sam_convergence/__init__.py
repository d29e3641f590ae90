"""SAM convergence bounds measured (thesis Thm 5.6.1, Thm 5.10.1–5.10.7, Lemmas 3–8, App. 5.10).

problems.py — test problems with exact constants (quadratics, x² + 3 sin² x, least squares, logistic
regression); bounds.py — each bound's right-hand side; run.py — full-batch / stochastic SAM (numba kernels in
_kernels.py, numpy references in _reference.py); table.py — both sides of every bound;
``python -m toymodels.sam_convergence [--json]`` prints the table: theorem, problem, measured, bound, ratio,
verdict.
"""
from .bounds import *  # noqa: F401,F403
from .bounds import __all__ as _bounds_all
from .problems import (ConcaveCap, LeastSquares, Logistic, Separable, convex_quadratic, least_squares, logistic,
                       quadratic, sine)
from .run import sam_full_batch, sam_stochastic, sam_stochastic_many, sam_stochastic_reference
from .table import build_rows, counterexample, logistic_rows

__all__ = ["ConcaveCap", "LeastSquares", "Logistic", "Separable", "convex_quadratic", "least_squares", "logistic",
           "quadratic", "sine", "logistic_rows",
           "sam_full_batch", "sam_stochastic", "sam_stochastic_many", "sam_stochastic_reference",
           "build_rows", "counterexample", *_bounds_all]
