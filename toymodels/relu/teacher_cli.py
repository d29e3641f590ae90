"""The ``teacher3`` and ``teacher2`` commands of ``python -m toymodels.relu`` (teacher–student SGD, Fig. 6.5,
6.10, 6.14): options, the run, the printout."""
from __future__ import annotations

import numpy as np

from .._cli import Command, Int, ListOf, Num, Result
from .._io import save_npz

#: the transitions of the large-step runs (the constant-step run is always added first)
DEFAULT_TRANSITIONS = (0.1, 0.3, 0.5)
#: runner fields whose flag has another name
FLAGS = {"n_checkpoints": "--checkpoints", "transition": "--transitions"}


def add_teacher_arguments(p, C, *, lr_help: str, lr_const_help: str, decay_help: str, init_help: str) -> None:
    """The options shared by the teacher–student commands (defaults from their config class C)."""
    from .teacher3 import MAX_STEPS

    p.add_argument("--steps", type=Int(1, MAX_STEPS, "the schedule and the SGD indices take 16 bytes a step"),
                   default=C.steps, help=f"SGD iterations (default {C.steps})")
    p.add_argument("--lr", type=Num(0, lo_open=True), default=C.lr, help=f"{lr_help} (default {C.lr:g})")
    p.add_argument("--lr-const", type=Num(0, lo_open=True), default=C.lr_const,
                   help=f"{lr_const_help} (default {C.lr_const:g})")
    p.add_argument("--warmup-factor", type=Num(1), default=C.warmup_factor,
                   help=f"warmup coefficient F >= 1 (default {C.warmup_factor:g})")
    p.add_argument("--decay-factor", type=Num(1), default=C.decay_factor, help=decay_help)
    p.add_argument("--transitions", type=ListOf(Num(0, 1, lo_open=True, hi_open=True), max_len=20),
                   default=DEFAULT_TRANSITIONS, help="comma-separated decay fractions in (0, 1), one large-step "
                   "run each (default 0.1,0.3,0.5; the constant-step run is always added)")
    p.add_argument("--init-scale", type=Num(0, lo_open=True), default=C.init_scale, help=init_help)
    p.add_argument("--checkpoints", type=Int(1, 100_000, "the metrics take one SVD per checkpoint"),
                   default=C.n_checkpoints, help=f"metric checkpoints (default {C.n_checkpoints})")
    p.add_argument("--corr-threshold", type=Num(-1, 1), default=C.corr_threshold,
                   help="feature-sparsity correlation threshold in [-1, 1]")
    p.add_argument("--rank-tol", type=Num(0, 1, lo_open=True), default=C.rank_tol,
                   help="relative singular-value threshold of the rank, in (0, 1]")


def _base(args, Config):
    """The validated base config of the runs (its transition: the first one)."""
    base = Config(steps=args.steps, lr=args.lr, lr_const=args.lr_const, warmup_factor=args.warmup_factor,
                  decay_factor=args.decay_factor, init_scale=args.init_scale, n_checkpoints=args.checkpoints,
                  corr_threshold=args.corr_threshold, rank_tol=args.rank_tol, seed=args.seed,
                  transition=args.transitions[0])
    return base.validate()


def run_name(r) -> str:
    return "constant η" if r["decay_fraction"] is None else f"decay at {r['decay_fraction']:.0%}"


def _lg(v) -> str:
    return "n/a" if v is None or v <= 0 else f"{v:.3g} (log10 {np.log10(v):.2f})"


def _print_o1_o2(runs) -> None:
    print("(O1) loss stabilization (median train loss, 2nd half of the large-step phase):")
    for r in runs:
        print(f"   {run_name(r)} (peak η {r['peak_lr']:.3g}): {_lg(r['stabilization_loss'])}")
    print("(O2) generalization: final train / test loss (½ mean squared error):")
    for r in runs:
        print(f"   {run_name(r)}: train {_lg(r['train_loss'])}, test {_lg(r['test_loss'])}")


def note_divergence(session, runs) -> None:
    for r in runs:
        if r["diverged_at"] is not None:
            session.note(f"the run '{run_name(r)}' diverged at step {r['diverged_at']}; try a smaller --lr")


def _arrays(results, extra: dict) -> dict:
    arrays = dict(extra)
    for k, r in enumerate(results):
        arrays.update({f"iters_{k}": r.iters, f"train_loss_{k}": r.train_loss, f"test_loss_{k}": r.test_loss,
                       f"rank_{k}": r.rank, f"sparsity_{k}": r.sparsity})
    return arrays


def _human3(base, runs) -> None:
    print(f"three-layer ReLU teacher-student: d={base.d}, teacher {base.m_teacher}-{base.m_teacher}, "
          f"student {base.m}-{base.m}, n={base.n}, {base.steps} SGD steps (batch 1), seed {base.seed}")
    _print_o1_o2(runs)
    print(f"(O3) rank φ(X) (of min(n, #params) = {min(base.n, runs[0]['n_params'])}) and feature sparsity "
          "[layer 1, layer 2] (init → at decay → final):")
    fmt = lambda v: "[" + ", ".join("n/a" if x is None else f"{x:.3f}" for x in v) + "]"  # noqa: E731
    for r in runs:
        print(f"   {run_name(r)}: rank {r['rank_init']} → {r['rank_at_decay']} → {r['rank_jacobian']}; "
              f"sparsity {fmt(r['sparsity_init'])} → {fmt(r['sparsity_at_decay'])} → {fmt(r['feature_sparsity'])}")
    print(f"   final rank φ(X̃) on {runs[0]['n_params']} fresh points (as many as parameters): "
          + ", ".join(f"{run_name(r)} {r['rank_jacobian_fresh']}" for r in runs))


def run_teacher3(args, session) -> Result:
    from .teacher3 import Teacher3Config, config_dict, final_fresh_rank, run_schedules, summarize

    base = _base(args, Teacher3Config)
    transitions = (None, *args.transitions)
    results = run_schedules(base, transitions)
    runs = [summarize(r) for r in results]
    for r, res in zip(runs, results):
        # the thesis' rank (l. 3155): on as many fresh points as parameters, not capped by n
        r["rank_jacobian_fresh"] = int(final_fresh_rank(res)) if np.isfinite(res.train_loss[-1]) else None
    note_divergence(session, runs)
    cfg = config_dict(base)
    cfg.pop("transition")
    cfg.update(transitions=list(transitions), command="teacher3")
    arrays = _arrays(results, {})
    return Result({"runs": runs}, cfg, human=lambda: _human3(base, runs),
                  files={"teacher3.npz": lambda path: save_npz(path, **arrays)})


def _human2(base, runs) -> None:
    print(f"two-layer ReLU teacher-student (no biases): d={base.d}, teacher {base.m_teacher}, student "
          f"{base.m}, init scale {base.init_scale:g}, n={base.n}, {base.steps} SGD steps (batch 1), seed {base.seed}")
    _print_o1_o2(runs)
    print("(O3) rank φ(X), feature sparsity (init → at decay → final), |a|-weighted alignment with the teacher:")
    for r in runs:
        al = "n/a" if r["teacher_alignment"] is None else f"{r['teacher_alignment']:.3f}"
        sp = "n/a" if r["feature_sparsity"] is None else format(r["feature_sparsity"], ".3f")
        print(f"   {run_name(r)}: rank {r['rank_init']} → {r['rank_at_decay']} → {r['rank_jacobian']}; sparsity "
              f"{r['sparsity_init']:.3f} → {r['sparsity_at_decay']:.3f} → {sp}; "
              f"alignment {r['teacher_alignment_init']:.3f} → {al}")


def run_teacher2(args, session) -> Result:
    from .teacher2 import Teacher2Config, config_dict, run_schedules2, summarize2

    base = _base(args, Teacher2Config)
    transitions = (None, *args.transitions)
    results = run_schedules2(base, transitions)
    runs = [summarize2(r) for r in results]
    note_divergence(session, runs)
    cfg = config_dict(base)
    cfg.pop("transition")
    cfg.update(transitions=list(transitions), command="teacher2")
    extra = {"teacher_W": results[0].teacher_W}
    for k, r in enumerate(results):
        extra.update({f"W_{k}": r.W, f"a_{k}": r.a})
    arrays = _arrays(results, extra)
    return Result({"runs": runs}, cfg, human=lambda: _human2(base, runs),
                  files={"teacher2.npz": lambda path: save_npz(path, **arrays)})


def _add_teacher3(p) -> None:
    from .teacher3 import Teacher3Config as C

    add_teacher_arguments(p, C, lr_help="base step size η of the large-step schedule, loss with ½",
                          lr_const_help="the constant medium step size",
                          decay_help="step size divided by D >= 1 at the transition",
                          init_help="student init scale (> 0)")


def _add_teacher2(p) -> None:
    from .teacher2 import Teacher2Config as C

    add_teacher_arguments(p, C, lr_help="base step size of the large-step schedule",
                          lr_const_help="the constant small step size", decay_help="decay factor D >= 1",
                          init_help="student init scale τ (> 0)")


TEACHER3 = Command(
    "teacher3", "Fig. 6.5: three-layer teacher-student (teacher 2-2, student 10-10, d=5, n=50)",
    _add_teacher3, run_teacher3, flags=FLAGS, smoke=("--steps", "2000", "--checkpoints", "5"),
    description="Three-layer bias-free ReLU student trained by SGD (batch 1) on 50 examples of a 2-2 teacher: a "
                "constant medium step size and large-step schedules with decay at each --transitions fraction. "
                "Teacher, data, init and SGD indices come from named random streams of --seed "
                "(toymodels.relu.streams).")
TEACHER2 = Command(
    "teacher2", "Fig. 6.10/6.14: two-layer teacher-student in d=2 (Chizat et al.), neuron movement",
    _add_teacher2, run_teacher2, flags=FLAGS, smoke=("--steps", "2000", "--checkpoints", "5", "--lr", "5e-4"),
    description="Bias-free two-layer ReLU student (m=50, large init) trained by SGD (batch 1) on 50 examples of a "
                "3-neuron teacher in d=2: a constant small step and large-step schedules with decay at each "
                "--transitions fraction.")
