"""Table 6: the input frame stride (sampling rate) for training and testing: 1, 2, 4, 16.

    python python/table6_stride.py --root UCF-101 --annotations ucfTrainTestlist --nproc 8

trains STC-ResNet101 from scratch on UCF101 split 1 at each ``--stride`` (the paper's protocol
otherwise; best.pt chosen on --val-fraction of the training list), evaluates each on the test
list at the same stride, and prints our numbers next to the paper's (44.6 / 47.9 / 46.8 /
40.3%).
"""

from __future__ import annotations

import sys
from pathlib import Path

from recipe_common import (
    Command,
    add_selection_flag,
    base_parser,
    int_list,
    print_comparison,
    run,
    seed_top1,
    seeds_note,
    selection_note,
    ucf101_split1_runs,
)

PAPER = {1: 44.6, 2: 47.9, 4: 46.8, 16: 40.3}


def plan(args) -> list[Command]:
    out = Path(args.out) / "table6"
    commands = []
    for stride in args.strides:
        # The checkpoint's stride is the default: training and testing use the same one.
        commands += ucf101_split1_runs(args, out / f"stride{stride}", "--stride", str(stride))
    return commands


def parse(argv: list[str] | None = None):
    parser = base_parser(__doc__.split("\n\n")[0])
    add_selection_flag(parser)
    parser.add_argument("--root", required=True, help="UCF101 videos")
    parser.add_argument("--annotations", required=True, help="ucfTrainTestlist folder")
    parser.add_argument("--model", default="stc_resnet3d_101")
    parser.add_argument(
        "--strides", type=int_list, default=list(PAPER), help="comma-separated (1,2,4,16)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    run(plan(args), args.dry_run)
    if not args.dry_run:
        out = Path(args.out) / "table6"
        print_comparison(
            f"Table 6 (UCF101 split 1, from scratch, {args.model})",
            [
                (f"stride {s}", seed_top1(args, out / f"stride{s}"), PAPER.get(s))
                for s in args.strides
            ],
            [selection_note(args), *seeds_note(args)],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
