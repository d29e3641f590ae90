"""``python -m toymodels.square``: the Square Attack (thesis Ch. 3) on the single-layer CNN, and
Prop. 3.5.2 (how many s×s squares a shape of area k holds).

Subcommands:

* ``shape-count --k K --s S``: N* of eq. (3.4) and, for k ≤ 12, the exhaustive maximum over all
  pixel sets of area k (:mod:`toymodels.square.theory`).
* ``attack``: train a standard (attack "none") single-layer CNN (or, ``--model linear``, a softmax
  linear classifier: :mod:`toymodels.square.linear_model`, 100 GD steps per ``--epochs``) on the
  synthetic dataset, then run the ℓ∞ (or ℓ2) Square Attack on the correctly classified points among
  the first ``--n-points`` test points, and white-box PGD in the same norm on the same ``--n-points``
  points for comparison (``pgd_robust_acc``; null for ℓ2 on the linear model); ``max_perturbation_norm``
  is in the attack's norm. Defaults: 5,000 queries and p = 0.8 (AutoAttack's values for 32×32 images,
  :mod:`toymodels.square.options`), the thesis' schedule, margin loss, one restart.
* ``ablation``: thesis Table 3.1 on the same toy model: the seven (update shape, # random signs,
  initialization) rows of :data:`toymodels.square.ablation.ROWS`, each run untargeted on the same
  correctly classified points with the same attack seed; failure rate, mean/median queries of
  successes (:mod:`toymodels.square.ablation`).

Random streams: :mod:`toymodels.square.experiment`.
"""
from __future__ import annotations

import argparse

from .._cli import Choice, Cli, Command, Int, Num, Result
from .attack_linf import MAX_QUERIES
from .search_cli import add_search_arguments
from .experiment import (L2_EPS_MAX, MAX_EPOCHS, MAX_PGD_STEPS, MAX_POINTS, MAX_TRAIN, QUICK, AblationConfig,
                         AttackConfig)

PROG = "python -m toymodels.square"
#: the exhaustive search of shape-count runs for k up to this
BRUTE_MAX_K = 12
_QUERIES_WHY = "one model evaluation per query and point"


# ---------------------------------------------------------------------------------------------------- shape-count

def _shape_count_arguments(p) -> None:
    p.add_argument("--k", type=Int(1, 2 ** 53, "larger integers lose precision in JSON readers"), required=True,
                   help="area k >= s^2")
    p.add_argument("--s", type=Int(1, 2 ** 26, "s^2 <= k <= 2^53"), default=2, help="square side s >= 1 (default 2)")


def _shape_count(a: argparse.Namespace, session) -> Result:
    from .theory import n_star_bruteforce, n_star_formula

    out = {"k": a.k, "s": a.s, "n_star_formula": n_star_formula(a.k, a.s)}
    if a.k <= BRUTE_MAX_K:
        out["n_star_bruteforce"] = n_star_bruteforce(a.k, a.s)
        out["agree"] = out["n_star_formula"] == out["n_star_bruteforce"]
    return Result(out, {"k": a.k, "s": a.s, "bruteforce_max_k": BRUTE_MAX_K},
                  human=lambda: [print(f"{k}: {v}") for k, v in out.items()])


# ---------------------------------------------------------------------------------------------------- attack, ablation

def _run_arguments(p, cfg, quick: bool = False) -> None:
    """--n-points, --n-train, --epochs with the defaults of ``cfg``; with ``quick`` the default is None
    (resolved by :func:`ablation_config`) and the help names the --quick default too."""
    def default(name):
        return (None, f"default {getattr(cfg, name)}; {QUICK[name]} with --quick") if quick else \
            (getattr(cfg, name), f"default {getattr(cfg, name)}")

    d, h = default("n_points")
    p.add_argument("--n-points", type=Int(1, MAX_POINTS, "the test set is generated with 2·n images"), default=d,
                   help=f"test points: the correctly classified ones among the first N are attacked ({h})")
    d, h = default("n_train")
    p.add_argument("--n-train", type=Int(1, MAX_TRAIN, "24.6 kB an image in memory"), default=d,
                   help=f"synthetic training images ({h})")
    d, h = default("epochs")
    p.add_argument("--epochs", type=Int(1, MAX_EPOCHS), default=d, help=f"training epochs ({h})")


def _attack_arguments(p) -> None:
    p.add_argument("--norm", type=Choice("linf", "l2"), default="linf", help="threat model (default linf)")
    p.add_argument("--eps", type=Num(0, None, lo_open=True), default=None,
                   help="radius ε: in (0, 1] for linf (default 8/255), in (0, √(3·32·32)] = "
                        f"(0, {L2_EPS_MAX:.4g}] for l2 (default 0.5); fractions such as 8/255 are accepted")
    p.add_argument("--queries", type=Int(1, MAX_QUERIES, _QUERIES_WHY), default=None,
                   help="query budget N per point and restart, the initialization included (default 5000: "
                        "AutoAttack's budget for 32×32 images, see toymodels.square.options)")
    p.add_argument("--p-init", type=Num(0, 1, lo_open=True), default=None,
                   help="initial fraction p of the image covered by a square, in (0, 1] (default 0.8, "
                        "AutoAttack's value for 32×32 images; the thesis' 0.05 linf / 0.1 l2 are ImageNet's)")
    add_search_arguments(p)
    _run_arguments(p, AttackConfig())
    p.add_argument("--pgd-steps", type=Int(1, MAX_PGD_STEPS), default=50,
                   help="white-box PGD steps of the reference pgd_robust_acc, α = ε/4, in the attack's norm "
                        "(default 50)")
    p.add_argument("--backend", type=Choice("numba", "numpy"), default="numba",
                   help="the ℓ∞ proposal step: numba kernel (default) or its numpy reference (same results)")
    p.add_argument("--model", type=Choice("cnn", "linear"), default="cnn",
                   help="target: cnn (the single-layer CNN, default) or linear (a softmax linear classifier "
                        "trained by full-batch GD)")


def _attack_config(a: argparse.Namespace) -> AttackConfig:
    return AttackConfig(norm=a.norm, eps=a.eps, queries=a.queries, p_init=a.p_init, targeted=a.targeted,
                        loss=a.loss, schedule=a.schedule, rescale=not a.no_rescale, restarts=a.restarts,
                        n_points=a.n_points, n_train=a.n_train, epochs=a.epochs, pgd_steps=a.pgd_steps,
                        backend=a.backend, model=a.model, seed=a.seed)


def _print_items(out: dict) -> None:
    for k, v in out.items():
        print(f"{k}: {v}")


def _attack(a: argparse.Namespace, session) -> Result:
    from .experiment import attack_config_dict, run_attack

    cfg = _attack_config(a)
    config = attack_config_dict(cfg)            # validates everything before any work
    out = run_attack(cfg, show_progress=session.show_progress)
    return Result(out, config, human=lambda: _print_items(out))


def _ablation_arguments(p) -> None:
    p.add_argument("--eps", type=Num(0, 1, lo_open=True), default=0.1,
                   help="ℓ∞ radius ε in (0, 1], fractions such as 8/255 accepted (default 0.1: at 8/255 the toy "
                        "CNN resists 77-85%% of the points within 300 queries at seed 0, which hides the differences)")
    p.add_argument("--queries", type=Int(1, MAX_QUERIES, _QUERIES_WHY), default=None,
                   help=f"query budget N per point (default 300; {QUICK['queries']} with --quick)")
    p.add_argument("--p-init", type=Num(0, 1, lo_open=True), default=0.05,
                   help="initial fraction p in (0, 1] (default 0.05)")
    _run_arguments(p, AblationConfig(), quick=True)
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: smaller defaults ({QUICK['n_points']} points, {QUICK['queries']} queries, "
                        f"{QUICK['epochs']} epoch, {QUICK['n_train']} images); values given explicitly win")


def ablation_config(a: argparse.Namespace) -> AblationConfig:
    """The config of the flags: ``--quick`` changes the defaults only, an explicit value always wins."""
    base = AblationConfig()
    pick = {k: (getattr(a, k) if getattr(a, k) is not None else QUICK[k] if a.quick else getattr(base, k))
            for k in QUICK}
    return AblationConfig(eps=a.eps, p_init=a.p_init, seed=a.seed, quick=a.quick, **pick)


def _human_ablation(out: dict) -> None:
    print(f"{out['n_attacked']} points attacked, clean accuracy {out['clean_acc']:.3f}")
    print(f"{'shape':>9} {'signs':>5} {'init':>8} {'fail':>6} {'mean q':>7} {'median q':>8}")
    for r in out["rows"]:
        print(f"{r['shape']:>9} {r['signs']:>5} {r['init']:>8} {r['failure_rate']:6.1%} "
              f"{r['mean_queries']:7.1f} {r['median_queries']:8.1f}")


def _ablation(a: argparse.Namespace, session) -> Result:
    from .experiment import ablation_config_dict, run_ablation

    cfg = ablation_config(a)
    config = ablation_config_dict(cfg)          # validates everything before any work
    out = run_ablation(cfg, show_progress=session.show_progress)
    return Result(out, config, human=lambda: _human_ablation(out))


_FLAGS = {"n_queries": "--queries"}
_STREAMS = ("random streams of --seed s: the data (s, 'synthetic/train'), (s, 'synthetic/test'); the CNN's "
            "training its own streams of s; the attack (every ablation row alike) seed child_seed(s, "
            "'square/attack'), white-box PGD child_seed(s, 'square/pgd'), the linear model child_seed(s, "
            "'square/linear') (toymodels.rng); config.attack_seed is the seed= of the library attack call")

CLI = Cli(PROG, __doc__, [
    Command("shape-count", "Prop. 3.5.2: max number of s×s squares in a shape of area k", _shape_count_arguments,
            _shape_count, seed=False, random=False, smoke=("--k", "11", "--s", "2")),
    Command("attack", "ℓ∞ or ℓ2 Square Attack on a standard-trained single-layer CNN (or linear model)",
            _attack_arguments, _attack, flags=_FLAGS, epilog=_STREAMS,
            smoke=("--n-points", "20", "--queries", "20", "--n-train", "300", "--epochs", "3", "--pgd-steps", "3")),
    Command("ablation", "Table 3.1: update shape × random signs × init on the toy CNN", _ablation_arguments,
            _ablation, flags=_FLAGS, epilog=_STREAMS,
            smoke=("--n-points", "20", "--queries", "20", "--n-train", "300", "--epochs", "3")),
])

if __name__ == "__main__":
    raise SystemExit(CLI.main())
