"""Progress bars: tqdm on stderr, or nothing. Library functions take ``show_progress``; the CLI turns
it off under ``--json`` and ``--quiet``."""
from __future__ import annotations

import sys

__all__ = ["progress"]


def progress(total: int | None, *, disable: bool, desc: str | None = None, unit: str = "it"):
    """A tqdm bar on stderr (a no-op object when ``disable``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=disable, desc=desc, unit=unit, leave=False, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5)
