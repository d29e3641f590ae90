"""toymodels.torch — the same algorithms as the numba layer, for ``nn.Module``s on cpu or cuda.

Its algorithms need torch (``pip install "toymodels[torch]"``); the rest of toymodels does not, and
neither do :mod:`.config` (names, :class:`~.config.TrainConfig`) and the command line's ``--help``.
Every algorithm here is cross-checked against its numba twin on the toy models (tests/test_torch_*).

Modules (one algorithm per file):

* :mod:`.config` — the names (models, tasks, attacks, ...) and :class:`~.config.TrainConfig` (no torch).
* :mod:`.device` — ``resolve_device("auto"|"cpu"|"cuda[:k]")``, seeding from named streams.
* :mod:`.sam` — ``SAM(params, base_optimizer, rho, ...)`` optimizer wrapper (m-SAM, n-SAM, BN-safe ascent).
* :mod:`.models` — PreAct ResNet-18, DenseNet-100-12, the single-layer CNN (numba-convertible).
* :mod:`.conv` — ``nn.Conv2d`` with a cheap double backward (GradAlign on cuda).
* :mod:`.attacks` — FGSM, FGSM-RS, PGD-k(-RS) (returning δ), gradient alignment, GradAlign regulariser.
* :mod:`.losses` — margin, cross-entropy and DLR (targeted too): the losses every attack shares.
* :mod:`.pgd` — PGD in ℓ∞ and ℓ₂ (CE or DLR, restarts), returning x_adv.
* :mod:`.apgd` — APGD-CE / APGD-DLR / APGD-T (Croce & Hein 2020), ℓ∞ and ℓ₂.
* :mod:`.fab` — FAB / FAB-T minimal-distortion attack, ℓ∞ and ℓ₂.
* :mod:`.attack_objects` — torchattacks-style ``atk = APGD(model, ...); atk(x, y) -> x_adv`` (eval mode).
* :mod:`.evaluate` — the AutoAttack cascade (standard / fast) for any model, seed summaries, ranking.
* :mod:`.data` — :func:`toymodels.datasets.load_images` as torch tensors.
* :mod:`.train` — one training loop for ``train-at``, ``train-sam``, ``train-sgd`` (DDP-aware), checkpoints.
* :mod:`.sparsity` — feature-sparsity coefficient at chosen layers.
* :mod:`.sharpness` — adaptive average/worst-case m-sharpness for any ``nn.Module``.
* :mod:`.square` — Square Attack (ℓ∞, ℓ₂) for any ``nn.Module``.
* :mod:`.dln` — batched diagonal-linear-network ensembles (thousands of runs at once).
* :mod:`.sweep` — grids of runs, locally or on a Dask cluster.

CLI: ``python -m toymodels.torch {train-at,train-sam,train-sgd,sharpness,square,evaluate,leaderboard,
dln-ensemble,sweep} ...``.
GPU checks: ``python -m pytest -q tests/test_torch_cuda.py`` on a machine with CUDA.
"""
from __future__ import annotations

__all__ = ["resolve_device", "seed_everything"]


def __getattr__(name: str):
    # lazy: ``python -m toymodels.torch --help`` (and the names of toymodels.torch.config) work without
    # torch; the algorithms import it when they are first used
    if name in __all__:
        try:
            from . import device
        except ImportError as exc:  # pragma: no cover - exercised only without torch
            raise ImportError("toymodels.torch needs PyTorch: pip install 'toymodels[torch]' "
                              "(CPU build: pip install torch==2.13.0)") from exc
        return getattr(device, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
