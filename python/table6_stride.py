"""Table 6: the input frame stride (sampling rate) for training and testing: 1, 2, 4, 16.

    python python/table6_stride.py --root UCF-101 --annotations ucfTrainTestlist --nproc 8

trains STC-ResNet101 from scratch on UCF101 split 1 at each ``--stride`` (the paper's protocol
otherwise), evaluates each at the same stride, and prints our numbers next to the paper's
(44.6 / 47.9 / 46.8 / 40.3%).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from recipe_common import CONFIGS, Command, base_parser, print_comparison, report, run, stc

PAPER = {1: 44.6, 2: 47.9, 4: 46.8, 16: 40.3}


def plan(args) -> list[Command]:
    out = Path(args.out) / "table6"
    commands = []
    for stride in args.strides:
        run_dir = out / f"stride{stride}"
        resume = ["--resume", str(run_dir / "last.pt")] if (run_dir / "last.pt").exists() else []
        commands.append(stc(
            "train", "--config", str(CONFIGS / "ucf101_scratch.yaml"), "--root", args.root,
            "--annotations", args.annotations, "--split", "1", "--model", args.model,
            "--stride", str(stride), "--out-dir", str(run_dir), *resume,
            *shlex.split(args.extra), nproc=args.nproc))
        # The checkpoint's stride is the default: training and testing use the same one.
        commands.append(stc("evaluate", "--checkpoint", str(run_dir / "best.pt"), "--out",
                            str(run_dir / "eval.json")))
    return commands


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="UCF101 videos")
    parser.add_argument("--annotations", required=True, help="ucfTrainTestlist folder")
    parser.add_argument("--model", default="stc_resnet3d_101")
    parser.add_argument("--strides", type=lambda s: [int(x) for x in s.split(",")],
                        default=list(PAPER), help="comma-separated (1,2,4,16)")
    args = parser.parse_args(argv)
    run(plan(args), args.dry_run)
    if not args.dry_run:
        out = Path(args.out) / "table6"
        print_comparison("Table 6 (UCF101 split 1, from scratch)", [
            (f"stride {s}", report(out / f"stride{s}" / "eval.json")["average"]["top1"],
             PAPER.get(s, float("nan"))) for s in args.strides])
    return 0


if __name__ == "__main__":
    sys.exit(main())
