"""The model a command measures or attacks: a checkpoint of :mod:`toymodels.torch.train` (its weights,
model, dataset and data seed) or a freshly initialized model (shared by ``sharpness`` and ``square``).

A checkpoint is a ``torch.save`` dict with ``model_state`` and ``config`` (``model``, ``dataset``,
``data_dir``, ``seed``, ``n_train``, ``filters``, ``width``); unreadable files, other dicts and states
that do not fit the model are a :class:`~toymodels.errors.ConfigError` for the field ``checkpoint``.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass

import torch

from ..errors import ConfigError, check_choice
from .config import MODELS, WIDTH_MODELS
from .data import IMAGE_DATASETS

__all__ = ["Source", "load_checkpoint", "model_source", "instantiate"]


@dataclass
class Source:
    """Where the model comes from: the checkpoint dict (None for a fresh model), its config, the model
    name, and the dataset, data folder and data seed that reproduce its training set."""
    ck: dict | None
    config: dict
    name: str
    dataset: str
    data_dir: str | None
    data_seed: int


def load_checkpoint(path, device) -> dict:
    """The checkpoint dict at ``path`` (tensors on ``device``)."""
    try:
        try:
            ck = torch.load(path, map_location=device, weights_only=True)
        except pickle.UnpicklingError:
            # train.py checkpoints also hold numpy/python RNG states, which the weights-only loader
            # refuses: load them fully, as train.py's --resume does (only open checkpoints you trust)
            ck = torch.load(path, map_location=device, weights_only=False)
    except FileNotFoundError:
        raise ConfigError("checkpoint", "must be an existing file", str(path)) from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is bad input
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError("checkpoint", f"must be a torch.save file of toymodels.torch.train "
                          f"({type(exc).__name__}: {first[:120]})", str(path)) from None
    if not isinstance(ck, dict) or "model_state" not in ck or not isinstance(ck.get("config"), dict):
        raise ConfigError("checkpoint", "must hold a dict with keys 'model_state' and 'config'", str(path))
    if ck["config"].get("model") not in MODELS:
        raise ConfigError("checkpoint", "config must name a model of {" + ", ".join(MODELS) + "}", str(path))
    return ck


def model_source(checkpoint: str | None, model: str | None, dataset: str | None, data_dir: str | None,
                 seed: int, device) -> Source:
    """The checkpoint's own model and data unless ``dataset`` / ``data_dir`` override them; without a
    checkpoint, the fresh ``model`` on ``dataset`` (default synthetic) drawn with ``seed``."""
    ck, config = None, {}
    if checkpoint is not None:
        ck = load_checkpoint(checkpoint, device)
        config = ck["config"]
        name = config["model"]
    else:
        name = check_choice("model", model, MODELS)
    dataset = dataset or config.get("dataset") or "synthetic"
    check_choice("dataset", dataset, IMAGE_DATASETS)
    data_dir = data_dir if data_dir is not None else config.get("data_dir")
    return Source(ck, config, name, dataset, data_dir, int(config.get("seed", seed)))


def _build(name, num_classes, shape, state, config):
    """The model named ``name`` for images of ``shape`` (C, H, W); wrapped with the checkpoint's
    Normalize buffers when its state dict has them."""
    from .models import build_model

    C, H, W = shape
    if H != W and name != "cnn":
        raise ConfigError("model", f"needs square images, got {H}x{W}", name)
    normalize = None
    if state is not None and "0.mean" in state and "0.std" in state:
        normalize = (state["0.mean"].reshape(-1).tolist(), state["0.std"].reshape(-1).tolist())
    dtype = torch.float32
    if state is not None:
        floats = [v.dtype for v in state.values() if torch.is_floating_point(v)]
        dtype = floats[0] if floats else dtype
    return build_model(name, num_classes, C, H, normalize=normalize, dtype=dtype, **_model_kwargs(name, config))


def _model_kwargs(name: str, config: dict) -> dict:
    """The architecture arguments of :func:`~toymodels.torch.models.build_model` that the checkpoint's
    config fixes: ``filters`` of ``cnn``, ``width`` of :data:`~toymodels.torch.config.WIDTH_MODELS`
    (absent or None: the default 64). The normalization (BN / GN) is part of the model name."""
    if name == "cnn":
        return {"filters": int(config.get("filters", 4))}
    if name in WIDTH_MODELS and config.get("width") is not None:
        return {"width": int(config["width"])}
    return {}


def instantiate(src: Source, num_classes: int, shape) -> torch.nn.Module:
    """The model of ``src`` for images of ``shape`` (C, H, W): the checkpoint's weights loaded, or a
    fresh initialization drawn from torch's global generator (seed it first)."""
    ck, config = src.ck, src.config
    model = _build(src.name, int(config.get("num_classes", num_classes)), shape,
                   ck["model_state"] if ck else None, config)
    if ck is not None:
        try:
            model.load_state_dict(ck["model_state"])
        except RuntimeError as exc:
            raise ConfigError("checkpoint", f"state must fit model {src.name!r} "
                              f"({str(exc).splitlines()[0][:160]})") from None
    return model
