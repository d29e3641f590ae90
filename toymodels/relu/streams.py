"""The random streams of the relu package: named streams of :mod:`toymodels.rng`, never seeds combined by
arithmetic or tags such as ``default_rng([seed, 7])``.

=====================================  =====================================================================
stream                                 draws
=====================================  =====================================================================
``(seed)``                             the 1D net's initialization (:func:`toymodels.relu.model.init_params`;
                                       the stream of ``numpy.random.default_rng(seed)``)
``(seed, "relu/sgd")``                 the indices i_t of batch-1 SGD, every model (:func:`sgd_indices`)
``(seed, "relu/teacher3/teacher")``    the Fig. 6.5 teacher; ``.../data``: its inputs; ``.../init``: the
                                       student's initialization (:mod:`toymodels.relu.teacher3`)
``(seed, "relu/teacher2/teacher")``    the same for the d = 2 teacher–student (:mod:`toymodels.relu.teacher2`)
``(seed, "relu/fresh")``               fresh N(0, I) inputs for the rank of φ (:func:`fresh_points`)
``(seed, "relu/sam/init", k)``         initialization k of Fig. 5.7 (its int seed: :func:`sam_init_seed`)
=====================================  =====================================================================

``toymodels.sde.relu`` runs the teacher modules' SGD and fresh-point rank with :func:`sgd_indices` and
:func:`fresh_points`, so its SGD run is the one of ``python -m toymodels.relu teacher{2,3}``.
"""
from __future__ import annotations

import numpy as np

from ..rng import child_seed, stream

__all__ = ["sgd_indices", "fresh_points", "sam_init_seed", "model_stream"]


def sgd_indices(seed: int, n: int, steps: int) -> np.ndarray:
    """i_0, …, i_{T−1} i.i.d. uniform on {0, …, n − 1} (batch 1, with replacement), stream ``(seed, "relu/sgd")``."""
    return stream(seed, "relu/sgd").integers(0, n, size=steps)


def fresh_points(seed: int, p: int, d: int) -> np.ndarray:
    """p fresh inputs x ~ N(0, I_d), stream ``(seed, "relu/fresh")`` (thesis l. 3155: the rank of φ_θ on as many
    fresh samples as parameters)."""
    return stream(seed, "relu/fresh").standard_normal((p, d))


def sam_init_seed(seed: int, k: int) -> int:
    """The int seed of initialization k of Fig. 5.7: :func:`toymodels.rng.child_seed` of
    ``(seed, "relu/sam/init", k)``."""
    return child_seed(seed, "relu/sam/init", k)


def model_stream(seed: int, model: str, what: str) -> np.random.Generator:
    """Stream ``(seed, "relu/<model>/<what>")``, ``what`` in {"teacher", "data", "init"}."""
    return stream(seed, f"relu/{model}/{what}")
