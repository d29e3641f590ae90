"""toymodels: the toy models of *Understanding generalization and robustness in modern deep
learning* (M. Andriushchenko, EPFL 2024) as fast, tested, runnable software.

Each model lives in its own subpackage and is runnable as ``python -m toymodels.<model>``.
"""

__version__ = "0.3.0"

__all__ = ["__version__"]
