"""The recipes in python/ plan valid `stc` commands that follow the protocol (select on a
held-out part of the training list, report on the test list), name their run folders by
what defines the run, print them with --dry-run, and their config files resolve."""

from __future__ import annotations

import importlib
import json
import shlex
import statistics
from pathlib import Path

import pytest
import torch

from stc_ext.cli import build_parser
from stc_ext.models import build
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
KINETICS = [
    "--kinetics-root", "k/train", "--kinetics-train-csv", "k/train.csv",
    "--kinetics-val-root", "k/val", "--kinetics-val-csv", "k/val.csv",
]  # fmt: skip
BOTH = [
    "--ucf101-root", "UCF-101", "--ucf101-annotations", "ucfTrainTestlist",
    "--hmdb51-root", "hmdb51", "--hmdb51-annotations", "hmdb_splits",
]  # fmt: skip


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


def _of(configs, cls) -> list:
    return [c for c in configs if isinstance(c, cls)]


def _assert_protocol(configs) -> None:
    """UCF101/HMDB51 runs select on a held-out part of their training list; Kinetics on its
    validation list; every evaluation reports on a test list (Kinetics: validation)."""
    for config in _of(configs, TrainConfig):
        config.validate()
        if config.dataset in ("ucf101", "hmdb51", "synthetic"):
            assert config.val_fraction > 0 and config.val_every > 0
        else:
            assert config.val_annotations
    assert all(e.subset == "test" for e in _of(configs, EvalConfig))


def test_ucf101_scratch_one_run_per_split(tmp_path):
    recipe = importlib.import_module("ucf101_scratch")
    argv = [*DATA, "--model", "stc_resnet3d_18", "--splits", "1,3", "--out", str(tmp_path)]
    configs = _check(recipe.plan(recipe.parse([*argv, "--extra", "--amp bf16"])))
    _assert_protocol(configs)
    first, third, ev = configs
    assert (first.split, third.split) == (1, 3) and first.amp == "bf16"
    assert (first.lr, first.batch_size, first.scheduler, first.model) == (
        0.1,
        128,
        "plateau",
        "stc_resnet3d_18",
    )
    assert first.out_dir.endswith("ucf101_scratch_stc_resnet3d_18_f16/split1")
    assert ev.splits == [1, 3] and "split{split}" in ev.checkpoint


def test_table5_and_table6_vary_one_thing(tmp_path):
    table5 = importlib.import_module("table5_branches")
    configs = _check(table5.plan(table5.parse([*DATA, "--out", str(tmp_path)])))
    _assert_protocol(configs)
    assert [c.branches for c in _of(configs, TrainConfig)] == ["scb", "tcb", "stc"]
    table6 = importlib.import_module("table6_stride")
    configs = _check(table6.plan(table6.parse([*DATA, "--out", str(tmp_path)])))
    _assert_protocol(configs)
    assert [c.stride for c in _of(configs, TrainConfig)] == [1, 2, 4, 16]


def test_finetune_initialises_every_split_from_kinetics(tmp_path):
    recipe = importlib.import_module("finetune_from_kinetics")
    argv = ["--dataset", "hmdb51", "--root", "v", "--annotations", "s", "--splits", "1,2"]
    configs = _check(recipe.plan(recipe.parse([*argv, *KINETICS, "--out", str(tmp_path)])))
    _assert_protocol(configs)
    kinetics, split1, split2, ev = configs
    assert kinetics.dataset == "kinetics" and kinetics.val_annotations == "k/val.csv"
    assert split1.init == split2.init == str(Path(kinetics.out_dir) / "best.pt")
    assert (split1.dataset, split1.lr) == ("hmdb51", 0.01) and ev.splits == [1, 2]
    with pytest.raises(SystemExit):
        recipe.parse(argv)  # neither Kinetics data nor weights


def test_table4_runs_are_named_by_model_and_frames(tmp_path):
    recipe = importlib.import_module("table4_frames")
    argv = [*KINETICS, *BOTH, "--frames", "16,32", "--out", str(tmp_path)]
    configs = _check(recipe.plan(recipe.parse(argv)))
    _assert_protocol(configs)
    trains = _of(configs, TrainConfig)
    kinetics = [c for c in trains if c.dataset == "kinetics"]
    assert [(c.model, c.frames) for c in kinetics] == [
        ("stc_resnet3d_101", 16),
        ("stc_resnet3d_101", 32),
        ("stc_resnext3d_101", 16),
        ("stc_resnext3d_101", 32),
    ]
    fine = [c for c in trains if c.dataset != "kinetics"]
    assert len(fine) == 2 * 2 * 2 * 3  # models x frames x datasets x splits
    assert len({c.out_dir for c in trains}) == len(trains)  # no two runs share a folder
    for config in trains:
        assert f"{config.model}_f{config.frames}" in config.out_dir
    for config in fine:
        # Each fine-tuning starts from the Kinetics run of its own model and frame count.
        assert config.init == str(
            tmp_path / "kinetics" / f"{config.model}_f{config.frames}" / "best.pt"
        )
    evals = _of(configs, EvalConfig)
    assert len(evals) == 8 and all(e.splits == [1, 2, 3] for e in evals)
    given = recipe.parse(
        [*BOTH, "--kinetics-checkpoint", "w/{model}_{frames}.pt", "--frames", "64"]
    )
    configs = _check(recipe.plan(given))
    assert {c.init for c in _of(configs, TrainConfig)} == {
        "w/stc_resnet3d_101_64.pt",
        "w/stc_resnext3d_101_64.pt",
    }
    stage = _check(recipe.plan(recipe.parse([*argv, "--placement", "stage"])))
    assert all(c.placement == "stage" and "_stage" in c.out_dir for c in _of(stage, TrainConfig))


def test_table8_evaluates_on_the_kinetics_validation_list(tmp_path):
    recipe = importlib.import_module("table8_kinetics")
    configs = _check(recipe.plan(recipe.parse([*KINETICS, "--out", str(tmp_path)])))
    _assert_protocol(configs)
    trains, evals = _of(configs, TrainConfig), _of(configs, EvalConfig)
    assert [(c.model, c.frames) for c in trains] == [
        ("stc_resnet3d_101", 16),
        ("stc_resnext3d_101", 16),
        ("stc_resnext3d_101", 32),
    ]
    assert all(e.dataset == "kinetics" and e.annotations == "k/val.csv" for e in evals)
    assert [e.checkpoint for e in evals] == [str(Path(c.out_dir) / "best.pt") for c in trains]
    val = ["--kinetics-val-root", "v", "--kinetics-val-csv", "v.csv"]
    template = "w/{model}-{frames}.pt"
    given = recipe.parse([*val, "--rows", "resnet3d_101:16", "--checkpoint", template])
    (ev,) = _check(recipe.plan(given))
    assert ev.checkpoint == "w/resnet3d_101-16.pt"
    with pytest.raises(SystemExit):
        recipe.parse([*KINETICS, "--rows", "stc_resnet3d_101"])  # no frame count


@pytest.mark.parametrize(
    "case",
    [f"table4_frames {' '.join(KINETICS)}", "table7_paper --teacher-weights w.pth --videos v"],
)
def test_target_datasets_are_checked(case, capsys):
    """Both UCF101/HMDB51 recipes refuse an unknown --datasets entry and a chosen dataset
    without its root and annotations, naming the flags."""
    name, *argv = case.split()
    recipe = importlib.import_module(name)
    with pytest.raises(SystemExit):
        recipe.parse([*argv, *BOTH, "--datasets", "ucf101,kinetics"])
    assert "--datasets: choose from ucf101, hmdb51, got kinetics" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # ucf101 (a default) has its root but no annotations
        recipe.parse([*argv, "--ucf101-root", "u", "--datasets", "ucf101"])
    assert "give --ucf101-root and --ucf101-annotations" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        recipe.parse([*argv, "--datasets", "hmdb51"])
    assert "give --hmdb51-root and --hmdb51-annotations" in capsys.readouterr().err
    recipe.parse([*argv, *BOTH, "--datasets", "hmdb51"])  # hmdb51 alone, given: accepted


def test_table7_paper_rows_differ_only_in_their_initialisation(tmp_path):
    recipe = importlib.import_module("table7_paper")
    argv = [*BOTH, "--teacher-weights", "r101.pth", "--videos", "unlabeled", "--splits", "1"]
    configs = _check(recipe.plan(recipe.parse([*argv, "--out", str(tmp_path)])))
    _assert_protocol(configs)
    inflates = [c for c in configs if getattr(c, "command", None) == "inflate"]
    transfers = _of(configs, TransferConfig)
    assert (
        [i.model for i in inflates]
        == [t.model for t in transfers]
        == [
            "resnet3d_101",
            "stc_resnet3d_101",
        ]
    )
    assert all(t.teacher == "resnet101" and t.teacher_weights == "r101.pth" for t in transfers)
    assert all(t.epochs == 150 and t.batch_size == 32 and t.lr_step == 30 for t in transfers)
    rows = _of(configs, TrainConfig)
    assert len(rows) == 2 * 2 * 3  # datasets x nets x (baseline, inflation, transfer)
    inits = {(r.dataset, r.model): [] for r in rows}
    for r in rows:
        inits[(r.dataset, r.model)].append(r.init)
    for (_, model), found in inits.items():
        index = ["resnet3d_101", "stc_resnet3d_101"].index(model)
        assert found == [
            None,
            inflates[index].out,
            str(Path(transfers[index].out_dir) / "student.pt"),
        ]
    varying = {"model", "init", "out_dir", "dataset", "root", "annotations", "placement"}
    budgets = [{k: v for k, v in vars(r).items() if k not in varying} for r in rows]
    assert all(b == budgets[0] for b in budgets)  # the same protocol for every row
    with_kinetics = recipe.parse([*argv, "--kinetics-init", "k/{model}_f{frames}.pt"])
    rows = _of(_check(recipe.plan(with_kinetics)), TrainConfig)
    assert {r.init for r in rows if r.init and r.init.startswith("k/")} == {
        "k/resnet3d_101_f16.pt",
        "k/stc_resnet3d_101_f16.pt",
    }


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
    _assert_protocol(configs)
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


DRY_RUNS = {
    "ucf101_scratch": DATA,
    "table5_branches": DATA,
    "table5_branches --synthetic": ["--synthetic", "--seeds", "0,1"],
    "table6_stride": DATA,
    "finetune_from_kinetics": [*DATA, *KINETICS],
    "table4_frames": [*KINETICS, *BOTH],
    "table8_kinetics": KINETICS,
    "table7_paper": [*BOTH, "--teacher-weights", "t.pth", "--videos", "u"],
    "table7_transfer": [],
    "table7_transfer --seeds": ["--seeds", "0,1"],
}


@pytest.mark.parametrize("case", sorted(DRY_RUNS))
def test_dry_run_prints_the_exact_commands_and_runs_nothing(case, tmp_path, capsys):
    recipe = importlib.import_module(case.split()[0])
    out = tmp_path / "runs"
    assert recipe.main([*DRY_RUNS[case], "--out", str(out), "--dry-run"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("+ ")]
    assert printed and all(" -m stc_ext " in line for line in printed)
    assert not out.exists()  # nothing was run or written
    if hasattr(recipe, "plan") and hasattr(recipe, "parse"):
        planned = recipe.plan(recipe.parse([*DRY_RUNS[case], "--out", str(out)]))
        assert printed == ["+ " + shlex.join(c) for c in planned]


#: Recipes with parse() and trained rows, and their arguments.
SEEDED = {
    "ucf101_scratch": [*DATA, "--splits", "1,2"],
    "table5_branches": DATA,
    "table5_branches --synthetic": ["--synthetic"],
    "table6_stride": DATA,
    "finetune_from_kinetics": [*DATA, *KINETICS],
    "table4_frames": [*KINETICS, *BOTH, "--frames", "16"],
    "table7_paper": [*BOTH, "--teacher-weights", "t.pth", "--videos", "u", "--splits", "1"],
}


def _train_flags(commands) -> list[list[str]]:
    from recipe_common import stc_args

    return [stc_args(c) for c in commands if stc_args(c)[0] == "train"]


@pytest.mark.parametrize("case", sorted(SEEDED))
def test_seeds_repeat_every_fine_tune_per_seed_and_nothing_else(case, tmp_path):
    recipe = importlib.import_module(case.split()[0])
    argv = [*SEEDED[case], "--out", str(tmp_path)]
    single = recipe.plan(recipe.parse(argv))
    seeded = recipe.plan(recipe.parse([*argv, "--seeds", "3,0"]))
    # Without --seeds: no --seed flag and no seed folder (today's plan, so old runs resume).
    assert not any("--seed" in flags for flags in _train_flags(single))
    assert not any("seed" in Path(f).name for c in single for f in c if str(tmp_path) in f)
    single_configs, seeded_configs = _check(single), _check(seeded)
    _assert_protocol(seeded_configs)
    rows = [c for c in _of(single_configs, TrainConfig) if c.dataset != "kinetics"]
    shared = [c for c in single_configs if not isinstance(c, TrainConfig | EvalConfig)]
    shared += [c for c in _of(single_configs, TrainConfig) if c.dataset == "kinetics"]
    fine = [c for c in _of(seeded_configs, TrainConfig) if c.dataset != "kinetics"]
    # Each row once per seed, into <row folder>/seed<S>/..., with --seed S; its settings
    # otherwise those of the single-seed row.
    assert len(fine) == 2 * len(rows)
    for row in rows:
        row_dir = Path(row.out_dir)  # <row folder>/split<n>
        expected = {str(row_dir.parent / f"seed{s}" / row_dir.name): s for s in (3, 0)}
        mine = [c for c in fine if c.out_dir in expected]
        assert sorted(c.seed for c in mine) == [0, 3]
        for c in mine:
            assert expected[c.out_dir] == c.seed
            assert {**vars(c), "seed": 0, "out_dir": ""} == {**vars(row), "out_dir": ""}
    # Kinetics pre-training, synthesis, teachers, inflation and transfers: once, unchanged.
    seeded_shared = [c for c in seeded_configs if not isinstance(c, TrainConfig | EvalConfig)]
    seeded_shared += [c for c in _of(seeded_configs, TrainConfig) if c.dataset == "kinetics"]
    assert len(seeded_shared) == len(shared)
    assert all(
        vars(a) == vars(b)
        for a, b in zip(sorted(shared, key=repr), sorted(seeded_shared, key=repr), strict=True)
    )
    # Each seed is evaluated on its own runs, into its own report.
    evals = _of(seeded_configs, EvalConfig)
    assert len(evals) == 2 * len(_of(single_configs, EvalConfig))
    for ev in evals:
        seed_dir = Path(ev.checkpoint).parent.parent
        assert seed_dir.name in ("seed0", "seed3") and Path(ev.out).parent == seed_dir


def test_table7_seeds_share_teacher_inflation_and_transfers(tmp_path):
    recipe = importlib.import_module("table7_transfer")
    single = recipe.plan(_table7_args(recipe, ["--out", str(tmp_path)]))
    configs = _check(
        recipe.plan(_table7_args(recipe, ["--out", str(tmp_path), "--seeds", "0,1,2"]))
    )
    _assert_protocol(configs)
    names = [c.command for c in configs if not hasattr(c, "out_dir") and hasattr(c, "command")]
    assert names == ["synth", "synth", "teacher", "inflate"]
    assert len(_of(configs, TransferConfig)) == 2
    rows = _of(configs, TrainConfig)
    assert len(rows) == 5 * 3 == 3 * len(_of(_check(single), TrainConfig))
    for name in recipe.ROWS:
        mine = [r for r in rows if Path(r.out_dir).parent.name == name[0]]
        assert [(Path(r.out_dir).name, r.seed) for r in mine] == [
            ("seed0", 0), ("seed1", 1), ("seed2", 2),
        ]  # fmt: skip
        assert len({r.init for r in mine}) == 1  # every seed from the same file
    evals = [c for c in configs if isinstance(c, EvalConfig)]
    assert [Path(e.out).parent for e in evals] == [Path(r.out_dir) for r in rows]


def _table7_args(recipe, argv: list[str]):
    """table7_transfer's arguments (its parser lives in main): the shared ones parsed, its
    own at their defaults."""
    args = recipe.base_parser("").parse_args(argv)
    args.teacher_weights, args.depth, args.widths = None, 18, "16,32,64,128"
    args.classes, args.videos_per_class, args.unlabeled_per_class = 10, 40, 10
    return args


def test_table5_synthetic_rows_have_table7s_data_and_budget(tmp_path):
    table5 = importlib.import_module("table5_branches")
    configs = _check(table5.plan(table5.parse(["--synthetic", "--out", str(tmp_path)])))
    _assert_protocol(configs)
    (synth,) = [c for c in configs if getattr(c, "command", None) == "synth"]
    rows = _of(configs, TrainConfig)
    assert [(r.model, r.branches) for r in rows] == [
        ("resnet3d_18", "stc"),  # the plain net (branches is unused there)
        ("stc_resnet3d_18", "scb"),
        ("stc_resnet3d_18", "tcb"),
        ("stc_resnet3d_18", "stc"),
    ]
    assert all(r.root == synth.out and r.dataset == "synthetic" for r in rows)
    # Table 7's target data: the same synth flags but the folder.
    table7 = importlib.import_module("table7_transfer")
    configs7 = _check(table7.plan(_table7_args(table7, ["--out", str(tmp_path)])))
    synth7 = [c for c in configs7 if getattr(c, "command", None) == "synth"][0]
    assert {**vars(synth), "out": ""} == {**vars(synth7), "out": ""}
    # Table 7's Baseline budget for every row: only the model, branches and folder differ.
    baseline = _of(configs7, TrainConfig)[0]
    varying = {"model", "branches", "out_dir", "root", "init"}
    for r in rows:
        assert {k: v for k, v in vars(r).items() if k not in varying} == {
            k: v for k, v in vars(baseline).items() if k not in varying
        }
    assert all(r.widths == [16, 32, 64, 128] and r.val_fraction == 0.1 for r in rows)
    with pytest.raises(SystemExit):
        table5.parse([*DATA, "--synthetic"])  # synthetic writes its own data
    with pytest.raises(SystemExit):
        table5.parse([])  # neither UCF101 nor --synthetic


@pytest.mark.parametrize(
    "argv",
    [
        ["--seeds", "0,0"],  # two runs into one folder
        ["--seeds", ","],  # no seed
        ["--seeds", "0,1", "--extra", "--threads 1 --seed 4"],  # --extra would override
        ["--seeds", "a"],
    ],
)
def test_seeds_refuses_what_it_cannot_honour(argv, capsys):
    recipe = importlib.import_module("table6_stride")
    with pytest.raises(SystemExit):
        recipe.parse([*DATA, *argv])
    err = capsys.readouterr().err
    assert "--seeds" in err or "--extra" in err


def test_table8_has_no_seeds(capsys):
    recipe = importlib.import_module("table8_kinetics")
    with pytest.raises(SystemExit):
        recipe.parse([*KINETICS, "--seeds", "0,1"])
    assert "--seeds" in capsys.readouterr().err


def test_seed_top1_reads_each_seeds_report_in_order(tmp_path):
    from recipe_common import base_parser, seed_top1

    for seed, top1 in ((2, 0.25), (0, 0.75)):
        (tmp_path / f"seed{seed}").mkdir()
        (tmp_path / f"seed{seed}" / "eval.json").write_text(
            json.dumps({"average": {"top1": top1, "top5": 1.0}})
        )
    (tmp_path / "eval.json").write_text(json.dumps({"average": {"top1": 0.5}}))
    parser = base_parser("")
    assert seed_top1(parser.parse_args(["--seeds", "2,0"]), tmp_path) == [0.25, 0.75]
    assert seed_top1(parser.parse_args(["--seeds", "0"]), tmp_path, metric="top5") == [1.0]
    assert seed_top1(parser.parse_args([]), tmp_path) == [0.5]  # no --seeds: the row's own
    with pytest.raises(FileNotFoundError):
        seed_top1(parser.parse_args(["--seeds", "0,1"]), tmp_path)  # seed 1 never ran


def test_mean_std_is_the_sample_spread_in_percent():
    from recipe_common import mean_std, per_seed

    values = [0.61, 0.58, 0.70]
    mean, std = statistics.mean(values), statistics.stdev(values)
    assert mean_std(values) == f"{100 * mean:.1f} ± {100 * std:.1f} (n=3)" == "63.0 ± 6.2 (n=3)"
    assert mean_std([0.5, 0.5]) == "50.0 ± 0.0 (n=2)"
    assert mean_std([0.613]) == "61.3"  # one run: the figure alone
    assert per_seed(values) == "61.0 / 58.0 / 70.0"


def test_print_comparison_takes_per_seed_lists(capsys):
    from recipe_common import print_comparison

    print_comparison("T", [("a", 0.5, 47.9), ("b", None, None)])
    single = capsys.readouterr().out
    assert "top-1 % (ours)" in single and "per seed" not in single and "50.0" in single
    print_comparison("T", [("a", [0.5], 47.9), ("b", [], None)])
    assert capsys.readouterr().out == single  # one seed: today's table
    print_comparison("T", [("a", [0.5, 0.7], 47.9), ("b", [0.4, 0.4, 0.4], None)])
    lines = capsys.readouterr().out.splitlines()
    text = "\n".join(lines)
    assert "per seed" in text and "60.0 ± 14.1 (n=2)" in text and "50.0 / 70.0" in text
    assert "40.0 ± 0.0 (n=3)" in text and "40.0 / 40.0 / 40.0" in text and "47.9" in text


def test_param_table_counts_the_built_models(capsys):
    recipe = importlib.import_module("param_table")
    assert recipe.main(["--models", "stc_resnet3d_18,stc_resnet3d_34", "--frames", "16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model | frames | plain |") and len(lines) == 4
    for line, name in zip(lines[2:], ["stc_resnet3d_18", "stc_resnet3d_34"], strict=True):
        with torch.device("meta"):
            counts = [
                sum(p.numel() for p in m.parameters())
                for m in (
                    build(name.removeprefix("stc_"), 400),
                    build(name, 400),
                    build(name, 400, placement="stage"),
                )
            ]
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[:3] == [name, "16", f"{counts[0] / 1e6:.1f}M"]
        assert cells[3].startswith(
            f"{counts[1] / 1e6:.1f}M (+{(counts[1] - counts[0]) / 1e6:.1f}M)"
        )
        assert cells[4].startswith(f"{counts[2] / 1e6:.1f}M")
        assert counts[0] < counts[2] < counts[1]
