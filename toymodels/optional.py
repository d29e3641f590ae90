"""Optional dependencies (torch, distributed, scikit-image): found without importing them, and how to
install them. torch and dask are optional: nothing outside ``toymodels/torch`` imports them at module
level, and a command or benchmark that needs one says so in one line instead of failing."""
from __future__ import annotations

import importlib.util
from typing import Sequence

__all__ = ["INSTALL", "missing_modules", "install_hint"]

#: how to install an optional module
INSTALL = {"torch": "pip install torch==2.13.0 (a CPU build; see the README)",
           "distributed": "pip install distributed", "skimage": "pip install scikit-image",
           # its declared dependencies pull a CUDA torch and torchvision, which its attacks never import
           "torchattacks": "pip install --no-deps torchattacks==3.5.1",
           "pyhessian": "pip install --no-deps pyhessian==0.1"}


def missing_modules(needs: Sequence[str]) -> list[str]:
    """The modules of ``needs`` that cannot be imported here (found without importing them)."""
    return [m for m in needs if importlib.util.find_spec(m) is None]


def install_hint(missing: Sequence[str]) -> str:
    """``"needs torch, which is not installed: pip install ..."``."""
    how = "; ".join(INSTALL.get(m, f"pip install {m}") for m in missing)
    return f"needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed: {how}"
