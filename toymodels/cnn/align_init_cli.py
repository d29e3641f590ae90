"""The ``align-init`` command of ``python -m toymodels.cnn``: gradient alignment at initialization of
the single-layer CNN (Lemma 2, Fig. 2.9; :mod:`toymodels.cnn.align_init`)."""
from __future__ import annotations

import argparse

from .._cli import Command, Int, Num, Result
from .._io import save_npz
from .align_init import (EPS_MAX, K_MAX, LIMIT_SAMPLES_MAX, M_MAX, P_MAX, PER_SAMPLE_MAX, SAMPLES_MAX, SIGMA_MAX,
                         SIGMA_MIN, align_init)

__all__ = ["ALIGN_INIT"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("setting (thesis Lemma 2 / Fig. 2.9)")
    size = f"a sample draws 2kp + mp + mk <= {PER_SAMPLE_MAX:.0e} numbers"
    g.add_argument("--p", type=Int(2, P_MAX, size), default=27, help="patch dimension p >= 2 (default 27 = 3x3x3)")
    g.add_argument("--k", type=Int(1, K_MAX, size), default=100,
                   help="number of non-overlapping patches (default 100)")
    g.add_argument("--m", type=Int(1, M_MAX, size), default=4, help="number of filters (default 4)")
    g.add_argument("--eps", type=Num(0, EPS_MAX, lo_open=True), default=8 / 255,
                   help=f"l_inf noise radius eps in (0, {EPS_MAX:g}], a number or a fraction (default 8/255)")
    g.add_argument("--samples", type=Int(2, SAMPLES_MAX, "the per-draw results take 32 bytes each"), default=2000,
                   help="Monte-Carlo draws of (W, U, x, eta) for the finite-k,m cosine (default 2000)")
    g.add_argument("--limit-samples", type=Int(100, LIMIT_SAMPLES_MAX, "about 1 µs of work per draw"),
                   default=200_000, help="draws of (z, eta) for the k,m -> inf limit and the bounds (default 200000)")
    g.add_argument("--sigma-w", type=Num(SIGMA_MIN, SIGMA_MAX), default=None,
                   help="filter init std (default sqrt(2/p)); the results do not depend on it")
    g.add_argument("--sigma-u", type=Num(SIGMA_MIN, SIGMA_MAX), default=None,
                   help="outgoing-weight init std (default sqrt(1/(mk))); the results do not depend on it")


def _print_human(res: dict, c: dict) -> None:
    print("Gradient alignment at initialization, single-layer CNN (thesis Lemma 2, eqs. 2.9-2.10)")
    print(f"  p={c['p']}  k={c['k']}  m={c['m']}  eps={c['eps']:.6g}  samples={c['samples']}  "
          f"limit_samples={c['limit_samples']}  seed={c['seed']}")
    rows = [
        (f"cos, finite k={c['k']}, m={c['m']} (mean ± s.e.)",
         f"{res['cos_finite_mean']:.5f} ± {res['cos_finite_se']:.5f}   (std {res['cos_finite_std']:.4f})"),
        ("  ratio of means (= eq. 2.9 exactly)", f"{res['cos_pooled']:.5f} ± {res['cos_pooled_se']:.5f}"),
        ("  ReLU units flipped by eta", f"{100 * res['flip_fraction']:.3f} %"),
        ("limit k,m -> inf (eq. 2.9)", f"{res['cos_limit']:.5f} ± {res['cos_limit_se']:.1e}"),
        ("Hoeffding bound (Fig. 2.9)", f"{res['bound_hoeffding']:.5f} ± {res['bound_hoeffding_se']:.1e}"),
        ("Cauchy-Schwarz bound", f"{res['bound_cs']:.5f} ± {res['bound_cs_se']:.1e}"),
        ("final bound (eq. 2.10)", f"{res['bound_final']:.5f} ± {res['bound_final_se']:.1e}"),
    ]
    w = max(len(r[0]) for r in rows) + 2
    print()
    for name, val in rows:
        print(name.ljust(w) + val)
    if res["n_degenerate"]:
        print(f"\n{res['n_degenerate']} draw(s) with a zero gradient left out of the finite-k,m statistics")
    print(f"\n({res['seconds']['finite']:.2f} s finite k,m; {res['seconds']['limit_and_bounds']:.2f} s limit "
          "and bounds)")


def run(a: argparse.Namespace, session) -> Result:
    res = align_init(p=a.p, k=a.k, m=a.m, eps=a.eps, samples=a.samples, sigma_w=a.sigma_w, sigma_u=a.sigma_u,
                     seed=a.seed, limit_samples=a.limit_samples, show_progress=session.show_progress,
                     return_samples=True)
    cos = res.pop("cos_samples")
    config = res.pop("config")
    return Result(res, config, human=lambda: _print_human(res, config),
                  files={"cos_samples.npz": lambda path: save_npz(path, cos=cos)})


ALIGN_INIT = Command(
    "align-init", "gradient alignment at initialization (Lemma 2, Fig. 2.9)", add_arguments, run,
    description="Gradient alignment cos(grad l(x), grad l(x+eta)) of a randomly initialized single-layer CNN: "
                "finite k, m (Monte Carlo), the k,m -> inf limit (eq. 2.9) and the lower bounds of Lemma 2 "
                "(eq. 2.10).",
    epilog="Example: python -m toymodels.cnn align-init --eps 0.03 --k 100 --m 4 --json",
    smoke=("--samples", "200", "--limit-samples", "2000", "--k", "20"))
