"""The model-and-data options shared by the commands that measure a checkpoint (``sharpness``,
``curvature``): ``--checkpoint FILE`` or a fresh ``--model``, ``--dataset``, ``--data-dir``, and the first
points of the checkpoint's training set. Imports no torch (``--help`` works without it)."""
from __future__ import annotations

from .._cli import Choice, InDir, InFile
from ..datasets import IMAGE_DATASETS
from ..errors import ConfigError
from .config import MODELS

__all__ = ["add_source", "first_points"]


def add_source(p) -> None:
    """``--checkpoint`` | ``--model`` (one required), ``--dataset``, ``--data-dir``."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=InFile(), metavar="FILE",
                     help="checkpoint of toymodels.torch.train (torch.save dict with 'model_state' and 'config')")
    src.add_argument("--model", type=Choice(*MODELS),
                     help="measure a freshly initialized model (drawn with --seed) instead")
    p.add_argument("--dataset", type=Choice(*IMAGE_DATASETS), default=None,
                   help="default: the checkpoint's, else synthetic")
    p.add_argument("--data-dir", type=InDir(), default=None,
                   help="folder holding the real datasets (nothing downloads)")


def first_points(src, n: int, field: str):
    """(x, y, num_classes): the first ``n`` points of the training set of ``src`` (a
    :class:`toymodels.torch.checkpoint.Source`: the checkpoint's data, same size and seed);
    ConfigError naming ``field`` when the set is smaller."""
    from .data import load

    n_train = max(int(src.config.get("n_train") or n), n)
    x, y, _, _, num_classes = load(src.dataset, src.data_dir, n_train, 1, src.data_seed)
    if x.shape[0] < n:
        raise ConfigError(field, f"must be <= {x.shape[0]} (training points of {src.dataset})", n)
    return x[:n], y[:n], num_classes
