"""UCF101 (or HMDB51) from scratch, one model per split, averaged over the splits (§4.1, Table 3).

    python python/ucf101_scratch.py --root UCF-101 --annotations ucfTrainTestlist \
        --model stc_resnet3d_18 --splits 1 --nproc 8

runs ``stc train`` for each split with python/configs/ucf101_scratch.yaml (the paper's
protocol), then ``stc evaluate`` over all splits with the paper's test protocol. Table 3
reports split 1 for STC-ResNet18/50/101 (42.8/46.2/47.9%). A split that already has a
``last.pt`` is resumed (a finished one is left as it is).
"""

from __future__ import annotations

import sys
from pathlib import Path

from recipe_common import Command, base_parser, print_comparison, report, run, stc, train_run

PAPER_TABLE3 = {
    "resnet3d_101": 46.7,
    "stc_resnet3d_18": 42.8,
    "stc_resnet3d_50": 46.2,
    "stc_resnet3d_101": 47.9,
}


def train_command(args, split: int, out_dir: Path, *more: str) -> Command:
    return train_run(
        args,
        "ucf101_scratch.yaml",
        out_dir,
        "--dataset",
        args.dataset,
        "--root",
        args.root,
        "--annotations",
        args.annotations,
        "--split",
        str(split),
        "--model",
        args.model,
        "--frames",
        str(args.frames),
        *more,
    )


def plan(args) -> list[Command]:
    out = Path(args.out) / f"{args.dataset}_scratch_{args.model}_f{args.frames}"
    commands = [train_command(args, split, out / f"split{split}") for split in args.splits]
    commands.append(
        stc(
            "evaluate",
            "--checkpoint",
            str(out / "split{split}" / "best.pt"),
            "--splits",
            ",".join(map(str, args.splits)),
            "--out",
            str(out / "eval.json"),
        )
    )
    return commands


def parse(argv: list[str] | None = None):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ucf101", choices=("ucf101", "hmdb51"))
    parser.add_argument("--root", required=True, help="the videos' root folder")
    parser.add_argument("--annotations", required=True, help="the split folder")
    parser.add_argument("--model", default="stc_resnet3d_101")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument(
        "--splits",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2, 3],
        help="comma-separated (1,2,3)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    commands = plan(args)
    run(commands, args.dry_run)
    if not args.dry_run:
        result = report(Path(commands[-1][commands[-1].index("--out") + 1]))
        paper = PAPER_TABLE3.get(args.model)
        if paper is not None and args.dataset == "ucf101" and args.frames == 16:
            print_comparison(
                "Table 3 (UCF101 split 1, from scratch)",
                [(args.model, result["splits"][0]["top1"], paper)],
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
