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
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

CONFIGS = Path(__file__).resolve().parent / "configs"

Command = list[str]


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
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


def split_runs(
    args: argparse.Namespace,
    config: str,
    out: Path,
    splits: Sequence[int],
    *flags: str,
) -> list[Command]:
    """One ``stc train`` per split into ``out/split<n>`` with ``flags`` (the dataset, model,
    ...), selecting on ``--val-fraction`` of the training list, then ``stc evaluate`` of the
    splits' ``best.pt`` on their test lists into ``out/eval.json`` (averaged over splits)."""
    commands = [
        train_run(
            args,
            config,
            out / f"split{split}",
            *flags,
            "--split",
            str(split),
            "--val-fraction",
            str(args.val_fraction),
        )
        for split in splits
    ]
    commands.append(
        evaluate_run(
            args,
            out / "split{split}" / "best.pt",
            out / "eval.json",
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
    official validation list; returns the command and the run folder."""
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
    and evaluate the splits on their test lists (``eval.json`` there)."""
    out = Path(args.out) / f"{dataset}_from_kinetics" / run_name(model, frames, args.placement)
    return split_runs(
        args,
        "finetune.yaml",
        out,
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


def stc_args(command: Command) -> list[str]:
    """The arguments after ``-m stc_ext`` (for checking a planned command)."""
    return command[command.index("stc_ext") + 1 :]


def output_of(command: Command) -> Path:
    """The ``--out`` file of a planned command (an evaluation's report)."""
    return Path(command[command.index("--out") + 1])


def run(commands: Sequence[Command], dry_run: bool) -> None:
    for command in commands:
        print("+", shlex.join(command), flush=True)
        if not dry_run:
            subprocess.run(command, check=True)


def report(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def pct(value: float | None) -> str:
    """A fraction as a percentage ("-" when absent)."""
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}"


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


def print_comparison(
    title: str, rows: Sequence[tuple[str, float | None, float | None]], notes: Sequence[str] = ()
) -> None:
    """``rows``: (setting, our top-1 in [0, 1] or None, the paper's top-1 in % or None)."""
    print_table(
        title,
        ["setting", "top-1 % (ours)", "top-1 % (paper)"],
        [(name, pct(ours), paper_pct(paper)) for name, ours, paper in rows],
        notes,
    )
