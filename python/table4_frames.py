"""Table 4: clip length (16, 32, 64 frames) for STC-ResNet-101 and STC-ResNeXt-101,
pre-trained on Kinetics and fine-tuned on UCF101 and HMDB51, averaged over three splits.

    python python/table4_frames.py --nproc 8 \
        --kinetics-root kinetics/train --kinetics-train-csv kinetics_400_train.csv \
        --kinetics-val-root kinetics/val --kinetics-val-csv kinetics_400_val.csv \
        --ucf101-root UCF-101 --ucf101-annotations ucfTrainTestlist \
        --hmdb51-root hmdb51 --hmdb51-annotations testTrainMulti_7030_splits

For each model and ``--frames`` value: Kinetics-400 from scratch at that clip length
(python/configs/kinetics.yaml; best.pt chosen on the official validation list) into
OUT/kinetics/<model>_f<frames>, or ``--kinetics-checkpoint`` with ``{model}`` and ``{frames}``
in the path; then, per dataset and split, fine-tuning from it (python/configs/finetune.yaml;
best.pt chosen on --val-fraction of the split's training list) into
OUT/<dataset>_from_kinetics/<model>_f<frames>/split<n>, and the test protocol on the test
lists. Run folders carry the model and the frame count, so a 32-frame run never resumes a
16-frame one. The paper gives no fine-tuning hyper-parameters (finetune.yaml's are ours).
With ``--seeds`` every fine-tuning runs once per seed (``.../seedS``) from the one Kinetics run.
"""

from __future__ import annotations

import sys

from recipe_common import (
    TARGET_DATASETS,
    Command,
    add_kinetics_flags,
    add_placement_flag,
    add_selection_flag,
    add_target_dataset_flags,
    base_parser,
    check_target_datasets,
    finetune_dir,
    finetune_runs,
    int_list,
    kinetics_data_given,
    kinetics_run,
    name_list,
    ours_cells,
    ours_header,
    paper_pct,
    print_table,
    run,
    seed_top1,
    seeds_note,
    selection_note,
)

MODELS = ("stc_resnet3d_101", "stc_resnext3d_101")
#: (model, frames) -> the paper's (UCF101, HMDB51) top-1 in %, three splits averaged.
PAPER = {
    ("stc_resnet3d_101", 16): (90.1, 62.6),
    ("stc_resnet3d_101", 32): (93.2, 68.9),
    ("stc_resnet3d_101", 64): (93.7, 70.5),
    ("stc_resnext3d_101", 16): (92.3, 65.4),
    ("stc_resnext3d_101", 32): (95.8, 72.6),
    ("stc_resnext3d_101", 64): (96.5, 74.9),
}


def plan(args) -> list[Command]:
    commands: list[Command] = []
    for model in args.models:
        for frames in args.frames:
            if args.kinetics_checkpoint is not None:
                init = args.kinetics_checkpoint.format(model=model, frames=frames)
            else:
                kinetics, run_dir = kinetics_run(args, model, frames, args.placement)
                commands.append(kinetics)
                init = str(run_dir / "best.pt")
            for dataset in args.datasets:
                root, annotations = (
                    getattr(args, f"{dataset}_root"),
                    getattr(args, f"{dataset}_annotations"),
                )
                commands += finetune_runs(args, dataset, root, annotations, model, frames, init)
    return commands


def parse(argv: list[str] | None = None):
    parser = base_parser(
        __doc__.split("\n\n")[0],
        seeds="The Kinetics pre-training runs once per model and clip length (its config's "
        "seed); each seed fine-tunes from it",
    )
    add_selection_flag(parser)
    add_placement_flag(parser)
    add_kinetics_flags(parser)
    add_target_dataset_flags(parser)
    parser.add_argument(
        "--models",
        type=name_list,
        default=list(MODELS),
        help=f"comma-separated ({','.join(MODELS)})",
    )
    parser.add_argument(
        "--frames", type=int_list, default=[16, 32, 64], help="clip lengths (16,32,64)"
    )
    parser.add_argument(
        "--splits", type=int_list, default=[1, 2, 3], help="comma-separated (1,2,3)"
    )
    parser.add_argument(
        "--kinetics-checkpoint",
        default=None,
        help="Kinetics weights to start from instead of pre-training, with {model} and "
        "{frames} in the path, e.g. runs/kinetics/{model}_f{frames}/best.pt",
    )
    args = parser.parse_args(argv)
    check_target_datasets(parser, args)
    if args.kinetics_checkpoint is None and not kinetics_data_given(args):
        parser.error("give --kinetics-checkpoint, or the four --kinetics-* data options")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    commands = plan(args)
    run(commands, args.dry_run)
    if args.dry_run:
        return 0
    header = ["model", "frames"]
    for dataset in args.datasets:
        header += [*ours_header(args, dataset), f"{dataset} % (paper)"]
    rows = []
    for model in args.models:
        for frames in args.frames:
            row = [model, str(frames)]
            for dataset in args.datasets:
                values = seed_top1(args, finetune_dir(args, dataset, model, frames))
                paper = PAPER.get((model, frames), (None, None))[TARGET_DATASETS.index(dataset)]
                row += [*ours_cells(args, values), paper_pct(paper)]
            rows.append(row)
    print_table(
        f"Table 4 (Kinetics-pretrained, fine-tuned; splits {','.join(map(str, args.splits))})",
        header,
        rows,
        [selection_note(args), f"STC placement: {args.placement}", *seeds_note(args)],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
