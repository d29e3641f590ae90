"""Device selection and seeding for the torch layer: code runs on cpu or cuda, chosen by the user."""
from __future__ import annotations

import random

import numpy as np
import torch

from .._cli import UsageError

__all__ = ["resolve_device", "seed_everything", "device_name"]


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (cuda if available, else cpu), ``"cpu"``, ``"cuda"`` or ``"cuda:K"``.

    Raises :class:`UsageError` (CLI exit 2) for an unknown name or an unavailable cuda device."""
    if isinstance(name, torch.device):
        return name
    name = "auto" if name is None else str(name).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine (valid: auto, cpu)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"--device must be cuda:K with K in [0, {torch.cuda.device_count() - 1}], got {name}")
        return dev
    raise UsageError(f"--device must be one of {{auto, cpu, cuda, cuda:K}}, got {name!r}")


def device_name(device: torch.device) -> str:
    """A human-readable description of ``device`` (GPU model for cuda)."""
    if device.type == "cuda":
        return f"cuda:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    return "cpu"


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (all devices); return a CPU ``torch.Generator`` seeded with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g
