"""toymodels.torch — the same algorithms as the numba layer, for ``nn.Module``s on cpu or cuda.

Importing this package requires torch (``pip install "toymodels[torch]"``); the rest of toymodels does
not. Every algorithm here is cross-checked against its numba twin on the toy models (tests/test_torch_*).

Modules (one algorithm per file):

* :mod:`.device` — ``resolve_device("auto"|"cpu"|"cuda[:k]")``, seeding.
* :mod:`.sam` — ``SAM(params, base_optimizer, rho, ...)`` optimizer wrapper (m-SAM, n-SAM, BN-safe ascent).
* :mod:`.models` — PreAct ResNet-18, DenseNet-100-12, the single-layer CNN (numba-convertible).
* :mod:`.conv` — ``nn.Conv2d`` with a cheap double backward (GradAlign on cuda).
* :mod:`.attacks` — FGSM, FGSM-RS, PGD-k(-RS), gradient alignment, GradAlign regulariser.
* :mod:`.data` — synthetic / CIFAR-10/100 / SVHN tensors from a local directory.
* :mod:`.train` — one training loop for ``train-at``, ``train-sam``, ``train-sgd`` (DDP-aware), checkpoints.
* :mod:`.sparsity` — feature-sparsity coefficient at chosen layers.
* :mod:`.sharpness` — adaptive average/worst-case m-sharpness for any ``nn.Module``.
* :mod:`.square` — Square Attack (ℓ∞, ℓ₂) for any ``nn.Module``.
* :mod:`.dln` — batched diagonal-linear-network ensembles (thousands of runs at once).
* :mod:`.sweep` — grids of runs, locally or on a Dask cluster.

CLI: ``python -m toymodels.torch {train-at,train-sam,train-sgd,sharpness,square,dln-ensemble,sweep} ...``.
GPU checks: ``python -m pytest -q tests/test_torch_cuda.py`` on a machine with CUDA.
"""
from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("toymodels.torch needs PyTorch: pip install 'toymodels[torch]' "
                      "(CPU build: pip install torch==2.13.0)") from exc

from .device import resolve_device, seed_everything  # noqa: E402

__all__ = ["resolve_device", "seed_everything"]
