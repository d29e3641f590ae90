"""Recipes (toymodels.torch.recipe): every built-in recipe's runs are valid command lines at both scales;
the table's statistics from hand-made results; bad recipes and missing --data-dir are clear errors; a
tiny recipe runs end to end (sweep, table, figure) and resumes without re-running."""
import json
import math
import subprocess
import sys

import pytest

from toymodels.errors import ConfigError
from toymodels.torch import recipe as R

RECIPES = R.builtin()


#: the deep-net training figures of Chs. 2, 5 and 6 (the others are toy models, under ``figures/``, or
#: evaluations of published ImageNet / RobustBench / ViT models, Chs. 3, 4, 7)
DEEP_NET_FIGURES = {"2.1", "2.3", "2.4", "2.8", "2.10", "2.14", "2.15", "2.16",
                    "5.1", "5.2", "5.3", "5.4", "5.8", "5.9", "5.10", "5.11", "5.12", "5.16", "5.17", "5.18", "5.19",
                    "5.20", "5.21", "5.22", "6.1", "6.6", "6.7", "6.15", "6.16", "6.17"}


def test_the_issue_figures_have_recipes():
    assert set(RECIPES) == DEEP_NET_FIGURES
    for r in RECIPES.values():
        assert r.shows and r.needs_real and r.title


@pytest.mark.parametrize("fig", list(RECIPES))
@pytest.mark.parametrize("quick", [True, False])
def test_every_point_is_a_valid_command_line(fig, quick, tmp_path):
    pytest.importorskip("torch")
    from toymodels.torch.__main__ import CLI
    from toymodels.torch.train_cli import config_from_args

    r = RECIPES[fig]
    mp = R.points(r, quick=quick, data_dir=str(tmp_path))
    s = r.scale(quick)
    n = len(r.methods) * s.seeds * math.prod(len(v) for v in s.grid.values())
    assert len(mp) == n and len({p.key for _, p in mp}) == n
    parser = CLI.parser()
    for _, p in mp:
        argv = p.argv()[3:]                          # drop python -m toymodels.torch
        a = parser.parse_args(argv)
        task = {"train-at": "at", "train-sam": "sam", "train-sgd": "sgd"}[argv[0]]
        cfg = config_from_args(a, task)              # raises ConfigError on an inconsistent combination
        assert (cfg.dataset == "photos") == quick and (cfg.device == "cpu") == quick


def test_full_scale_needs_data_dir_and_quick_does_not():
    r = RECIPES["2.8"]
    with pytest.raises(ConfigError, match="data_dir"):
        R.points(r, quick=False)
    assert all("--data-dir" not in p.args for _, p in R.points(r, quick=True))


def _rec(p, result, rc=0):
    return {"key": p.key, "returncode": rc, "result": result}


def test_table_mean_and_standard_error_from_known_values():
    r = R.Recipe("x", "t", (R.Method("A"), R.Method("B", ("--b",))), R.Scale(("train-at",), {"eps": ("1/255", "2/255")}, 3),
                 R.Scale(("train-at",), {"eps": ("1/255",)}, 1), "xy", ("final.acc",), x="eps")
    mp = R.points(r, quick=True)
    vals = {("A", "1/255"): [0.1, 0.2, 0.6], ("A", "2/255"): [0.5, 0.5, None], ("B", "1/255"): [1.0, 1.0, 1.0],
            ("B", "2/255"): [0.3, 0.3, 0.3]}
    results = {}
    for name, p in mp:
        v = vals[(name, dict(p.params)["eps"])][p.seed]
        results[p.key] = _rec(p, {"final": {"acc": v}}, rc=0 if v is not None else 1)
    rows = {(row["method"], row["params"]["eps"]): row for row in R.table(r, mp, results)}
    a = rows[("A", "1/255")]
    assert a["n"] == 3 and a["failed"] == 0
    assert a["final.acc"]["mean"] == pytest.approx(0.3)
    # sample s.d. of (0.1, 0.2, 0.6) = sqrt(0.07), s.e. = sqrt(0.07/3)
    assert a["final.acc"]["se"] == pytest.approx(math.sqrt(0.07 / 3))
    assert rows[("A", "2/255")]["n"] == 2 and rows[("A", "2/255")]["failed"] == 1
    assert rows[("A", "2/255")]["final.acc"]["se"] == 0.0
    assert rows[("B", "1/255")]["final.acc"]["mean"] == 1.0


def test_curves_average_histories_per_epoch():
    r = R.Recipe("c", "t", (R.Method("A"),), R.Scale(("train-sgd",), {}, 2), R.Scale(("train-sgd",), {}, 1), "curves",
                 ("feature_sparsity.auto",))
    mp = R.points(r, quick=True)
    hist = [[{"epoch": 0, "feature_sparsity": {"auto": 0.0}}, {"epoch": 1, "feature_sparsity": {"auto": 0.4}}],
            [{"epoch": 0, "feature_sparsity": {"auto": 1.0}}, {"epoch": 1, "feature_sparsity": {"auto": 0.6}}]]
    results = {p.key: _rec(p, {"history": hist[p.seed]}) for _, p in mp}
    (row,) = R.table(r, mp, results)
    c = row["feature_sparsity.auto"]
    assert c["epoch"] == [0, 1] and c["mean"] == pytest.approx([0.5, 0.5])


@pytest.mark.parametrize("bad, match", [
    ({"plot": "pie"}, "plot"), ({"methods": []}, "method"), ({"x": "lr"}, "grid axis"), ({"figure": None, "title": None,
                                                                                         "methods": None}, "malformed")])
def test_bad_recipes_are_config_errors(bad, match):
    d = _tiny_dict()
    d.update(bad)
    with pytest.raises(ConfigError, match=match):
        R.from_dict(d)


def _tiny_dict(plot="xy"):
    base = ["train-at", "--dataset", "synthetic", "--n-train", "32", "--n-test", "16", "--epochs", "1",
            "--batch-size", "16", "--eval-n", "8", "--final-n", "8", "--final-pgd-steps", "1", "--eval-pgd-steps", "1",
            "--device", "cpu"]
    return {"figure": "tiny", "title": "tiny", "plot": plot, "x": "eps" if plot == "xy" else None,
            "metrics": ["final.pgd_acc", "final.clean_acc"] if plot == "xy" else ["clean_acc"],
            "methods": [{"name": "FGSM", "args": ["--attack", "fgsm"]}, {"name": "RS", "args": ["--attack", "fgsm-rs"]}],
            "quick": {"command": base, "grid": {"eps": ["4/255", "8/255"]} if plot == "xy" else {}, "seeds": 1},
            "full": {"command": base, "grid": {"eps": ["8/255"]}, "seeds": 1, "data": True}}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "toymodels.torch", "recipe", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("plot", ["xy", "curves"])
def test_tiny_recipe_end_to_end_and_resume(plot, tmp_path):
    pytest.importorskip("torch")
    f = tmp_path / "tiny.json"
    f.write_text(json.dumps(_tiny_dict(plot)))
    out = tmp_path / "run"
    p = _cli(str(f), "--quick", "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    n = 4 if plot == "xy" else 2
    assert res["n_points"] == n and res["n_failed"] == 0 and res["n_skipped"] == 0
    assert all(row["n"] == 1 for row in res["table"])
    assert (out / "fig_tiny.png").stat().st_size > 0
    assert len(list((out / "sweep" / "points").glob("*.json"))) == n
    again = json.loads(_cli(str(f), "--quick", "--out", str(out), "--json").stdout)
    assert again["n_skipped"] == n and again["table"] == res["table"]


@pytest.mark.parametrize("args, word", [(("9.99", "--quick"), "recipe"), (("2.8",), "--data-dir"), ((), "figure")])
def test_cli_errors_exit_2_with_one_line(args, word):
    p = _cli(*args)
    assert p.returncode == 2 and word in p.stderr and len(p.stderr.strip().splitlines()) == 1


#: the thesis's full-scale settings: Sec. 2.9 for Ch. 2 (AT), Sec. 5.11 for Ch. 5 (SAM/ERM), Sec. 6.5 / App. 6.7
#: for Ch. 6 (large steps: no fixed lr/momentum, CIFAR-10)
CHAPTER = {"2": {"dataset": "cifar10", "n_train": 50000, "model": "preact-resnet18", "epochs": 30, "lr": 0.2,
                 "final_pgd_steps": 50,
                 "final_restarts": 10, "final_n": 1000},
           "5": {"dataset": "cifar10", "n_train": 50000, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "epochs": 200,
                 "augment": True, "batch_size": 128},
           "6": {"dataset": "cifar10", "n_train": 50000}}
#: where a figure departs from its chapter's setting, as its caption or text says (None: the value varies
#: over the figure's grid or methods, not checked)
FULL_EXCEPT = {
    "5.4": {"batch_size": 256},
    "5.2": {"batch_size": None},                                  # l.2199: batch 1024 and 128
    "2.1": {"epochs": None, "lr": None}, "2.16": {"epochs": None},
    "2.15": {"lr": 0.3},                      # every run of the λ ablation is a GradAlign run (λ = 0 included)   # Sec. 2.9: Free-AT 12 × 8 replays at lr 0.04; l.802
    "5.8": {"epochs": 1000}, "5.9": {"epochs": 1000}, "5.11": {"epochs": 1000}, "5.20": {"epochs": 1000},   # Sec. 5.5.3 / 5.6.2: 1,000 epochs
    "5.16": {"batch_size": 256}, "5.17": {"batch_size": None},                    # App. 5.12.1 / 5.12.2
    "5.10": {"epochs": 1000},                                                     # Sec. 5.5.3: 1,000 epochs
    "6.16": {"dataset": "cifar100"},                                              # l.3576: ResNet-34 on CIFAR-100
}


@pytest.mark.parametrize("fig", list(RECIPES))
def test_full_scale_uses_the_thesis_settings(fig, tmp_path):
    """Every full-scale run has its chapter's setting (CHAPTER) except where FULL_EXCEPT says otherwise."""
    pytest.importorskip("torch")
    from toymodels.torch.__main__ import CLI
    from toymodels.torch.train_cli import config_from_args

    want = {**CHAPTER[fig.split(".")[0]], **FULL_EXCEPT.get(fig, {})}
    parser = CLI.parser()
    for _, p in R.points(RECIPES[fig], quick=False, data_dir=str(tmp_path)):
        argv = p.argv()[3:]
        cfg = config_from_args(parser.parse_args(argv), {"train-at": "at", "train-sam": "sam", "train-sgd": "sgd"}[argv[0]])
        exp = {k: v for k, v in want.items() if v is not None}
        if fig.startswith("2.") and "lr" in exp and (cfg.grad_align > 0 or cfg.reg == "gradalign"):
            exp["lr"] = 0.3                      # the authors' script: --lr_max=0.30 for the GradAlign runs only
        assert {k: getattr(cfg, k) for k in exp} == exp, (fig, argv)


def test_profile_averages_each_x_over_seeds_and_sorts_x_by_value():
    r = R.Recipe("p", "t", (R.Method("A"),), R.Scale(("train-at",), {}, 2), R.Scale(("train-at",), {}, 1), "profile",
                 ("final.by_eps",), x="eps")
    mp = R.points(r, quick=True)
    per_seed = [{"2/255": 0.5, "10/255": 0.1, "1/255": 0.9}, {"2/255": 0.3, "10/255": 0.1, "1/255": float("nan")}]
    (row,) = R.table(r, mp, {p.key: _rec(p, {"final": {"by_eps": per_seed[p.seed]}}) for _, p in mp})
    c = row["final.by_eps"]
    assert c["x"] == ["1/255", "2/255", "10/255"]
    assert c["mean"] == pytest.approx([0.9, 0.4, 0.1])
    # s.e. of (0.5, 0.3): sample s.d. 0.1414 / sqrt(2) = 0.1; one finite value at 1/255: no s.e.
    assert c["se"][0] is None and c["se"][1] == pytest.approx(0.1) and c["se"][2] == 0.0


def test_filter_mosaic_scales_each_kernel_and_leaves_gaps():
    m = R._mosaic([[[1.0, -2.0], [0.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]])
    assert m.shape == (2, 5)
    assert m[:, :2].tolist() == [[0.25, -0.5], [0.0, 1.0]] and math.isnan(m[0, 2]) and m[:, 3:].tolist() == [[0, 0], [0, 0]]


@pytest.mark.parametrize("plot", R.PLOTS)
def test_every_plot_kind_draws_from_table_rows(plot, tmp_path):
    pytest.importorskip("matplotlib")
    metric = "train_loss" if plot == "curves" else "final.acc"
    r = R.Recipe("k", "t", (R.Method("A"), R.Method("B")), R.Scale(("train-sgd",), {"lr": ("0.1", "0.2")}, 1),
                 R.Scale(("train-sgd",), {"lr": ("0.1",)}, 1), plot, (metric,), x="lr")
    value = {"xy": 0.5, "bars": 0.5, "filters": 0.5, "profile": {"0.1": 1.0, "1/2": 2.0}}.get(plot)
    results = {}
    for _, p in R.points(r, quick=True):
        res = {"final": {"acc": value}, "history": [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}],
               "filters": {"conv1": {"init": [[[1, 0], [0, 1]]] * 3, "final": [[[0, 1], [1, 0]]] * 3}}}
        results[p.key] = _rec(p, res)
    mp = R.points(r, quick=True)
    rows = R.table(r, mp, results)
    assert len(rows) == 4 and all(row["n"] == 1 for row in rows)
    R.plot(r, rows, tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_extra_args_come_last_and_override_the_recipe(tmp_path):
    pytest.importorskip("torch")
    from toymodels.torch.__main__ import CLI

    mp = R.points(RECIPES["5.1"], quick=False, data_dir=str(tmp_path), extra=("--dataset", "cifar100"))
    for _, p in mp:
        assert tuple(p.args[-2:]) == ("--dataset", "cifar100")
        assert CLI.parser().parse_args(p.argv()[3:]).dataset == "cifar100"
    out = _cli("5.1", "--data-dir", str(tmp_path), "--dry-run", "--json", "--extra-args", "--dataset cifar100 --lr 0.05")
    assert out.returncode == 0, out.stderr
    argv = json.loads(out.stdout)["points"][0]["argv"]
    assert argv[argv.index("--dataset", argv.index("--dataset") + 1) + 1] == "cifar100" and "0.05" in argv


def test_a_missing_data_dir_is_blamed_on_data_dir_not_extra_args(tmp_path):
    p = _cli("5.1", "--data-dir", str(tmp_path / "absent"), "--dry-run", "--extra-args", "--dataset cifar100")
    assert p.returncode == 2 and "--data-dir" in p.stderr and "--extra-args" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("extra, word", [("--bogus 3", "unrecognized"), ("--lr -1", "--lr"), ('--dataset "x', "quotation")])
def test_bad_extra_args_exit_2_before_anything_runs(extra, word, tmp_path):
    p = _cli("2.8", "--quick", "--out", str(tmp_path / "o"), "--extra-args", extra)
    assert p.returncode == 2 and word in p.stderr and "--extra-args" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "o" / "sweep").exists()
