"""Plain-numpy references of :mod:`toymodels.relu._kernels`, one module per model with the kernels' names
and parameters (:mod:`.net1d`, :mod:`.teacher2`, :mod:`.teacher3`), and ``CASES``, their entries in the kernel
registry (:mod:`toymodels.kernels`)."""
from . import net1d, teacher2, teacher3

CASES = net1d.CASES + teacher2.CASES + teacher3.CASES
