"""Pre-train on Kinetics, fine-tune on UCF101/HMDB51 per split, average over splits (§4.1).

    python python/finetune_from_kinetics.py --nproc 8 \
        --kinetics-root kinetics/train --kinetics-train-csv kinetics_400_train.csv \
        --kinetics-val-root kinetics/val --kinetics-val-csv kinetics_400_val.csv \
        --root UCF-101 --annotations ucfTrainTestlist

or, with Kinetics weights already trained (ours, or a 3D-ResNets file for a plain model),
``--kinetics-checkpoint runs/kinetics/best.pt`` skips the pre-training. Every split's model
starts from those weights (``--init``; the classifier is re-initialised for the new classes),
is fine-tuned with python/configs/finetune.yaml, and ``stc evaluate`` averages the splits with
the paper's test protocol (Table 4 reports STC-ResNet101, 16 frames: 90.1% UCF101, 62.6%
HMDB51).
"""

from __future__ import annotations

import sys
from pathlib import Path

from recipe_common import Command, base_parser, report, run, stc, train_run


def plan(args) -> list[Command]:
    out = Path(args.out) / f"{args.dataset}_from_kinetics_{args.model}"
    commands = []
    init = args.kinetics_checkpoint
    if init is None:
        kinetics = Path(args.out) / f"kinetics_{args.model}"
        commands.append(
            train_run(
                args,
                "kinetics.yaml",
                kinetics,
                "--root",
                args.kinetics_root,
                "--annotations",
                args.kinetics_train_csv,
                "--val-root",
                args.kinetics_val_root,
                "--val-annotations",
                args.kinetics_val_csv,
                "--model",
                args.model,
            )
        )
        init = str(kinetics / "best.pt")
    for split in args.splits:
        commands.append(
            train_run(
                args,
                "finetune.yaml",
                out / f"split{split}",
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
                "--init",
                init,
            )
        )
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


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ucf101", choices=("ucf101", "hmdb51"))
    parser.add_argument("--root", required=True, help="UCF101/HMDB51 videos")
    parser.add_argument("--annotations", required=True, help="their split folder")
    parser.add_argument(
        "--splits",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2, 3],
        help="comma-separated (1,2,3)",
    )
    parser.add_argument("--model", default="stc_resnet3d_101")
    parser.add_argument(
        "--kinetics-checkpoint",
        default=None,
        help="Kinetics weights to start from (skips the pre-training)",
    )
    parser.add_argument("--kinetics-root", help="Kinetics training videos")
    parser.add_argument("--kinetics-train-csv", help="Kinetics training CSV")
    parser.add_argument("--kinetics-val-root", help="Kinetics validation videos")
    parser.add_argument("--kinetics-val-csv", help="Kinetics validation CSV")
    args = parser.parse_args(argv)
    if args.kinetics_checkpoint is None and not all(
        (args.kinetics_root, args.kinetics_train_csv, args.kinetics_val_root, args.kinetics_val_csv)
    ):
        parser.error("give --kinetics-checkpoint, or the four --kinetics-* data options")
    commands = plan(args)
    run(commands, args.dry_run)
    if not args.dry_run:
        result = report(Path(commands[-1][commands[-1].index("--out") + 1]))
        print(
            f"\n{args.dataset} fine-tuned from Kinetics: mean top-1 over splits "
            f"{args.splits}: {100 * result['average']['top1']:.1f}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
