"""Shared test helpers: running a command in-process, finite-difference gradients, Monte-Carlo checks.

Import as ``from helpers import ...`` (pytest puts ``tests/`` on ``sys.path``).
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

__all__ = ["CliRun", "run_cli", "cli_of", "strip_timings", "fd_grad", "fd_hessian", "assert_mc_close",
           "TIMING_KEY", "small_cnn"]


# ----------------------------------------------------------------------------------------------------
# commands

@dataclass
class CliRun:
    rc: int
    out: str
    err: str

    @property
    def json(self) -> dict:
        lines = [ln for ln in self.out.splitlines() if ln.strip()]
        assert len(lines) == 1, f"expected exactly one JSON line on stdout, got {len(lines)}: {self.out[:500]!r}"
        obj = json.loads(lines[0])
        assert isinstance(obj, dict), type(obj)
        return obj

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]


def cli_of(module: str):
    """The :class:`toymodels._cli.Cli` of ``python -m <module>`` (its ``__main__.CLI``)."""
    return importlib.import_module(f"{module}.__main__").CLI


def run_cli(module: str, argv: Sequence[str]) -> CliRun:
    """Run ``python -m <module> <argv>`` in-process; capture exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli_of(module).main([str(a) for a in argv])
    return CliRun(rc, out.getvalue(), err.getvalue())


#: JSON keys that hold wall-clock measurements (not determined by config + seed)
TIMING_KEY = re.compile(r"(^|_)(runtime|seconds|elapsed|wall|timing|timings|time|times|per_second|throughput)(_s|_ms)?$"
                        r"|_s$|_ms$|^s_per_|_per_s$")


def strip_timings(obj):
    """``obj`` without the keys matching :data:`TIMING_KEY` (recursively)."""
    if isinstance(obj, dict):
        return {k: strip_timings(v) for k, v in obj.items() if not TIMING_KEY.search(str(k))}
    if isinstance(obj, list):
        return [strip_timings(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------------------------------
# numerics

def fd_grad(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central finite-difference gradient of a scalar ``f`` at ``x`` (any shape); error O(h²)."""
    x = np.array(x, dtype=np.float64)
    g = np.empty_like(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f(x)
        flat[i] = old - h
        fm = f(x)
        flat[i] = old
        gf[i] = (fp - fm) / (2 * h)
    return g


def fd_hessian(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Central finite-difference Hessian of a scalar ``f`` at a vector ``x``; symmetrized, error O(h²)."""
    x = np.array(x, dtype=np.float64).ravel()
    n = x.size
    H = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            def at(di, dj):
                z = x.copy()
                z[i] += di
                z[j] += dj
                return f(z)
            H[i, j] = H[j, i] = (at(h, h) - at(h, -h) - at(-h, h) + at(-h, -h)) / (4 * h * h)
    return H


def assert_mc_close(estimate: float, se: float, truth: float, k: float = 5.0, what: str = "") -> None:
    """|estimate − truth| ≤ k·se, the Monte-Carlo acceptance rule of the project (k = 4–5)."""
    assert math.isfinite(estimate) and se >= 0, (estimate, se)
    assert abs(estimate - truth) <= k * se, (
        f"{what}: estimate {estimate:.6g} vs {truth:.6g}: {abs(estimate - truth) / se if se else float('inf'):.2f} s.e. "
        f"(s.e. {se:.3g}, tolerance {k} s.e.)")


# ----------------------------------------------------------------------------------------------------
# builders

def small_cnn(seed: int = 0, N: int = 6, C: int = 3, H: int = 8, M: int = 4, K: int = 5, weight_scale: float = 1.0):
    """A small single-layer CNN problem: ``(params, x, y)`` with torch-default initialised parameters
    (:func:`toymodels.cnn.model.init_params`, seed ``seed``; conv and dense weights × ``weight_scale``,
    e.g. 4 so that ReLU masks change inside an ε-ball), images x ~ U[0, 1]^(N, C, H, H) and labels
    y ~ U{0..K−1} from the stream (seed, "tests/small-cnn")."""
    from toymodels.cnn import model as cnn
    from toymodels.rng import stream

    p = cnn.init_params(C, H, H, M, K, seed=seed)
    if weight_scale != 1.0:
        p = cnn.CNNParams(p.Wc * weight_scale, p.bc, p.U * weight_scale, p.c)
    rng = stream(seed, "tests/small-cnn")
    return p, rng.uniform(0, 1, (N, C, H, H)), rng.integers(0, K, N)


def torch_dln(u, v):
    """The u⊙v diagonal linear network as a float64 ``nn.Module`` f(x) = ⟨u ⊙ v, x⟩, parameters (u, v)
    in this order (flat w = [u; v], as :mod:`toymodels.sharpness.dln`). Needs torch."""
    import torch

    class DLN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.u = torch.nn.Parameter(torch.tensor(u, dtype=torch.float64))
            self.v = torch.nn.Parameter(torch.tensor(v, dtype=torch.float64))

        def forward(self, x):
            return x @ (self.u * self.v)

    return DLN()


def mse4(out, y):
    """The project's DLN loss 1/(4n)‖Xβ − y‖² as the mean over a batch (or chunk)."""
    return ((out - y) ** 2).mean() / 4


def torch_dln_pm(wp, wm):
    """The w₊/w₋ diagonal linear network as a float64 ``nn.Module``: β = w₊² − w₋², prediction ⟨β, x⟩
    (element-wise, so CPU autocast leaves it in float64); parameters (w₊, w₋). Needs torch."""
    import torch

    class DLN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.wp = torch.nn.Parameter(torch.tensor(wp, dtype=torch.float64))
            self.wm = torch.nn.Parameter(torch.tensor(wm, dtype=torch.float64))

        def forward(self, x):
            return (x * (self.wp ** 2 - self.wm ** 2)).sum(-1)

    return DLN()


def assert_resume_bitwise(cfg: dict, tmp_path, interrupted) -> dict:
    """Train ``TrainConfig(**cfg)`` uninterrupted into tmp_path/a and, interrupted after its first
    checkpoint then resumed, into tmp_path/b (``interrupted``: the conftest fixture
    ``interrupted_after_checkpoint``); assert equal histories, final results and model states bit for
    bit. Returns the uninterrupted result. Needs torch."""
    import os

    import torch

    from toymodels.torch import train
    from toymodels.torch.config import TrainConfig

    a = train.run(TrainConfig(**cfg, out=str(tmp_path / "a")), progress=False)
    out_b = str(tmp_path / "b")
    with interrupted():
        train.run(TrainConfig(**cfg, out=out_b), progress=False)
    b = train.run(TrainConfig(**cfg, out=out_b, resume=True), progress=False)
    assert a["history"] == b["history"] and a["final"] == b["final"]
    sa = torch.load(os.path.join(tmp_path / "a", "checkpoint.pt"), weights_only=False)
    sb = torch.load(os.path.join(out_b, "checkpoint.pt"), weights_only=False)
    for k, v in sa["model_state"].items():
        assert torch.equal(v, sb["model_state"][k]), k
    return a
