"""Square Attack (thesis Ch. 3): the ℓ∞ and ℓ2 score-based black-box attacks of Algorithms 1–3 on the
single-layer CNN, and Prop. 3.5.2 (max number of s×s squares in a shape of area k)."""
from .attack_linf import P_HALVINGS, SquareResult, p_schedule, square_attack_linf, square_side
from .attack_l2 import square_attack_l2
from .theory import n_star_bruteforce, n_star_formula

__all__ = ["P_HALVINGS", "SquareResult", "p_schedule", "square_attack_linf", "square_side", "square_attack_l2",
           "n_star_bruteforce", "n_star_formula"]
