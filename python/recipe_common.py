"""Shared plumbing for the recipes: build `stc` command lines, run them, tabulate reports.

Every recipe plans a list of `stc` commands (the same ones a user would type) and runs them
one after the other; ``--dry-run`` prints them instead. ``--nproc K`` launches each training
run with ``torchrun --standalone --nproc_per_node=K``.
"""

from __future__ import annotations

import argparse
import json
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
        "--extra", default="", help="more `stc train` flags for every run, e.g. '--amp bf16'"
    )
    return parser


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


def ucf101_split1_runs(args: argparse.Namespace, run_dir: Path, *flags: str) -> list[Command]:
    """Train from scratch on UCF101 split 1 with ``flags`` (the paper's ablation set-up),
    then evaluate the best checkpoint with the test protocol into run_dir/eval.json."""
    train = train_run(
        args,
        "ucf101_scratch.yaml",
        run_dir,
        "--root",
        args.root,
        "--annotations",
        args.annotations,
        "--split",
        "1",
        "--model",
        args.model,
        *flags,
    )
    evaluate = stc(
        "evaluate", "--checkpoint", str(run_dir / "best.pt"), "--out", str(run_dir / "eval.json")
    )
    return [train, evaluate]


def stc_args(command: Command) -> list[str]:
    """The arguments after ``-m stc_ext`` (for checking a planned command)."""
    return command[command.index("stc_ext") + 1 :]


def run(commands: Sequence[Command], dry_run: bool) -> None:
    for command in commands:
        print("+", shlex.join(command), flush=True)
        if not dry_run:
            subprocess.run(command, check=True)


def report(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def print_comparison(title: str, rows: Sequence[tuple[str, float | None, float]]) -> None:
    """``rows``: (setting, our top-1 in [0, 1] or None, the paper's top-1 in %)."""
    from stc_ext.train import format_table

    print(f"\n{title}")
    print(
        format_table(
            ["setting", "top-1 (ours)", "top-1 (paper)"],
            [
                (name, "-" if ours is None else f"{100 * ours:.1f}%", f"{paper:.1f}%")
                for name, ours, paper in rows
            ],
        )
    )
