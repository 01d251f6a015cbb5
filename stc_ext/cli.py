"""The ``stc`` command: parses flags, calls the library, reports on the console.

Subcommands register themselves in :data:`COMMANDS` (a function adding a subparser whose
``func`` default runs it and returns an exit code); add ``train``/``evaluate``/``transfer`` the
same way as ``synth``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence

__all__ = ["COMMANDS", "build_parser", "main"]


def _add_synth(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="write the synthetic action dataset (real videos, UCF101 layout)",
        description=(
            "Write a synthetic action dataset whose classes differ only in motion: "
            "OUT/videos/<Class>/*.mp4 plus OUT/splits/{classInd,trainlist01,testlist01}.txt "
            "(read it with stc_ext.data.read_ucf101(OUT/'videos', OUT/'splits'))."
        ),
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--classes", type=int, default=10, help="number of classes, 2..12 (10)")
    p.add_argument("--videos-per-class", type=int, default=40, help="videos per class (40)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--frames", type=int, default=48, help="frames per video (48)")
    p.add_argument("--size", type=int, default=128, help="frame height and width (128)")
    p.add_argument("--test-fraction", type=float, default=0.25,
                   help="share of each class in testlist01.txt (0.25)")
    p.add_argument("--varied", action="store_true",
                   help="vary the actor's and background's look per video (a harder dataset)")
    p.add_argument("--workers", type=int, default=1, help="processes to use (1)")
    p.add_argument("--force", action="store_true", help="replace an existing dataset in OUT")
    p.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from stc_ext.data import synthetic

    start = time.perf_counter()
    info = synthetic.generate(
        args.out,
        classes=args.classes,
        videos_per_class=args.videos_per_class,
        seed=args.seed,
        frames=args.frames,
        size=args.size,
        test_fraction=args.test_fraction,
        varied=args.varied,
        workers=args.workers,
        overwrite=args.force,
    )
    seconds = time.perf_counter() - start
    print(
        f"wrote {info.num_train + info.num_test} videos ({len(info.classes)} classes, "
        f"{info.num_train} train / {info.num_test} test) to {info.video_root} in {seconds:.1f} s\n"
        f"splits: {info.split_dir}"
    )
    return 0


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


@contextlib.contextmanager
def _console_logging() -> Iterator[None]:
    """Library logs on stderr (rank 0 at INFO, other ranks WARNING), kept clear of tqdm bars."""
    rank = _rank()
    logger = logging.getLogger("stc_ext")
    handler = logging.StreamHandler(sys.stderr)
    prefix = f"[rank {rank}] " if rank else ""
    handler.setFormatter(logging.Formatter(f"%(asctime)s {prefix}%(message)s", "%H:%M:%S"))
    previous_level = logger.level
    logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    logger.addHandler(handler)
    try:
        try:
            from tqdm.contrib.logging import logging_redirect_tqdm
        except ImportError:
            yield
        else:
            with logging_redirect_tqdm(loggers=[logger]):
                yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    from stc_ext.train.config import TrainConfig, add_config_flags

    p = subparsers.add_parser(
        "train",
        help="train or fine-tune a model (paper protocol by default; DDP under torchrun)",
        description=(
            "Train any registered model on UCF101, HMDB51, Kinetics, a list file or the "
            "synthetic dataset. Defaults follow the paper (§4.2): SGD, Nesterov 0.9, weight "
            "decay 1e-4, lr 0.1 divided by 10 on a validation-loss plateau, batch 128 (by "
            "gradient accumulation). Writes OUT_DIR/{config.json,last.pt,best.pt,metrics.csv,"
            "metrics.jsonl,curves.png}. Ctrl-C saves last.pt; --resume OUT_DIR/last.pt "
            "continues exactly. Multi-process: torchrun --nproc_per_node=K -m stc_ext train ..."
        ),
    )
    p.add_argument("--config", default=None,
                   help="YAML or JSON file of options (keys as the flags); flags override it")
    add_config_flags(p, TrainConfig)
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from stc_ext import train as stc_train

    options = stc_train.given_options(args, stc_train.TrainConfig)
    config = stc_train.resolve_train_config(options, args.config)
    with _console_logging():
        try:
            result = stc_train.train(config)
        except KeyboardInterrupt:
            print("stc train: aborted; the last saved checkpoint is unchanged", file=sys.stderr)
            return 130
    if _rank() == 0:
        print(stc_train.format_train_summary(result))
    return 130 if result.interrupted else 0


def _add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    from stc_ext.train.config import EvalConfig, add_config_flags

    p = subparsers.add_parser(
        "evaluate",
        help="video-level accuracy by the paper's test protocol, over one or more splits",
        description=(
            "Cut each test video into non-overlapping clips, centre-crop them, average the "
            "softmax over the clips (paper §4.2) and report top-1, top-5 and mean class "
            "accuracy per split and their average (--splits 1,2,3; put {split} in "
            "--checkpoint for one model per split). Writes a JSON report and confusion-matrix "
            "PNGs. Data options default to the checkpoint's training config."
        ),
    )
    p.add_argument("--config", default=None,
                   help="YAML or JSON file of options (keys as the flags); flags override it")
    add_config_flags(p, EvalConfig)
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from stc_ext import train as stc_train

    options = stc_train.given_options(args, stc_train.EvalConfig)
    config = stc_train.resolve_eval_config(options, args.config)
    with _console_logging():
        try:
            result = stc_train.evaluate(config)
        except KeyboardInterrupt:
            print("stc evaluate: aborted", file=sys.stderr)
            return 130
    if _rank() == 0:
        print(stc_train.format_eval_table(result))
    return 0


#: Functions that add one subcommand each to the ``stc`` parser.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_synth, _add_train, _add_evaluate,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stc", description="Spatio-temporal Channel Correlation networks (stc_ext)."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``stc`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, OSError) as exc:  # bad input or files: a message, not a traceback
        print(f"stc {args.command}: error: {exc}", file=sys.stderr)
        return 1
