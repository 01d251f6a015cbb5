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
from stc_ext.transfer import TransferConfig, resolve_transfer_config

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
        elif args.command == "transfer":
            configs.append(
                resolve_transfer_config(given_options(args, TransferConfig), args.config)
            )
        elif args.command == "evaluate":
            configs.append(resolve_eval_config(given_options(args, EvalConfig), args.config))
        else:  # synth, teacher, inflate: their parsed flags
            configs.append(args)
    return configs


def test_ucf101_scratch_one_run_per_split(tmp_path):
    recipe = importlib.import_module("ucf101_scratch")
    configs = _check(
        recipe.plan(
            recipe.parse(
                [
                    *DATA,
                    "--model",
                    "stc_resnet3d_18",
                    "--splits",
                    "1,3",
                    "--out",
                    str(tmp_path),
                    "--extra",
                    "--amp bf16",
                ]
            )
        )
    )
    first, third, ev = configs
    assert (first.split, third.split) == (1, 3) and first.amp == "bf16"
    assert (first.lr, first.batch_size, first.scheduler, first.model) == (
        0.1,
        128,
        "plateau",
        "stc_resnet3d_18",
    )
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


def test_table7_rows_differ_only_in_their_initialisation(tmp_path):
    recipe = importlib.import_module("table7_transfer")
    parser = recipe.base_parser("")
    args = parser.parse_args(["--out", str(tmp_path)])
    args.teacher_weights, args.depth, args.widths = None, 18, "16,32,64,128"
    args.classes, args.videos_per_class, args.unlabeled_per_class = 10, 40, 10
    configs = _check(recipe.plan(args))
    commands = [c.command for c in configs if not hasattr(c, "out_dir") and hasattr(c, "command")]
    assert commands == ["synth", "synth", "teacher", "inflate"]
    teacher, inflate = configs[2], configs[3]
    transfers = [c for c in configs if isinstance(c, TransferConfig)]
    assert [t.model for t in transfers] == ["resnet3d_18", "stc_resnet3d_18"]
    assert all(t.teacher_weights == teacher.out and t.teacher == "resnet18" for t in transfers)
    assert all(t.videos.endswith("unlabeled/videos") for t in transfers)
    rows = [c for c in configs if isinstance(c, TrainConfig)]
    assert [(r.model, r.init) for r in rows] == [
        ("resnet3d_18", None),
        ("resnet3d_18", inflate.out),
        ("resnet3d_18", str(Path(transfers[0].out_dir) / "student.pt")),
        ("stc_resnet3d_18", None),
        ("stc_resnet3d_18", str(Path(transfers[1].out_dir) / "student.pt")),
    ]
    # The same budget for every row: only the model, --init and the run folder differ.
    varying = {"model", "init", "out_dir"}
    budgets = [{k: v for k, v in vars(r).items() if k not in varying} for r in rows]
    assert all(b == budgets[0] for b in budgets)
    # Student, inflated and teacher architectures line up (shortcut B, the same widths).
    assert all(r.widths == t.widths == [16, 32, 64, 128] for r in rows for t in transfers)
    assert all(
        r.shortcut_type == t.shortcut_type == inflate.shortcut_type == "B"
        for r in rows
        for t in transfers
    )
    assert all(r.frames == t.frames == inflate.frames for r in rows for t in transfers)
