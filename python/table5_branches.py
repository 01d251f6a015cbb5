"""Table 5: which channel-correlation branches matter (SCB only, TCB only, both).

    python python/table5_branches.py --root UCF-101 --annotations ucfTrainTestlist --nproc 8

trains STC-ResNet101 from scratch on UCF101 split 1 with ``--branches scb``, ``tcb`` and
``stc`` (the paper's protocol, python/configs/ucf101_scratch.yaml; best.pt chosen on
--val-fraction of the training list), evaluates each on the test list with the test protocol
and prints our numbers next to the paper's (46.1 / 47.2 / 47.9%).
"""

from __future__ import annotations

import sys
from pathlib import Path

from recipe_common import (
    Command,
    add_selection_flag,
    base_parser,
    print_comparison,
    run,
    seed_top1,
    seeds_note,
    selection_note,
    ucf101_split1_runs,
)

PAPER = {"scb": 46.1, "tcb": 47.2, "stc": 47.9}
NAMES = {"scb": "SCB", "tcb": "TCB", "stc": "TCB + SCB"}


def plan(args) -> list[Command]:
    out = Path(args.out) / "table5"
    commands = []
    for branches in PAPER:
        commands += ucf101_split1_runs(args, out / branches, "--branches", branches)
    return commands


def parse(argv: list[str] | None = None):
    parser = base_parser(__doc__.split("\n\n")[0])
    add_selection_flag(parser)
    parser.add_argument("--root", required=True, help="UCF101 videos")
    parser.add_argument("--annotations", required=True, help="ucfTrainTestlist folder")
    parser.add_argument("--model", default="stc_resnet3d_101")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    run(plan(args), args.dry_run)
    if not args.dry_run:
        out = Path(args.out) / "table5"
        print_comparison(
            f"Table 5 (UCF101 split 1, from scratch, {args.model})",
            [(NAMES[b], seed_top1(args, out / b), paper) for b, paper in PAPER.items()],
            [selection_note(args), *seeds_note(args)],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
