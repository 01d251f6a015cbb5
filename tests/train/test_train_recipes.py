"""The recipes in python/ plan valid `stc` commands, and their config files resolve."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from stc_ext.cli import build_parser
from stc_ext.train import (
    EvalConfig,
    TrainConfig,
    given_options,
    resolve_eval_config,
    resolve_train_config,
)

RECIPES = Path(__file__).resolve().parents[2] / "python"
DATA = ["--root", "videos", "--annotations", "splits"]


@pytest.fixture(scope="module", autouse=True)
def _recipes_importable():
    sys.path.insert(0, str(RECIPES))
    yield
    sys.path.remove(str(RECIPES))


def _check(commands) -> list:
    """Parse every planned command with the `stc` parser; return the resolved configs."""
    from recipe_common import stc_args

    parser = build_parser()
    configs = []
    for command in commands:
        args = parser.parse_args(stc_args(command))
        if args.command == "train":
            configs.append(resolve_train_config(given_options(args, TrainConfig), args.config))
        else:
            configs.append(resolve_eval_config(given_options(args, EvalConfig), args.config))
    return configs


def test_ucf101_scratch_one_run_per_split(tmp_path):
    recipe = importlib.import_module("ucf101_scratch")
    configs = _check(recipe.plan(recipe.parse(
        [*DATA, "--model", "stc_resnet3d_18", "--splits", "1,3", "--out", str(tmp_path),
         "--extra", "--amp bf16"])))
    first, third, ev = configs
    assert (first.split, third.split) == (1, 3) and first.amp == "bf16"
    assert (first.lr, first.batch_size, first.scheduler, first.model) == \
        (0.1, 128, "plateau", "stc_resnet3d_18")
    assert ev.splits == [1, 3] and "split{split}" in ev.checkpoint


def test_table5_and_table6_vary_one_thing(tmp_path):
    table5 = importlib.import_module("table5_branches")
    args = table5.base_parser("").parse_args(["--out", str(tmp_path)])
    args.root, args.annotations, args.model = "videos", "splits", "stc_resnet3d_101"
    trains = [c for c in _check(table5.plan(args)) if isinstance(c, TrainConfig)]
    assert [c.branches for c in trains] == ["scb", "tcb", "stc"]
    table6 = importlib.import_module("table6_stride")
    args.strides = [1, 2, 4, 16]
    trains = [c for c in _check(table6.plan(args)) if isinstance(c, TrainConfig)]
    assert [c.stride for c in trains] == [1, 2, 4, 16]


def test_finetune_initialises_every_split_from_kinetics(tmp_path):
    recipe = importlib.import_module("finetune_from_kinetics")
    args = recipe.base_parser("").parse_args(["--out", str(tmp_path)])
    args.dataset, args.root, args.annotations, args.splits = "hmdb51", "v", "s", [1, 2]
    args.model, args.kinetics_checkpoint = "stc_resnet3d_101", None
    args.kinetics_root, args.kinetics_train_csv = "k/train", "k/train.csv"
    args.kinetics_val_root, args.kinetics_val_csv = "k/val", "k/val.csv"
    kinetics, split1, split2, ev = _check(recipe.plan(args))
    assert kinetics.dataset == "kinetics" and kinetics.val_annotations == "k/val.csv"
    assert split1.init == split2.init == str(Path(kinetics.out_dir) / "best.pt")
    assert (split1.dataset, split1.lr) == ("hmdb51", 0.01) and ev.splits == [1, 2]


def test_demo_config_resolves():
    cfg = resolve_train_config({"root": "data"}, RECIPES / "configs" / "demo.yaml")
    assert cfg.dataset == "synthetic" and cfg.model.startswith("stc_")
