"""Square Attack (thesis Ch. 3): the ℓ∞ and ℓ2 score-based black-box attacks of Algorithms 1–3 on the
single-layer CNN (with the reference code's schedule, the CE loss and restarts as options), and
Prop. 3.5.2 (max number of s×s squares in a shape of area k)."""
from .attack_linf import P_HALVINGS, SquareResult, p_schedule, square_attack_linf, square_side
from .attack_l2 import square_attack_l2
from .options import LOSSES, P_HALVINGS_REFERENCE, SCHEDULES, default_n_queries, default_p_init
from .theory import n_star_bruteforce, n_star_formula

__all__ = ["P_HALVINGS", "P_HALVINGS_REFERENCE", "SCHEDULES", "LOSSES", "SquareResult", "p_schedule",
           "square_attack_linf", "square_side", "square_attack_l2", "default_p_init", "default_n_queries",
           "n_star_bruteforce", "n_star_formula"]
