"""Options of the Square Attack shared by the numpy twin (:mod:`toymodels.square`) and the torch attack
(:mod:`toymodels.torch.square`): the p schedules, the losses' names, and the defaults by input size.

Schedules. The fraction p of the image covered by a square at the i-th proposal (i = 1..N−1 for a budget
of N queries, the initialization being query 0) is pᵢ = p_init · 2^{−m(i)}:

* ``"thesis"`` (thesis l.961): m = #{t ∈ :data:`P_HALVINGS` : kᵢ ≥ t}, kᵢ = ⌊10⁴·i/N⌋ (``rescale``) or
  kᵢ = i (no rescaling): p is halved at iterations 10, 50, 200, 1000, 2000, 4000, 6000, 8000 of a
  10,000-query budget;
* ``"reference"`` (the authors' code ``p_selection`` and AutoAttack's / torchattacks' port): with the
  reference code's 0-based iteration counter j = i − 1 and its iteration budget N − 1 (its ``n_queries``
  counts proposals; the initialization is one more query), kᵢ = int(j/(N − 1)·10⁴) (``rescale``, the
  float expression of the code) or kᵢ = j, and m = #{t ∈ :data:`P_HALVINGS_REFERENCE` : kᵢ > t}:
  also halved after 500, and each threshold one iteration later than the thesis'.
  ``torchattacks.Square(n_queries=Q)`` therefore corresponds to ``n_queries=Q + 1`` here.

``rescale=False`` (AutoAttack's ``resc_schedule=False``) uses the raw iteration index, i.e. the schedule
of a 10,000-query budget truncated at N.

Losses (minimized; logits z, label y, target t):

* untargeted ``"margin"`` (default): z_y − max_{k≠y} z_k; ``"ce"``: −CE(z, y) = z_y − logsumexp_k z_k
  (the reference code's ``loss='ce'``);
* targeted ``"ce"`` (default): CE(z, t) = logsumexp_k z_k − z_t; ``"margin"``: max_{k≠t} z_k − z_t.

Defaults by input size (:func:`default_p_init`, :func:`default_n_queries`). The thesis' values p = 0.05
(ℓ∞) and 0.1 (ℓ₂) with 1,000 queries (thesis l.1377; the authors' README runs 10,000) are the ImageNet
ones, for 224×224 and 299×299 images: the first square has side ≈ 50 (ℓ∞) / 71 (ℓ₂) pixels there.
On 32×32 images the same p gives a first square of side 7 / 10 pixels and, after the halvings, side 1
squares within a few hundred queries: the attack crawls. For small images the authors use
p = 0.3 (CIFAR-10, MNIST) and 0.8 (MNIST adversarially trained), and AutoAttack, run by RobustBench on
every CIFAR-sized model, p = 0.8 with 5,000 queries in both norms. So images of side ≤ 64 get p = 0.8
and 5,000 queries, larger images the thesis' values with 1,000 queries. On the toy CNN of
``python -m toymodels.square attack`` (32×32, ℓ∞, ε = 8/255) this moves the robust accuracy from 0.43
(p = 0.05, 1,000 queries) to within a few points of white-box PGD (see ``experiment.py``).
"""
from __future__ import annotations

from ..errors import ConfigError, check_bool, check_choice, check_int

__all__ = ["P_HALVINGS", "P_HALVINGS_REFERENCE", "SCHEDULES", "LOSSES", "SMALL_SIDE", "MAX_RESTARTS",
           "p_schedule", "default_p_init", "default_n_queries", "resolve_loss", "check_search_options"]

#: iterations (of a 10,000-query budget) at which the thesis halves p (thesis l.961)
P_HALVINGS = (10, 50, 200, 1000, 2000, 4000, 6000, 8000)
#: the reference code's thresholds (p halved once the iteration index exceeds each)
P_HALVINGS_REFERENCE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
SCHEDULES = ("thesis", "reference")
LOSSES = ("margin", "ce")
#: images with max(H, W) at most this get the small-image defaults (AutoAttack's CIFAR values)
SMALL_SIDE = 64
#: restarts allowed (each costs up to a full budget on the unbroken points)
MAX_RESTARTS = 1000


def p_schedule(p_init: float, i: int, n_queries: int, schedule: str = "thesis", rescale: bool = True) -> float:
    """pᵢ of the i-th proposal for a budget of ``n_queries`` queries (module docstring)."""
    i, n = int(i), int(n_queries)
    if schedule == "thesis":
        k = (10000 * i) // n if rescale else i
        m = sum(k >= t for t in P_HALVINGS)
    elif schedule == "reference":
        j = i - 1
        # the code's own float expression, int(it / n_queries * 10000), so that boundaries match exactly
        k = int(j / max(n - 1, 1) * 10000) if rescale else j
        m = sum(k > t for t in P_HALVINGS_REFERENCE)
    else:
        raise ConfigError("schedule", "must be one of {" + ", ".join(SCHEDULES) + "}", schedule)
    return float(p_init) / 2.0 ** m


def default_p_init(norm: str, H: int, W: int) -> float:
    """0.8 for images of side ≤ :data:`SMALL_SIDE` (AutoAttack's value on 32×32), else the thesis'
    ImageNet values 0.05 (ℓ∞) / 0.1 (ℓ₂); evidence in the module docstring."""
    if max(H, W) <= SMALL_SIDE:
        return 0.8
    return 0.05 if norm == "linf" else 0.1


def default_n_queries(H: int, W: int) -> int:
    """5,000 queries for images of side ≤ :data:`SMALL_SIDE` (AutoAttack), else 1,000 (the thesis' runs)."""
    return 5000 if max(H, W) <= SMALL_SIDE else 1000


def resolve_loss(loss: str | None, targeted: bool) -> str:
    """The loss name: None → "margin" (untargeted) or "ce" (targeted); ConfigError for unknown names."""
    if loss is None:
        return "ce" if targeted else "margin"
    return check_choice("loss", loss, LOSSES)


def check_search_options(loss, schedule, rescale, restarts, targeted) -> str:
    """Validate the options of the random search (ConfigError naming the field); returns the loss name."""
    check_choice("schedule", schedule, SCHEDULES)
    check_bool("rescale", rescale)
    check_int("restarts", restarts, 1, MAX_RESTARTS)
    return resolve_loss(loss, bool(targeted))
