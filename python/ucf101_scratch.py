"""UCF101 (or HMDB51) from scratch, one model per split, averaged over the splits (§4.1, Table 3).

    python python/ucf101_scratch.py --root UCF-101 --annotations ucfTrainTestlist \
        --model stc_resnet3d_18 --splits 1 --nproc 8

runs ``stc train`` for each split with python/configs/ucf101_scratch.yaml (the paper's
protocol; best.pt chosen on --val-fraction of the split's training list), then
``stc evaluate`` of every split's best.pt on its test list with the paper's test protocol.
Table 3 reports split 1 for 3D-ResNet101 and STC-ResNet18/50/101 (46.7 / 42.8/46.2/47.9%). A
split that already has a ``last.pt`` is resumed (a finished one is left as it is).
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
    run_name,
    seed_reports,
    seed_top1,
    seeds_note,
    selection_note,
    split_runs,
    top1_text,
)

PAPER_TABLE3 = {
    "resnet3d_101": 46.7,
    "stc_resnet3d_18": 42.8,
    "stc_resnet3d_50": 46.2,
    "stc_resnet3d_101": 47.9,
}


def _out(args) -> Path:
    return Path(args.out) / f"{args.dataset}_scratch_{run_name(args.model, args.frames)}"


def plan(args) -> list[Command]:
    return split_runs(
        args,
        "ucf101_scratch.yaml",
        _out(args),
        args.splits,
        "--dataset",
        args.dataset,
        "--root",
        args.root,
        "--annotations",
        args.annotations,
        "--model",
        args.model,
        "--frames",
        str(args.frames),
    )


def parse(argv: list[str] | None = None):
    parser = base_parser(__doc__.split("\n\n")[0])
    add_selection_flag(parser)
    parser.add_argument("--dataset", default="ucf101", choices=("ucf101", "hmdb51"))
    parser.add_argument("--root", required=True, help="the videos' root folder")
    parser.add_argument("--annotations", required=True, help="the split folder")
    parser.add_argument("--model", default="stc_resnet3d_101")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument(
        "--splits", type=int_list, default=[1, 2, 3], help="comma-separated (1,2,3)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    commands = plan(args)
    run(commands, args.dry_run)
    if not args.dry_run:
        paper = PAPER_TABLE3.get(args.model)
        reports = seed_reports(args, _out(args))
        split1 = [s["top1"] for r in reports for s in r["splits"] if s["split"] == 1]
        if paper is not None and args.dataset == "ucf101" and args.frames == 16 and split1:
            print_comparison(
                "Table 3 (UCF101 split 1, from scratch)",
                [(args.model, split1, paper)],
                [selection_note(args), *seeds_note(args)],
            )
        else:
            print(
                f"\n{args.dataset} from scratch, {args.model}, {args.frames} frames: mean top-1 "
                f"over splits {args.splits}: {top1_text(seed_top1(args, _out(args)))}\n"
                + "\n".join(f"* {note}" for note in [selection_note(args), *seeds_note(args)])
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
