"""``python -m toymodels.fgsm``: the norm of the FGSM-RS perturbation, closed form vs Monte Carlo
(thesis Ch. 2, Lemma 1, eq. 2.4), and the plain-FGSM step with the same ℓ₂ norm (Table 2.1's 7/255).

δ = clip(η + α s, −ε, ε), η ~ U([−ε, ε]^d), s a ±1 sign vector independent of η. Defaults: CIFAR-10's
d = 3072, ε = 8/255, α = 1.25ε (Wong et al.), 10⁵ samples.
"""
from __future__ import annotations

import argparse
import math
import re
from dataclasses import replace

import numpy as np

from .._cli import Choice, Cli, Command, Int, Num, Result, parse_number
from .._io import save_figure
from ..errors import ConfigError
from .mc import D_WHY, EPS_RANGE, MAX_D, MAX_SAMPLES, SIGNS, FGSMConfig, FGSMResult, resolve, simulate

PROG = "python -m toymodels.fgsm"
#: keep every sample for the --out histogram only up to this many (8 bytes each)
MAX_KEPT = 20_000_000
#: results are also given in units of 1/255 (one grey level of an 8-bit image, the thesis' unit)
UNIT = 255

_EPS_MULTIPLE = re.compile(r"^\s*(.*?)\s*\*?\s*eps\s*$")


class _Alpha(Num):
    """A number ≥ 0 (``a/b`` allowed) or a multiple of ε (``1.25eps``, ``1.25*eps``, ``eps``); returns
    ``(value, None)`` or ``(None, multiple)``."""

    def describe(self) -> str:
        return "must be a number >= 0, a fraction a/b, or a multiple of eps such as 1.25eps"

    def __call__(self, text: str):
        m = _EPS_MULTIPLE.match(str(text))
        try:
            if m:
                k = parse_number(m.group(1)) if m.group(1) else 1.0
            else:
                k = parse_number(text)
        except ValueError:
            self.fail(text, self.describe())
        if not k >= 0:
            self.fail(text, self.describe())
        return (None, k) if m else (k, None)


def add_arguments(p) -> None:
    p.add_argument("--d", type=Int(1, MAX_D, D_WHY), default=3072,
                   help="input dimension d >= 1 (default 3072 = CIFAR-10)")
    p.add_argument("--eps", type=Num(*EPS_RANGE), default="8/255",
                   help=f"l_inf radius eps in [{EPS_RANGE[0]:g}, {EPS_RANGE[1]:g}], a number or a fraction a/b "
                        "(default 8/255)")
    p.add_argument("--alpha", type=_Alpha(0), default="1.25eps",
                   help="FGSM-RS step size alpha in [0, 2 eps] (Lemma 1's range): a number, a/b, or a multiple "
                        "of eps such as 1.25eps (default)")
    p.add_argument("--samples", type=Int(1, MAX_SAMPLES, "the stream counter is sample·d + coordinate < 2^62"),
                   default=100_000, help="Monte-Carlo samples of eta, >= 1 (default 1e5)")
    p.add_argument("--sign", type=Choice(*SIGNS), default="random",
                   help=f"sign vector s: {', '.join(SIGNS)} (default random: i.i.d. signs independent of eta; "
                        "'outward' = sign(eta) breaks Lemma 1's hypothesis)")


def _config(args) -> FGSMConfig:
    """The resolved config; α outside Lemma 1's [0, 2ε] is a ConfigError naming ``alpha``."""
    cfg = resolve(FGSMConfig(d=args.d, eps=args.eps, alpha=None, samples=args.samples, sign=args.sign,
                             seed=args.seed))
    value, multiple = args.alpha
    alpha = value if multiple is None else multiple * cfg.eps
    if not 0 <= alpha <= 2 * cfg.eps:
        raise ConfigError("alpha", f"must be in [0, 2*eps] = [0, {2 * cfg.eps:.6g}] (Lemma 1's range; for alpha "
                                   ">= 2*eps every coordinate is clipped to +-eps and E||delta||^2 = d*eps^2)", alpha)
    return resolve(replace(cfg, alpha=alpha))


def _units(x: float) -> str:
    return f"{x:.6g} ({x * UNIT:.4g}/{UNIT})"


def _payload(res: FGSMResult) -> tuple[dict, dict]:
    out = res.summary()
    cfg = out.pop("config")
    cfg["alpha_over_eps"] = cfg["alpha"] / cfg["eps"]
    out["fgsm_equivalent_eps_units"] = {"unit": f"1/{UNIT}", "closed_form": res.fgsm_equivalent_eps * UNIT,
                                        "mc": res.fgsm_equivalent_eps_mc * UNIT}
    return out, cfg


def _print_human(res: FGSMResult, rec: dict) -> None:
    c = res.config
    eps, alpha = c["eps"], c["alpha"]
    print(f"FGSM-RS perturbation norm (Lemma 1, eq. 2.4): d={c['d']}, eps={_units(eps)}, "
          f"alpha={alpha / eps:.4g} eps = {_units(alpha)}, sign={c['sign']}, "
          f"{c['samples']} samples, seed {c['seed']}")

    def pm(m, se):
        return f"{m:.6f}" + ("" if se is None else f" ± {se:.6f}")

    z = rec["mc_sq_norm_z"]
    rows = [("E‖δ‖₂²", f"{res.closed_form_sq_norm:.6f}", pm(res.mc_sq_norm, res.mc_sq_norm_se)
             + ("" if z is None else f"   (z = {z:+.2f})")),
            ("E‖δ‖₂", f"≤ {res.bound_norm:.6f}", pm(res.mc_norm, res.mc_norm_se)),
            ("‖δ_FGSM‖₂ = ε√d", f"{eps * math.sqrt(c['d']):.6f}", "")]
    print()
    print(f"{'':<18}{'closed form / bound':<22}Monte Carlo (± s.e.)")
    for name, a, b in rows:
        print(f"{name:<18}{a:<22}{b}")
    if res.outward_sq_norm is not None:
        print(f"sign=outward depends on eta: exact E‖δ‖₂² = {res.outward_sq_norm:.6f} (outside Lemma 1; "
              "see ERRATA.md)")
    print(f"\nplain FGSM step with the same l2 norm: eps' = {_units(res.fgsm_equivalent_eps)} "
          f"(from sqrt(E‖δ‖²)), {_units(res.fgsm_equivalent_eps_mc)} (from the MC E‖δ‖)")
    print(f"speed: {res.samples_per_s:,.0f} samples/s ({rec['draws_per_s'] / 1e6:,.0f} M coordinates/s, "
          f"{res.backend}); first kernel call {res.compile_s:.2f} s (compile or cache load)")


def _plot(res: FGSMResult, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = res.config
    scale = c["eps"] * math.sqrt(c["d"])
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.hist(np.sqrt(res.sq_norms) / scale, bins=80, density=True, alpha=0.7, label="MC ‖δ‖₂ / (ε√d)")
    ax.axvline(res.bound_norm / scale, color="k", ls="--", label="√E‖δ‖² / (ε√d) (Lemma 1)")
    ax.axvline(res.mc_norm / scale, color="C1", label="MC mean")
    ax.set_xlabel("‖δ_FGSM-RS‖₂ / (ε√d)")
    ax.set_title(f"d={c['d']}, α={c['alpha'] / c['eps']:.3g}ε, {c['samples']} samples")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def run(args: argparse.Namespace, session) -> Result:
    cfg = _config(args)
    keep = session.out is not None and cfg.samples <= MAX_KEPT
    if session.out is not None and not keep:
        session.note(f"no norm_hist.png: more than {MAX_KEPT} samples are not kept in memory")
    res = simulate(cfg, show_progress=session.show_progress, keep_samples=keep)
    payload, config = _payload(res)
    files = {"norm_hist.png": lambda path: _plot(res, path)} if keep else {}
    return Result(payload, config, human=lambda: _print_human(res, payload), files=files)


CLI = Cli(PROG, __doc__, [Command(
    None, "the norm of the FGSM-RS perturbation: Lemma 1's closed form vs Monte Carlo", add_arguments, run,
    description=__doc__.split("\n\n")[0],
    epilog="Example: python -m toymodels.fgsm --eps 8/255 --alpha 1.25eps --samples 1e6 --json",
    smoke=("--d", "64", "--samples", "2000"))])

if __name__ == "__main__":
    raise SystemExit(CLI.main())
