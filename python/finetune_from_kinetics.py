"""Pre-train on Kinetics, fine-tune on UCF101/HMDB51 per split, average over splits (§4.1).

    python python/finetune_from_kinetics.py --nproc 8 \
        --kinetics-root kinetics/train --kinetics-train-csv kinetics_400_train.csv \
        --kinetics-val-root kinetics/val --kinetics-val-csv kinetics_400_val.csv \
        --root UCF-101 --annotations ucfTrainTestlist

or, with Kinetics weights already trained (ours, or a 3D-ResNets file for a plain model),
``--kinetics-checkpoint runs/kinetics/stc_resnet3d_101_f16/best.pt`` skips the pre-training.
Kinetics selects its best.pt on the official validation list. Every split's model starts
from those weights (``--init``; the classifier is re-initialised for the new classes), is
fine-tuned with python/configs/finetune.yaml (best.pt chosen on --val-fraction of the split's
training list), and ``stc evaluate`` averages the splits' test lists with the paper's test
protocol (Table 4 reports STC-ResNet101, 16 frames: 90.1% UCF101, 62.6% HMDB51;
python/table4_frames.py runs the whole table).
"""

from __future__ import annotations

import sys

from recipe_common import (
    Command,
    add_kinetics_flags,
    add_placement_flag,
    add_selection_flag,
    base_parser,
    finetune_dir,
    finetune_runs,
    int_list,
    kinetics_data_given,
    kinetics_run,
    run,
    seed_top1,
    seeds_note,
    selection_note,
    top1_text,
)


def plan(args) -> list[Command]:
    commands = []
    init = args.kinetics_checkpoint
    if init is None:
        kinetics, run_dir = kinetics_run(args, args.model, args.frames, args.placement)
        commands.append(kinetics)
        init = str(run_dir / "best.pt")
    commands += finetune_runs(
        args, args.dataset, args.root, args.annotations, args.model, args.frames, init
    )
    return commands


def parse(argv: list[str] | None = None):
    parser = base_parser(
        __doc__.split("\n\n")[0],
        seeds="The Kinetics pre-training runs once (its config's seed); each seed fine-tunes "
        "from it",
    )
    add_selection_flag(parser)
    add_placement_flag(parser)
    add_kinetics_flags(parser)
    parser.add_argument("--dataset", default="ucf101", choices=("ucf101", "hmdb51"))
    parser.add_argument("--root", required=True, help="UCF101/HMDB51 videos")
    parser.add_argument("--annotations", required=True, help="their split folder")
    parser.add_argument(
        "--splits", type=int_list, default=[1, 2, 3], help="comma-separated (1,2,3)"
    )
    parser.add_argument("--model", default="stc_resnet3d_101")
    parser.add_argument("--frames", type=int, default=16, help="clip length (16)")
    parser.add_argument(
        "--kinetics-checkpoint",
        default=None,
        help="Kinetics weights to start from (skips the pre-training)",
    )
    args = parser.parse_args(argv)
    if args.kinetics_checkpoint is None and not kinetics_data_given(args):
        parser.error("give --kinetics-checkpoint, or the four --kinetics-* data options")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    commands = plan(args)
    run(commands, args.dry_run)
    if not args.dry_run:
        values = seed_top1(args, finetune_dir(args, args.dataset, args.model, args.frames))
        print(
            f"\n{args.dataset} fine-tuned from Kinetics ({args.model}, {args.frames} frames): "
            f"mean top-1 over splits {args.splits}: {top1_text(values)}\n"
            + "\n".join(f"* {note}" for note in [selection_note(args), *seeds_note(args)])
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
