"""Alias of :mod:`toymodels.samconv` under the name used by issue 5: ``python -m toymodels.sam_convergence
[--json]`` prints the same table of SAM convergence bounds (thesis Thm 5.6.1, Thm 5.10.1–5.10.5, Lemmas 3–6):
theorem, problem, measured, bound, ratio, verdict. All code lives in :mod:`toymodels.samconv`."""
from ..samconv import *  # noqa: F401,F403
from ..samconv import __all__  # noqa: F401
