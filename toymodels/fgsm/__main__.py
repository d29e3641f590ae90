"""``python -m toymodels.fgsm``: the norm of the FGSM-RS perturbation, closed form vs Monte Carlo
(thesis Ch. 2, Lemma 1, eq. 2.4), and the plain-FGSM step with the same ℓ₂ norm (Table 2.1's 7/255).

δ = clip(η + α s, −ε, ε), η ~ U([−ε, ε]^d), s a ±1 sign vector independent of η. Defaults: CIFAR-10's
d = 3072, ε = 8/255, α = 1.25ε (Wong et al.), 10⁵ samples.
"""
from __future__ import annotations

import math
import re

import numpy as np

from .. import __version__
from .._cli import Parser, UsageError, add_common, emit_json, run_main
from .._io import save_figure, write_json
from .mc import SIGNS, FGSMConfig, FGSMResult, resolve, simulate

PROG = "python -m toymodels.fgsm"
#: keep every sample for the --out histogram only up to this many (8 bytes each)
MAX_KEPT = 20_000_000

_NUM = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


def parse_value(name: str, text: str, eps: float | None = None) -> tuple[float, int | None]:
    """A number, a fraction ``a/b`` (returns the denominator b as the unit 1/b when b is an integer),
    or, when ``eps`` is given, a multiple of it: ``1.25eps``, ``1.25*eps``, ``eps``."""
    t = str(text).strip().replace(" ", "")
    if eps is not None:
        m = re.fullmatch(rf"({_NUM})?\*?eps", t)
        if m:
            return (float(m.group(1)) if m.group(1) else 1.0) * eps, None
    m = re.fullmatch(rf"({_NUM})/({_NUM})", t)
    if m:
        a, b = float(m.group(1)), float(m.group(2))
        if b == 0:
            raise UsageError(f"--{name} must have a nonzero denominator, got {text!r}")
        unit = int(b) if b == int(b) and b > 0 else None
        return a / b, unit
    if re.fullmatch(_NUM, t) or t.lower() in ("nan", "inf", "-inf", "+inf"):
        return float(t), None
    more = ", a/b, or a multiple of eps such as 1.25eps" if eps is not None else " or a fraction a/b"
    raise UsageError(f"--{name} must be a number{more}, got {text!r}")


def _int(name: str, text: str) -> int:
    """An integer, also written as 1e5 or 100_000."""
    t = str(text).strip().replace("_", "")
    try:
        v = float(t) if re.fullmatch(_NUM, t) else None
    except ValueError:
        v = None
    if v is None or not math.isfinite(v) or v != int(v):
        raise UsageError(f"--{name} must be an integer, got {text!r}")
    return int(v)


def build_parser() -> Parser:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0],
               epilog="Example: python -m toymodels.fgsm --eps 8/255 --alpha 1.25eps --samples 1e6 --json")
    p.add_argument("--d", default="3072", help="input dimension d >= 1 (default 3072 = CIFAR-10)")
    p.add_argument("--eps", default="8/255", help="l_inf radius eps > 0: a number or a fraction a/b "
                   "(results are then also given in units of 1/b); default 8/255")
    p.add_argument("--alpha", default="1.25eps", help="FGSM-RS step size alpha in [0, 2 eps] (Lemma 1's "
                   "range): a number, a/b, or a multiple of eps such as 1.25eps (default)")
    p.add_argument("--samples", default="100000", help="Monte-Carlo samples of eta, >= 1 (default 1e5)")
    p.add_argument("--sign", default="random", help=f"sign vector s: {', '.join(SIGNS)} (default random: "
                   "i.i.d. signs independent of eta; 'outward' = sign(eta) breaks Lemma 1's hypothesis)")
    add_common(p)
    return p


def _config(args) -> tuple[FGSMConfig, int | None, str]:
    d = _int("d", args.d)
    if d < 1:
        raise UsageError(f"--d must be an integer >= 1, got {d}")
    samples = _int("samples", args.samples)
    if samples < 1:
        raise UsageError(f"--samples must be an integer >= 1, got {samples}")
    eps, unit = parse_value("eps", args.eps)
    if not (math.isfinite(eps) and eps > 0):
        raise UsageError(f"--eps must be a finite number > 0, got {args.eps!r}")
    alpha, _ = parse_value("alpha", args.alpha, eps=eps)
    if not (math.isfinite(alpha) and 0 <= alpha <= 2 * eps):
        raise UsageError(f"--alpha must be in [0, 2*eps] = [0, {2 * eps:.6g}] (Lemma 1's range; for alpha >= "
                         f"2*eps every coordinate is clipped to +-eps and E||delta||^2 = d*eps^2), "
                         f"got {args.alpha!r} = {alpha:.6g}")
    cfg = resolve(FGSMConfig(d=d, eps=eps, alpha=alpha, samples=samples, sign=args.sign, seed=args.seed))
    return cfg, unit, str(args.eps)


def _fraction_text(x: float, unit: int | None) -> str:
    if unit is None:
        return f"{x:.6g}"
    return f"{x * unit:.4g}/{unit}"


def _record(res: FGSMResult, unit: int | None, eps_text: str) -> dict:
    out = res.summary()
    cfg = dict(res.config)
    cfg["eps_text"] = eps_text
    cfg["alpha_over_eps"] = cfg["alpha"] / cfg["eps"]
    out["config"] = cfg
    out["fgsm_equivalent_eps_units"] = None if unit is None else {
        "unit": f"1/{unit}", "closed_form": res.fgsm_equivalent_eps * unit,
        "mc": res.fgsm_equivalent_eps_mc * unit}
    out["version"] = __version__
    return out


def _print_human(res: FGSMResult, rec: dict, unit: int | None) -> None:
    c = res.config
    eps, alpha = c["eps"], c["alpha"]
    print(f"FGSM-RS perturbation norm (Lemma 1, eq. 2.4): d={c['d']}, eps={_fraction_text(eps, unit)}, "
          f"alpha={alpha / eps:.4g} eps = {_fraction_text(alpha, unit)}, sign={c['sign']}, "
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
    print(f"\nplain FGSM step with the same l2 norm: eps' = {_fraction_text(res.fgsm_equivalent_eps, unit)} "
          f"(from sqrt(E‖δ‖²)), {_fraction_text(res.fgsm_equivalent_eps_mc, unit)} (from the MC E‖δ‖)")
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


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cfg, unit, eps_text = _config(args)
    keep = bool(args.out) and cfg.samples <= MAX_KEPT
    res = simulate(cfg, show_progress=not args.json, keep_samples=keep)
    rec = _record(res, unit, eps_text)
    if args.out:
        write_json(f"{args.out}/result.json", rec)
        if keep:
            _plot(res, f"{args.out}/norm_hist.png")
    if args.json:
        emit_json(rec)
    else:
        _print_human(res, rec, unit)
        if args.out:
            print(f"\nwrote {args.out}/result.json" + (", norm_hist.png" if keep else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, prog=PROG))
