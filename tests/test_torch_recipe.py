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


def test_the_issue_figures_have_recipes():
    assert {"2.8", "5.1", "5.8", "6.6"} <= set(RECIPES)
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


@pytest.mark.parametrize("fig", list(RECIPES))
def test_full_scale_uses_the_thesis_settings(fig, tmp_path):
    """Sec. 2.9 (AT: PreAct ResNet-18, 30 epochs, PGD-50-10 on 1,000 points) and Sec. 5.11 (SAM/ERM: SGD
    lr 0.1, momentum 0.9, weight decay 5e-4, batch 128 unless stated, crops and flips, 200 epochs)."""
    pytest.importorskip("torch")
    from toymodels.torch.__main__ import CLI
    from toymodels.torch.train_cli import config_from_args

    parser = CLI.parser()
    for _, p in R.points(RECIPES[fig], quick=False, data_dir=str(tmp_path)):
        argv = p.argv()[3:]
        cfg = config_from_args(parser.parse_args(argv), {"train-at": "at", "train-sam": "sam", "train-sgd": "sgd"}[argv[0]])
        assert cfg.dataset == "cifar10" and cfg.n_train == 50000
        if fig.startswith("2."):
            assert (cfg.model, cfg.epochs, cfg.final_pgd_steps, cfg.final_restarts, cfg.final_n) == \
                ("preact-resnet18", 30, 50, 10, 1000)
        elif fig.startswith("5."):
            assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.epochs, cfg.augment) == (0.1, 0.9, 5e-4, 200, True)
            assert cfg.batch_size == (256 if fig == "5.4" else 128)
