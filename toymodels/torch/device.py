"""Device selection and seeding for the torch layer: code runs on cpu or cuda, chosen by the user."""
from __future__ import annotations

import random
import re

import numpy as np
import torch

from ..errors import ConfigError
from ..rng import check_seed, child_seed, seed_sequence
from .config import DEVICE_PATTERN

__all__ = ["resolve_device", "seed_everything", "torch_generator", "device_name"]


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (cuda if available, else cpu), ``"cpu"``, ``"cuda"`` or ``"cuda:K"``.

    Raises :class:`~toymodels.errors.ConfigError` (field ``device``) for an unknown name or an
    unavailable cuda device."""
    if isinstance(name, torch.device):
        return name
    name = "auto" if name is None else str(name).strip().lower()
    if not re.fullmatch(DEVICE_PATTERN, name):
        raise ConfigError("device", "must be one of {auto, cpu, cuda, cuda:K}", name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("device", "must be auto or cpu: CUDA is not available on this machine", name)
    dev = torch.device(name)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError("device", f"must be cuda:K with K in [0, {torch.cuda.device_count() - 1}]", name)
    return dev


def device_name(device: torch.device) -> str:
    """A human-readable description of ``device`` (GPU model for cuda)."""
    if device.type == "cuda":
        return f"cuda:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    return "cpu"


def torch_generator(seed: int, name: str, *index: int) -> torch.Generator:
    """A CPU ``torch.Generator`` on the named stream ``(seed, name, *index)`` of :mod:`toymodels.rng`."""
    return torch.Generator().manual_seed(child_seed(seed, name, *index))


def seed_everything(seed: int, name: str = "global") -> None:
    """Seed python's, numpy's and torch's global generators (all devices) from the named streams
    ``(seed, name + "/python" | "/numpy" | "/torch")``: code that draws from a global generator (torch's
    default weight initialization) is then determined by ``seed``."""
    check_seed(seed)
    random.seed(child_seed(seed, f"{name}/python"))
    np.random.seed(seed_sequence(seed, f"{name}/numpy").generate_state(4))
    torch.manual_seed(child_seed(seed, f"{name}/torch"))
