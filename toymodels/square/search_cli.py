"""The Square Attack's search options, shared by ``python -m toymodels.square attack`` and
``python -m toymodels.torch square`` (the twins take the same keywords: :mod:`toymodels.square.options`)."""
from __future__ import annotations

from .._cli import Choice, Int
from .options import LOSSES, MAX_RESTARTS, SCHEDULES

__all__ = ["add_search_arguments"]


def add_search_arguments(p) -> None:
    """--targeted, --loss, --schedule, --no-rescale, --restarts."""
    p.add_argument("--targeted", action="store_true", help="targeted attack towards random wrong classes")
    p.add_argument("--loss", type=Choice(*LOSSES), default=None,
                   help="loss minimized: margin or ce (default margin untargeted, ce targeted)")
    p.add_argument("--schedule", type=Choice(*SCHEDULES), default="thesis",
                   help="p schedule: thesis (halvings at 10, 50, 200, 1000, ... of 10^4) or reference (the "
                        "authors' code and AutoAttack: also at 500) (default thesis)")
    p.add_argument("--no-rescale", action="store_true",
                   help="do not rescale the schedule to the budget (AutoAttack's resc_schedule=False)")
    p.add_argument("--restarts", type=Int(1, MAX_RESTARTS), default=1,
                   help="restarts: the unbroken points are attacked again with fresh draws (default 1)")
