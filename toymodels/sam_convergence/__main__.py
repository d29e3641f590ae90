"""``python -m toymodels.sam_convergence``: the same command as ``python -m toymodels.samconv``
(delegates to :func:`toymodels.samconv.__main__.main`; only the program name in messages differs)."""
from __future__ import annotations

import sys

from .._cli import run_main
from ..samconv.__main__ import main as _samconv_main

PROG = "python -m toymodels.sam_convergence"


def main(argv=None):
    return _samconv_main(argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
