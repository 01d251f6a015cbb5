"""Table 5: which channel-correlation branches matter (SCB only, TCB only, both).

    python python/table5_branches.py --root UCF-101 --annotations ucfTrainTestlist --nproc 8
    python python/table5_branches.py --synthetic --seeds 0,1,2    # small scale, CPU

UCF101: trains STC-ResNet101 from scratch on split 1 with ``--branches scb``, ``tcb`` and
``stc`` (the paper's protocol, python/configs/ucf101_scratch.yaml; best.pt chosen on
--val-fraction of the training list), evaluates each on the test list with the test protocol
and prints our numbers next to the paper's (46.1 / 47.2 / 47.9%).

``--synthetic`` (no download): the same question at small scale, on python/table7_transfer.py's
target dataset (``stc synth``: 10 classes that differ only in motion x 40 videos, 64 frames at
64 px) with its network and fine-tune budget (depth 18, widths 16,32,64,128, shortcut B,
python/configs/table7_finetune.yaml, the budget of Table 7's from-scratch rows). Four rows,
the same budget for each: the plain resnet3d_18 (branches "none") and stc_resnet3d_18 with
``--branches scb``, ``tcb`` and ``stc``; best.pt chosen on --val-fraction of the training
list, the test list reported. The paper's figures (UCF101, depth 101; for "none" Table 3's
3D-ResNet101, 46.7%) are printed beside ours for the ordering only.
"""

from __future__ import annotations

import sys
from pathlib import Path

from recipe_common import (
    Command,
    add_selection_flag,
    add_synthetic_target_flags,
    base_parser,
    print_comparison,
    run,
    seed_top1,
    seeds_note,
    selection_note,
    split_runs,
    synthetic_target,
    ucf101_split1_runs,
)

PAPER = {"scb": 46.1, "tcb": 47.2, "stc": 47.9}
NAMES = {"none": "none (plain 3D ResNet)", "scb": "SCB", "tcb": "TCB", "stc": "TCB + SCB"}
#: The synthetic rows: the plain network, then the paper's three.
SYNTHETIC_ROWS = ("none", *PAPER)
#: The paper's figure for the plain network: Table 3's 3D-ResNet101, UCF101 split 1.
PAPER_PLAIN = 46.7


def _out(args) -> Path:
    return Path(args.out) / ("table5_synthetic" if args.synthetic else "table5")


def _synthetic_plan(args) -> list[Command]:
    out = _out(args)
    target = out / "data" / "target"
    commands = synthetic_target(args, target)
    for branches in SYNTHETIC_ROWS:
        if branches == "none":
            model = ["--model", args.model.removeprefix("stc_")]
        else:
            model = ["--model", args.model, "--branches", branches]
        commands += split_runs(
            args, "table7_finetune.yaml", out / branches, [1], "--root", str(target), *model
        )
    return commands


def plan(args) -> list[Command]:
    if args.synthetic:
        return _synthetic_plan(args)
    commands = []
    for branches in PAPER:
        commands += ucf101_split1_runs(args, _out(args) / branches, "--branches", branches)
    return commands


def parse(argv: list[str] | None = None):
    parser = base_parser(__doc__.split("\n\n")[0])
    add_selection_flag(parser)
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="small scale on synthetic data (no download, CPU): the plain net and the three "
        "branch settings at depth 18 with Table 7's fine-tune budget",
    )
    add_synthetic_target_flags(parser)
    parser.add_argument("--root", help="UCF101 videos")
    parser.add_argument("--annotations", help="ucfTrainTestlist folder")
    parser.add_argument(
        "--model",
        default=None,
        help="the STC model (stc_resnet3d_101; with --synthetic stc_resnet3d_18, whose plain "
        "counterpart is the 'none' row)",
    )
    args = parser.parse_args(argv)
    if args.synthetic:
        if args.root or args.annotations:
            parser.error("--synthetic writes its own data: leave out --root and --annotations")
        args.model = args.model or "stc_resnet3d_18"
    else:
        if not (args.root and args.annotations):
            parser.error("give --root and --annotations (UCF101), or --synthetic")
        args.model = args.model or "stc_resnet3d_101"
    if not args.model.startswith("stc_"):
        parser.error(f"--model: give an STC model (stc_...), got {args.model}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    run(plan(args), args.dry_run)
    if args.dry_run:
        return 0
    out = _out(args)
    if args.synthetic:
        title = (
            f"Table 5 at small scale (synthetic, {args.model} and its plain counterpart; "
            "paper: STC-ResNet101, UCF101 split 1)"
        )
        rows = [
            (NAMES[b], seed_top1(args, out / b), PAPER.get(b, PAPER_PLAIN)) for b in SYNTHETIC_ROWS
        ]
        notes = [
            "every row: python/configs/table7_finetune.yaml (the same budget); only the model "
            "and --branches differ",
            "paper figure for 'none': Table 3's 3D-ResNet101 (UCF101 split 1, from scratch)",
        ]
    else:
        title = f"Table 5 (UCF101 split 1, from scratch, {args.model})"
        rows = [(NAMES[b], seed_top1(args, out / b), paper) for b, paper in PAPER.items()]
        notes = []
    print_comparison(title, rows, [*notes, selection_note(args), *seeds_note(args)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
