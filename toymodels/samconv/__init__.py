"""SAM convergence bounds measured (thesis Thm 5.6.1, Thm 5.10.1–5.10.5, Lemmas 3–6, App. 5.10).

problems.py — test problems with exact constants; bounds.py — each bound's right-hand side;
run.py — full-batch / stochastic SAM (numba kernel + numpy reference); table.py — both sides of every
bound; ``python -m toymodels.samconv [--json]`` prints the table.
"""
from .bounds import *  # noqa: F401,F403
from .problems import ConcaveCap, LeastSquares, Separable, convex_quadratic, least_squares, quadratic, sine
from .run import sam_full_batch, sam_stochastic, sam_stochastic_many, sam_stochastic_reference
from .table import build_rows, counterexample

__all__ = ["ConcaveCap", "LeastSquares", "Separable", "convex_quadratic", "least_squares", "quadratic", "sine",
           "sam_full_batch", "sam_stochastic", "sam_stochastic_many", "sam_stochastic_reference",
           "build_rows", "counterexample"]
