"""Shared plumbing for the recipes: build `stc` command lines, run them, tabulate reports.

Every recipe plans a list of `stc` commands (the same ones a user would type) and runs them
one after the other; ``--dry-run`` prints them instead. ``--nproc K`` launches each training
run with ``torchrun --standalone --nproc_per_node=K``.

The protocol every recipe follows: the checkpoint a table reports (``best.pt``) is chosen on
a validation set that is never the reported list. UCF101/HMDB51 (and the synthetic set) hold
``--val-fraction`` of each split's training list out (whole groups of clips; see
stc_ext.data.holdout) and report on the split's test list; Kinetics selects on its official
validation list and reports on it (its test labels are not public), as the paper does.

Run folders are named by what defines the run (model, frame count, dataset, split), so a
run resumes only itself: ``train_run`` adds ``--resume`` when the folder holds a ``last.pt``.

``--seeds 0,1,2`` trains every row once per seed (``stc train --seed S`` into the row's
folder's ``seedS/``; :func:`seed_runs`), and the tables give mean ± sample std (n) over the
seeds and the per-seed figures (:func:`seed_top1`, :func:`mean_std`). Without it a recipe
makes one run per row with its config's seed, in the row's folder itself.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

CONFIGS = Path(__file__).resolve().parent / "configs"

Command = list[str]


class RecipeParser(argparse.ArgumentParser):
    """The recipes' parser: checks ``--seeds`` against ``--extra`` once parsed."""

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed = super().parse_args(args, namespace)
        seeds = getattr(parsed, "seeds", None)
        if seeds is not None:
            if not seeds:
                self.error("--seeds: give at least one seed, e.g. 0,1,2")
            if len(set(seeds)) != len(seeds):
                self.error(f"--seeds: each seed once, got {','.join(map(str, seeds))}")
            if "--seed" in shlex.split(parsed.extra):
                self.error("--extra: leave --seed out when giving --seeds (each run gets its own)")
        return parsed


def base_parser(description: str, seeds: str | None = "") -> argparse.ArgumentParser:
    """The options every recipe shares. ``seeds``: what ``--seeds`` leaves single-seed (a
    sentence for its help), or None for a recipe without trained rows to repeat."""
    parser = RecipeParser(description=description)
    parser.add_argument("--out", default="runs", help="folder for the runs (runs)")
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="processes per training run (torchrun --nproc_per_node; 1)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    parser.add_argument(
        "--extra",
        default="",
        help="more `stc train`/`stc transfer` flags for every run, e.g. '--amp bf16'",
    )
    parser.add_argument(
        "--eval-extra",
        default="",
        help="more `stc evaluate` flags for every evaluation, e.g. '--amp bf16 --workers 8'",
    )
    if seeds is not None:
        parser.add_argument(
            "--seeds",
            type=int_list,
            default=None,
            help="comma-separated seeds, e.g. 0,1,2: train every row once per seed "
            "(`stc train --seed S`, run folders .../seedS/) and print mean ± sample std (n) "
            "and the per-seed figures; default: one run per row with the config's seed, "
            "in the row's folder" + (f". {seeds}" if seeds else ""),
        )
    return parser


def add_selection_flag(parser: argparse.ArgumentParser) -> None:
    """``--val-fraction`` for recipes that train on UCF101/HMDB51/synthetic."""
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of each training list held out to choose best.pt (0.1; whole groups of "
        "clips, never the test list)",
    )


def add_kinetics_flags(parser: argparse.ArgumentParser) -> None:
    """The Kinetics-400 data options (training and official validation lists)."""
    parser.add_argument("--kinetics-root", help="Kinetics training videos")
    parser.add_argument("--kinetics-train-csv", help="Kinetics training CSV")
    parser.add_argument("--kinetics-val-root", help="Kinetics validation videos")
    parser.add_argument("--kinetics-val-csv", help="Kinetics validation CSV")


def kinetics_data_given(args: argparse.Namespace) -> bool:
    return all(
        (args.kinetics_root, args.kinetics_train_csv, args.kinetics_val_root, args.kinetics_val_csv)
    )


#: The fine-tuning targets of the UCF101/HMDB51 tables (Tables 4 and 7).
TARGET_DATASETS = ("ucf101", "hmdb51")


def add_target_dataset_flags(parser: argparse.ArgumentParser) -> None:
    """--ucf101-root/--ucf101-annotations, the same for hmdb51, and --datasets."""
    for dataset in TARGET_DATASETS:
        parser.add_argument(f"--{dataset}-root", help=f"{dataset} videos")
        parser.add_argument(f"--{dataset}-annotations", help=f"{dataset} split folder")
    parser.add_argument(
        "--datasets",
        type=name_list,
        default=list(TARGET_DATASETS),
        help="comma-separated (ucf101,hmdb51)",
    )


def check_target_datasets(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses (``parser.error``) unknown --datasets and a chosen dataset without its root
    and annotations."""
    unknown = [d for d in args.datasets if d not in TARGET_DATASETS]
    if unknown:
        choices = ", ".join(TARGET_DATASETS)
        parser.error(f"--datasets: choose from {choices}, got {', '.join(unknown)}")
    for dataset in args.datasets:
        if not (getattr(args, f"{dataset}_root") and getattr(args, f"{dataset}_annotations")):
            parser.error(
                f"give --{dataset}-root and --{dataset}-annotations (or leave {dataset} out "
                "of --datasets)"
            )


def int_list(text: str) -> list[int]:
    """argparse type of options like ``--splits 1,2,3``."""
    try:
        return [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def name_list(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def add_placement_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--placement",
        default="block",
        choices=("block", "stage"),
        help="where the STC models' STC blocks go: every residual block (block; the default) "
        "or the last block of each stage (see README)",
    )


def run_name(model: str, frames: int, placement: str = "block") -> str:
    """The folder name of a run of ``model`` on ``frames``-frame clips, e.g.
    ``stc_resnet3d_101_f32`` (``_stage`` appended for that placement), so that a run only
    ever resumes a run of the same network."""
    suffix = f"_{placement}" if placement != "block" and model.startswith("stc_") else ""
    return f"{model}_f{frames}{suffix}"


def model_flags(model: str, frames: int, placement: str = "block") -> list[str]:
    """``--model``, ``--frames`` and, for STC models, ``--placement``."""
    flags = ["--model", model, "--frames", str(frames)]
    return flags + (["--placement", placement] if model.startswith("stc_") else [])


def stc(*args: str, nproc: int = 1) -> Command:
    """The command line running ``stc ARGS`` (under torchrun when ``nproc`` > 1)."""
    if nproc > 1:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "stc_ext",
            *args,
        ]
    return [sys.executable, "-m", "stc_ext", *args]


def train_run(
    args: argparse.Namespace, config: str, run_dir: Path, *flags: str, command: str = "train"
) -> Command:
    """``stc COMMAND`` (``train`` or ``transfer``) with python/configs/CONFIG and ``flags``,
    writing to ``run_dir``; it resumes from ``run_dir/last.pt`` when a previous attempt left
    one, and takes the recipe's ``--extra`` flags and ``--nproc``."""
    resume = ["--resume", str(run_dir / "last.pt")] if (run_dir / "last.pt").exists() else []
    return stc(
        command,
        "--config",
        str(CONFIGS / config),
        *flags,
        "--out-dir",
        str(run_dir),
        *resume,
        *shlex.split(args.extra),
        nproc=args.nproc,
    )


def evaluate_run(
    args: argparse.Namespace, checkpoint: str | Path, out: Path, *flags: str
) -> Command:
    """``stc evaluate`` of ``checkpoint`` (``{split}`` in it: one per split) into ``out``,
    with the recipe's ``--eval-extra`` flags."""
    return stc(
        "evaluate",
        "--checkpoint",
        str(checkpoint),
        *flags,
        "--out",
        str(out),
        *shlex.split(args.eval_extra),
    )


def seed_runs(args: argparse.Namespace, run_dir: Path) -> list[tuple[list[str], Path]]:
    """``(seed flags, folder)`` of each run of the row in ``run_dir``: with ``--seeds``,
    ``(["--seed", "S"], run_dir/seedS)`` per seed; without, ``([], run_dir)`` (the config's
    seed, the folder layout of single-seed recipes)."""
    seeds = getattr(args, "seeds", None)
    if seeds is None:
        return [([], run_dir)]
    return [(["--seed", str(seed)], run_dir / f"seed{seed}") for seed in seeds]


def split_runs(
    args: argparse.Namespace,
    config: str,
    out: Path,
    splits: Sequence[int],
    *flags: str,
) -> list[Command]:
    """For each seed (:func:`seed_runs`: folder ``run`` = ``out`` or ``out/seedS``): one
    ``stc train`` per split into ``run/split<n>`` with ``flags`` (the dataset, model, ...),
    selecting on ``--val-fraction`` of the training list, then ``stc evaluate`` of the
    splits' ``best.pt`` on their test lists into ``run/eval.json`` (averaged over splits)."""
    commands = []
    for seed_flags, run_dir in seed_runs(args, out):
        commands += [
            train_run(
                args,
                config,
                run_dir / f"split{split}",
                *flags,
                "--split",
                str(split),
                "--val-fraction",
                str(args.val_fraction),
                *seed_flags,
            )
            for split in splits
        ]
        commands.append(
            evaluate_run(
                args,
                run_dir / "split{split}" / "best.pt",
                run_dir / "eval.json",
                "--splits",
                ",".join(map(str, splits)),
            )
        )
    return commands


def ucf101_split1_runs(args: argparse.Namespace, run_dir: Path, *flags: str) -> list[Command]:
    """Train from scratch on UCF101 split 1 with ``flags`` (the paper's ablation set-up),
    then evaluate the best checkpoint with the test protocol into run_dir/eval.json."""
    return split_runs(
        args,
        "ucf101_scratch.yaml",
        run_dir,
        [1],
        "--dataset",
        "ucf101",
        "--root",
        args.root,
        "--annotations",
        args.annotations,
        "--model",
        args.model,
        *flags,
    )


def kinetics_run(
    args: argparse.Namespace, model: str, frames: int, placement: str = "block"
) -> tuple[Command, Path]:
    """Kinetics-400 from scratch (python/configs/kinetics.yaml) into
    ``OUT/kinetics/<run_name>`` (shared by the recipes that need it), selecting on the
    official validation list; returns the command and the run folder. One run with the
    config's seed whatever ``--seeds`` says: every seed's fine-tunes start from it."""
    run_dir = Path(args.out) / "kinetics" / run_name(model, frames, placement)
    command = train_run(
        args,
        "kinetics.yaml",
        run_dir,
        "--root",
        args.kinetics_root,
        "--annotations",
        args.kinetics_train_csv,
        "--val-root",
        args.kinetics_val_root,
        "--val-annotations",
        args.kinetics_val_csv,
        *model_flags(model, frames, placement),
    )
    return command, run_dir


def finetune_dir(args: argparse.Namespace, dataset: str, model: str, frames: int) -> Path:
    """``OUT/<dataset>_from_kinetics/<run_name>``: the folder of :func:`finetune_runs`."""
    return Path(args.out) / f"{dataset}_from_kinetics" / run_name(model, frames, args.placement)


def finetune_runs(
    args: argparse.Namespace,
    dataset: str,
    root: str,
    annotations: str,
    model: str,
    frames: int,
    init: str,
) -> list[Command]:
    """Fine-tune ``model`` from ``init`` (Kinetics weights) on each of ``args.splits`` of
    ``dataset`` (python/configs/finetune.yaml) into ``OUT/<dataset>_from_kinetics/<run_name>``
    (``.../seedS`` per seed) and evaluate the splits on their test lists (``eval.json``)."""
    return split_runs(
        args,
        "finetune.yaml",
        finetune_dir(args, dataset, model, frames),
        args.splits,
        "--dataset",
        dataset,
        "--root",
        root,
        "--annotations",
        annotations,
        *model_flags(model, frames, args.placement),
        "--init",
        init,
    )


def add_synthetic_target_flags(parser: argparse.ArgumentParser) -> None:
    """The size of :func:`synthetic_target`'s dataset (defaults: the small-scale tables')."""
    parser.add_argument("--classes", type=int, default=10, help="target classes (10)")
    parser.add_argument(
        "--videos-per-class", type=int, default=40, help="target videos per class (40)"
    )


def synthetic_target(args: argparse.Namespace, target: Path) -> list[Command]:
    """``stc synth`` of the small-scale tables' labelled target dataset into ``target``
    (``args.classes`` classes that differ only in motion, ``args.videos_per_class`` videos
    each, 64 frames at 64 px, the generator's default seed, so every recipe writes the
    same videos); nothing when ``target/splits`` exists already."""
    if (target / "splits").is_dir():
        return []
    # 64 frames: at stride 2 exactly two non-overlapping 16-frame test clips, so none is
    # loop-padded (a padded clip jumps back in time, which hides motion-defined classes).
    return [
        stc(
            "synth",
            "--out",
            str(target),
            "--classes",
            str(args.classes),
            "--videos-per-class",
            str(args.videos_per_class),
            "--frames",
            "64",
            "--size",
            "64",
            "--workers",
            "2",
        )
    ]


def stc_args(command: Command) -> list[str]:
    """The arguments after ``-m stc_ext`` (for checking a planned command)."""
    return command[command.index("stc_ext") + 1 :]


def output_of(command: Command) -> Path:
    """The ``--out`` file of a planned command (an evaluation's report)."""
    return Path(command[command.index("--out") + 1])


def run_command(command: Command) -> None:
    """Runs one planned command; a non-zero exit raises ``subprocess.CalledProcessError``."""
    subprocess.run(command, check=True)


def run(commands: Sequence[Command], dry_run: bool) -> None:
    for command in commands:
        print("+", shlex.join(command), flush=True)
        if not dry_run:
            run_command(command)


def report(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def seed_reports(args: argparse.Namespace, run_dir: Path, name: str = "eval.json") -> list[dict]:
    """The evaluation report ``name`` of each of the row's runs (:func:`seed_runs`), in the
    order of ``--seeds``."""
    return [report(folder / name) for _, folder in seed_runs(args, run_dir)]


def seed_top1(
    args: argparse.Namespace, run_dir: Path, name: str = "eval.json", metric: str = "top1"
) -> list[float]:
    """The row's per-seed figure (``average`` ``metric`` of its reports, in [0, 1]), one
    per seed in the order of ``--seeds`` (one value without ``--seeds``)."""
    return [r["average"][metric] for r in seed_reports(args, run_dir, name)]


def pct(value: float | None) -> str:
    """A fraction as a percentage ("-" when absent)."""
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def mean_std(values: Sequence[float]) -> str:
    """Fractions as "mean ± sample std (n=N)" in %; one value as :func:`pct` alone."""
    if len(values) == 1:
        return pct(values[0])
    return (
        f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f} "
        f"(n={len(values)})"
    )


def per_seed(values: Sequence[float]) -> str:
    """The per-seed figures in %, in seed order: "61.0 / 58.0 / 64.0"."""
    return " / ".join(pct(v) for v in values)


def top1_text(values: Sequence[float]) -> str:
    """Per-seed fractions for a sentence: "61.3%", or with several seeds
    "61.3 ± 2.1 (n=3) % (per seed 60.0 / 62.0 / 61.9)"."""
    if len(values) == 1:
        return f"{pct(values[0])}%"
    return f"{mean_std(values)} % (per seed {per_seed(values)})"


def ours_header(args: argparse.Namespace, label: str) -> list[str]:
    """The header of :func:`ours_cells`: "LABEL % (ours)" (and "LABEL per seed")."""
    with_seeds = getattr(args, "seeds", None) is not None
    return [f"{label} % (ours)"] + ([f"{label} per seed"] if with_seeds else [])


def ours_cells(args: argparse.Namespace, values: Sequence[float]) -> list[str]:
    """A row's cells for its per-seed figures: :func:`mean_std` (and, with ``--seeds``,
    :func:`per_seed`)."""
    with_seeds = getattr(args, "seeds", None) is not None
    return [mean_std(values)] + ([per_seed(values)] if with_seeds else [])


def seeds_note(args: argparse.Namespace) -> list[str]:
    """The note that goes under a table of ``--seeds`` runs (none without it)."""
    seeds = getattr(args, "seeds", None)
    if seeds is None:
        return []
    return [
        f"seeds {','.join(map(str, seeds))}: mean ± sample std over the seeds (n runs), "
        "and each seed's figure in that order"
    ]


def selection_note(args: argparse.Namespace) -> str:
    return (
        f"best.pt chosen on {100 * args.val_fraction:g}% of each training list held out "
        "(whole groups of clips); figures on the test lists, averaged over the splits run"
    )


def print_table(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str] = ()
) -> None:
    """A titled table (stc_ext.train.format_table) and its notes, on stdout."""
    from stc_ext.train import format_table

    print(f"\n{title}")
    print(format_table(header, rows))
    for note in notes:
        print(f"* {note}")


def paper_pct(value: float | None) -> str:
    """A figure from the paper (already in %), "-" when it has none."""
    return "-" if value is None or math.isnan(value) else f"{value:.1f}"


Ours = float | Sequence[float] | None


def _as_list(ours: Ours) -> list[float]:
    if ours is None:
        return []
    return [float(ours)] if isinstance(ours, int | float) else list(ours)


def print_comparison(
    title: str, rows: Sequence[tuple[str, Ours, float | None]], notes: Sequence[str] = ()
) -> None:
    """``rows``: (setting, our top-1 in [0, 1] (a float, None, or the per-seed list of
    :func:`seed_top1`), the paper's top-1 in % or None). When a row has several seeds, ours
    is "mean ± std (n)" and a column gives the per-seed figures."""
    ours_lists = [_as_list(ours) for _, ours, _ in rows]
    if all(len(values) <= 1 for values in ours_lists):
        print_table(
            title,
            ["setting", "top-1 % (ours)", "top-1 % (paper)"],
            [
                (name, pct(values[0] if values else None), paper_pct(paper))
                for (name, _, paper), values in zip(rows, ours_lists, strict=True)
            ],
            notes,
        )
        return
    print_table(
        title,
        ["setting", "top-1 % (ours, mean ± std)", "per seed", "top-1 % (paper)"],
        [
            (name, mean_std(values) if values else "-", per_seed(values), paper_pct(paper))
            for (name, _, paper), values in zip(rows, ours_lists, strict=True)
        ],
        notes,
    )
