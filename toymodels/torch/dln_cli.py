"""``python -m toymodels.torch dln-ensemble``: ``--seeds N`` diagonal-linear-network runs at once on the
GPU (or cpu), with every option of ``python -m toymodels.dln``.

Run r uses seed s_r = --seed + r for its data set and its mini-batches, so it is exactly
``python -m toymodels.dln --seed s_r`` (same β to rounding); ``--shared-data`` (or ``--data FILE``) trains
all runs on one data set (drawn with --seed) and only their mini-batch streams differ.
"""
from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np

from .. import __version__
from .._cli import UsageError, check_int_range, emit_json
from .._io import save_npz, write_json
from ..datasets import load_regression, make_sparse_regression
from ..dln.__main__ import build_parser as dln_parser, config_from_args
from ..dln.train import DLNConfig, resolve

MAX_SEEDS = 1_000_000


def build_parser(command: str = "dln-ensemble"):
    p = dln_parser()
    p.prog = f"python -m toymodels.torch {command}"
    p.description = __doc__.split("\n\n")[0].replace("``", "")
    p.epilog = (f"Example: python -m toymodels.torch {command} --sam 1 --seeds 1000 --steps 100000 "
                "--device cuda --json")
    g = p.add_argument_group("ensemble (torch)")
    g.add_argument("--seeds", type=int, default=8, help="number of runs R, seeds --seed ... --seed+R-1 "
                   "(default 8)")
    g.add_argument("--device", default="auto", help="auto (cuda if available, default), cpu, cuda, cuda:K")
    g.add_argument("--dtype", default="float64", help="float64 (default; matches numba to rounding) or float32")
    g.add_argument("--shared-data", action="store_true", help="one data set (from --seed) for all runs")
    g.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the per-step "
                   "tensors are small; more threads only pay off for large --seeds on idle cores)")
    g.add_argument("--chunk", type=int, default=None, help="steps per host round (index streams, "
                   "divergence check); results do not depend on it")
    return p


def _stats(v: np.ndarray) -> dict:
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0, "mean": None, "sd": None, "se": None, "median": None, "min": None, "max": None}
    sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return {"n": int(v.size), "mean": float(v.mean()), "sd": sd, "se": sd / np.sqrt(v.size),
            "median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}


def _record(res) -> dict:
    l1 = np.abs(res.beta).sum(1)
    out = {"method": res.method, "beta": res.beta, "train_loss": res.train_loss, "test_loss": res.test_loss,
           "diverged_at": [None if s < 0 else int(s) for s in res.diverged_at],
           "converged": res.converged, "beta_l1": l1,
           "alpha_eff_mean": res.alpha_eff.mean(1),   # NaN (null) where w₊⊙w₋ changed sign
           "alpha_eff_theory_mean": res.alpha_eff_theory.mean(1)}
    summary = {"runs": res.runs, "diverged": int(res.diverged.sum()), "converged": int(res.converged.sum()),
               "frac_converged": float(res.converged.mean()), "train_loss": _stats(res.train_loss),
               "test_loss": _stats(res.test_loss), "beta_l1": _stats(l1)}
    if res.beta_star is not None:
        err = np.linalg.norm(res.beta - res.beta_star, axis=1)
        out["beta_error"] = err
        summary["beta_error"] = _stats(np.where(res.diverged, np.nan, err))
    out["summary"] = summary
    out["runtime_s"] = res.runtime_s
    out["throughput_run_steps_per_s"] = res.throughput
    return out


def main(argv=None, command: str = "dln-ensemble") -> int:
    args = build_parser(command).parse_args(argv)
    import torch

    from .device import resolve_device
    from .dln import train_ensemble_torch

    R = check_int_range("--seeds", args.seeds, 1, MAX_SEEDS)
    check_int_range("--threads", args.threads, 1, 1024)
    if args.chunk is not None:
        check_int_range("--chunk", args.chunk, 1)
    dtypes = {"float64": torch.float64, "float32": torch.float32}
    if args.dtype not in dtypes:
        raise UsageError(f"--dtype must be one of {{float64, float32}}, got {args.dtype!r}")
    dev = resolve_device(args.device)
    check_int_range("--seed", args.seed, 0, 2**63 - R)
    seeds = list(range(args.seed, args.seed + R))
    if args.data is not None:
        data = load_regression(args.data)
        data_cfg = {"data": args.data}
        shared = True
    else:
        shared = args.shared_data
        mk = lambda s: make_sparse_regression(args.n, args.d, args.k, args.n_test, args.noise, s)  # noqa: E731
        data = mk(args.seed) if shared else [mk(s) for s in seeds]
        data_cfg = {"n": args.n, "d": args.d, "k": args.k, "n_test": args.n_test, "noise": args.noise}
    d0 = data if shared else data[0]
    cfg = config_from_args(args)
    cfg = resolve(cfg, d0.n, d0.d)  # validate everything before any work
    variants = [("method", cfg)]
    if not args.no_baseline:
        variants.append(("baseline", DLNConfig(**{**cfg.as_dict(), "sam": "none", "rho": 0.0, "m": None,
                                                  "normalize": False, "ascent": "same", "ascent_batch": None,
                                                  "switch_at": None, "decay_at": tuple(cfg.decay_at)})))
    results = {}
    for name, c in variants:
        res = train_ensemble_torch(data, [replace(c, seed=s) for s in seeds], device=dev,
                                   dtype=dtypes[args.dtype], chunk=args.chunk, show_progress=not args.json,
                                   threads=args.threads)
        results[name] = res
        if res.diverged.any():
            first = int(res.diverged_at[res.diverged].min())
            print(f"{res.method}: {int(res.diverged.sum())} of {R} runs diverged (non-finite iterate; "
                  f"first at step {first}); try a smaller --lr or --rho", file=sys.stderr)
    main_res = results["method"]
    out = _record(main_res)
    common = {"seeds": seeds, "shared_data": shared, "device": main_res.device, "dtype": args.dtype,
              "threads": args.threads,
              "chunk": main_res.extra["chunk"], **data_cfg}
    out["config"] = {**main_res.configs[0].as_dict(), **common}
    out["config"].pop("seed")
    out["config"]["seed"] = args.seed
    out["device"] = main_res.device
    out["seeds"] = seeds
    if "baseline" in results:
        base = _record(results["baseline"])
        base["config"] = {**results["baseline"].configs[0].as_dict(), **common, "seed": args.seed}
        out["baseline"] = base
    out["version"] = __version__
    if args.out:
        write_json(f"{args.out}/result.json", out)
        arrays = {}
        for name, res in results.items():
            arrays.update({f"{name}_beta": res.beta, f"{name}_w_plus": res.w_plus, f"{name}_w_minus": res.w_minus,
                           f"{name}_curve_train": res.curve_train, f"{name}_curve_test": res.curve_test})
        arrays["curve_steps"] = main_res.curve_steps
        save_npz(f"{args.out}/ensemble.npz", **arrays)
    if args.json:
        emit_json(out)
        return 0
    _print_human(results, R, args, common)
    if args.out:
        print(f"\nwrote {args.out}/result.json, ensemble.npz")
    return 0


def _fmt(s: dict, key="mean") -> str:
    v = s.get(key)
    if v is None:
        return "—"
    return f"{v:.3e} ± {s['se']:.1e}" if key == "mean" else f"{v:.3e}"


def _print_human(results, R, args, common) -> None:
    res0 = results["method"]
    c = res0.configs[0]
    print(f"Diagonal linear network ensemble: {R} runs (seeds {common['seeds'][0]}..{common['seeds'][-1]}, "
          f"{'shared data' if common['shared_data'] else 'one data set per seed'}) on {res0.device}, {args.dtype}")
    print(f"  α={c.alpha}  γ={c.lr:.4g}  ρ={c.rho:.4g}  steps={c.steps}")
    cols = list(results.values())
    recs = [_record(r)["summary"] for r in cols]
    rows = [("train loss (mean ± s.e.)", lambda s: _fmt(s["train_loss"])),
            ("test loss (mean ± s.e.)", lambda s: _fmt(s["test_loss"])),
            ("test loss (median)", lambda s: _fmt(s["test_loss"], "median")),
            ("‖β‖₁ (mean ± s.e.)", lambda s: _fmt(s["beta_l1"])),
            ("‖β − β*‖₂ (mean ± s.e.)", lambda s: _fmt(s["beta_error"]) if "beta_error" in s else "—"),
            ("converged / diverged", lambda s: f"{s['converged']} / {s['diverged']}")]
    w0 = max(len(r[0]) for r in rows) + 2
    wc = max(24, *(len(r.method) + 2 for r in cols))
    print()
    print(" " * w0 + "".join(r.method.rjust(wc) for r in cols))
    for name, f in rows:
        print(name.ljust(w0) + "".join(f(s).rjust(wc) for s in recs))
    for r in cols:
        print(f"{r.method}: {r.runtime_s:.2f} s, {r.throughput:.3g} run·steps/s")
