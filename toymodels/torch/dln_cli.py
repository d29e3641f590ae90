"""``python -m toymodels.torch dln-ensemble``: ``--seeds R`` diagonal-linear-network runs at once on the
GPU (or cpu), with every option of ``python -m toymodels.dln``.

Run r uses the member seed s_r = ``child_seed(--seed, "member", r)`` (:mod:`toymodels.rng`; listed in the
output as ``seeds``) for its data set and its mini-batches, so it is exactly ``python -m toymodels.dln
--seed s_r`` (same β to rounding); ``--shared-data`` (or ``--data FILE``) trains all runs on one data set
(drawn with --seed) and only their mini-batch streams differ.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .._cli import Choice, Command, Int, Result
from .._io import save_npz
from ..errors import ConfigError
from ..rng import child_seed
from .train_cli import DEVICE

__all__ = ["COMMAND", "add_arguments", "member_seeds"]

#: the most runs of one ensemble (they advance as (R, d) tensors)
MAX_SEEDS = 1_000_000
#: the most bytes of per-run data sets (R · (n + n_test) · d float64 numbers)
MAX_DATA_BYTES = 8 * 2 ** 30


def add_arguments(p) -> None:
    from ..dln.__main__ import add_dln_arguments

    add_dln_arguments(p)
    g = p.add_argument_group("ensemble (torch)")
    g.add_argument("--seeds", type=Int(1, MAX_SEEDS, "runs advance as one (R, d) tensor"), default=8,
                   help="number of runs R, with member seeds child_seed(--seed, 'member', r) (default 8)")
    g.add_argument("--device", type=DEVICE, default="auto", help="auto (cuda if available, default), cpu, cuda, cuda:K")
    g.add_argument("--dtype", type=Choice("float64", "float32"), default="float64",
                   help="float64 (default; matches numba to rounding) or float32")
    g.add_argument("--shared-data", action="store_true", help="one data set (from --seed) for all runs")
    g.add_argument("--threads", type=Int(1, 1024), default=1, help="torch CPU threads (default 1: the per-step "
                   "tensors are small; more threads only pay off for large --seeds on idle cores)")
    g.add_argument("--chunk", type=Int(1, 10 ** 8), default=None, help="steps per host round (index streams, "
                   "divergence check); results do not depend on it")


def _check_memory(a) -> None:
    """One data set per run must fit: R · (n + n_test) · d numbers of 8 bytes at most MAX_DATA_BYTES."""
    if a.data is not None or a.shared_data:
        return
    need = a.seeds * (a.n + a.n_test) * a.d * 8
    if need > MAX_DATA_BYTES:
        most = MAX_DATA_BYTES // ((a.n + a.n_test) * a.d * 8)
        raise ConfigError("seeds", f"must be <= {most} with one data set per run ({need / 2 ** 30:.1f} GiB of "
                          f"data, at most {MAX_DATA_BYTES // 2 ** 30} GiB; --shared-data needs one)", a.seeds)


def member_seeds(seed: int, runs: int) -> list[int]:
    """The seeds of the R members of an ensemble drawn with ``seed``."""
    return [child_seed(seed, "member", r) for r in range(runs)]


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


def _data(a, seeds):
    """(data set or per-run data sets, shared?, data config): run r's data set is the one of
    ``python -m toymodels.dln --seed s_r``; one set drawn with --seed for --shared-data / --data."""
    from ..dln.__main__ import data_from_args

    if a.data is not None or a.shared_data:
        data, _, cfg = data_from_args(a)
        return data, True, cfg
    datas = [data_from_args(a, s) for s in seeds]
    return [d[0] for d in datas], False, datas[0][2]


def _print_human(results, R, a, common) -> None:
    res0 = results["method"]
    c = res0.configs[0]
    data = "shared data" if common["shared_data"] else "one data set per member seed"
    print(f"Diagonal linear network ensemble: {R} runs ({data}) on {res0.device}, {a.dtype}")
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


def _fmt(s: dict, key="mean") -> str:
    v = s.get(key)
    if v is None:
        return "—"
    return f"{v:.3e} ± {s['se']:.1e}" if key == "mean" else f"{v:.3e}"


def _arrays(results) -> dict:
    arrays = {}
    for name, res in results.items():
        arrays.update({f"{name}_beta": res.beta, f"{name}_w_plus": res.w_plus, f"{name}_w_minus": res.w_minus,
                       f"{name}_curve_train": res.curve_train, f"{name}_curve_test": res.curve_test})
    arrays["curve_steps"] = results["method"].curve_steps
    return arrays


def run(a, session) -> Result:
    from ..dln.__main__ import config_from_args
    from ..dln.train import erm_baseline, resolve

    _check_memory(a)
    seeds = member_seeds(a.seed, a.seeds)
    data, shared, data_cfg = _data(a, seeds)
    d0 = data if shared else data[0]
    cfg = resolve(config_from_args(a), d0.n, d0.d)   # validate everything before any work
    variants = {"method": cfg} if a.no_baseline else {"method": cfg, "baseline": erm_baseline(cfg)}
    import torch

    from .device import resolve_device
    from .dln import train_ensemble_torch

    dev = resolve_device(a.device)
    results = {}
    for name, c in variants.items():
        res = train_ensemble_torch(data, [replace(c, seed=s) for s in seeds], device=dev,
                                   dtype={"float64": torch.float64, "float32": torch.float32}[a.dtype],
                                   chunk=a.chunk, show_progress=session.show_progress, threads=a.threads)
        results[name] = res
        if res.diverged.any():
            session.note(f"{res.method}: {int(res.diverged.sum())} of {a.seeds} runs diverged (non-finite iterate; "
                         f"first at step {int(res.diverged_at[res.diverged].min())}); try a smaller --lr or --rho")
    main = results["method"]
    common = {"seeds": seeds, "shared_data": shared, "device": main.device, "dtype": a.dtype, "threads": a.threads,
              "chunk": main.extra["chunk"], "runs": a.seeds, **data_cfg}
    payload = _record(main)
    payload.update(device=main.device, seeds=seeds)
    if "baseline" in results:
        payload["baseline"] = {**_record(results["baseline"]),
                               "config": {**results["baseline"].configs[0].as_dict(), **common, "seed": a.seed}}
    config = {**main.configs[0].as_dict(), **common, "seed": a.seed}
    arrays = _arrays(results)
    return Result(payload, config, human=lambda: _print_human(results, a.seeds, a, common),
                  files={"ensemble.npz": lambda path: save_npz(path, **arrays)})


COMMAND = Command("dln-ensemble", "batched diagonal linear network ensembles (same options as toymodels.dln)",
                  add_arguments, run, description=__doc__.split("\n\n")[0].replace("``", ""), needs=("torch",),
                  flags={"replacement": "--no-replacement"},
                  epilog="Example: python -m toymodels.torch dln-ensemble --sam 1 --seeds 1000 --steps 100000 "
                         "--device cuda --json",
                  smoke=("--sam", "1", "--steps", "50", "--seeds", "3", "--n", "6", "--d", "5", "--n-test", "10",
                         "--device", "cpu"))
