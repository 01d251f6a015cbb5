"""The ``stc`` command: parses flags, calls the library, reports on the console.

Subcommands register themselves in :data:`COMMANDS` (a function adding a subparser whose
``func`` default runs it and returns an exit code). ``train``, ``transfer`` and ``evaluate``
take their flags from config dataclasses (:func:`_add_config_command`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

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
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.25,
        help="share of each class in testlist01.txt (0.25)",
    )
    p.add_argument(
        "--varied",
        action="store_true",
        help="vary the actor's and background's look per video (a harder dataset)",
    )
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


def _add_prepare(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="resize a dataset's videos (or extract JPEG frames) once, for fast loading",
        description=(
            "Prepare every video under SRC into DST, keeping the folder layout: --mode resize "
            "re-encodes each as H.264 .mp4 with its short side at --short-side and a keyframe "
            "every --keyframe-interval frames (fast seeking and decoding); --mode frames "
            "writes a folder of JPEGs per video (<stem>/image_00001.jpg ...). Other files "
            "(split lists, CSVs) are copied, so train/evaluate read DST with only --root "
            "changed (a listed .avi resolves to the prepared .mp4 or frame folder). Resumable: "
            "rerun to finish an interrupted run. Exits with 1 if any video failed (listed "
            "here and in DST/stc_prepare_failed.txt)."
        ),
    )
    p.add_argument("src", help="the dataset's root folder")
    p.add_argument("dst", help="the prepared tree's root folder")
    p.add_argument("--mode", choices=("resize", "frames"), default="resize", help="(resize)")
    p.add_argument(
        "--short-side", type=int, default=128, help="short side in pixels; 0 keeps it (128)"
    )
    p.add_argument(
        "--keyframe-interval", type=int, default=16, help="resize: frames between keyframes (16)"
    )
    p.add_argument("--crf", type=int, default=23, help="resize: x264 quality, lower is better (23)")
    p.add_argument("--preset", default="fast", help="resize: x264 speed preset (fast)")
    p.add_argument("--jpeg-quality", type=int, default=90, help="frames: JPEG quality (90)")
    p.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes (all CPU cores)"
    )
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar"
    )
    p.set_defaults(func=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    from stc_ext.data.prepare import prepare_dataset

    bar = None
    if args.progress:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            bar = tqdm(unit="video", dynamic_ncols=True, mininterval=1.0)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    with _console_logging():
        try:
            report = prepare_dataset(
                args.src,
                args.dst,
                mode=args.mode,
                short_side=args.short_side,
                keyframe_interval=args.keyframe_interval,
                crf=args.crf,
                preset=args.preset,
                jpeg_quality=args.jpeg_quality,
                workers=args.workers,
                progress=progress,
            )
        finally:
            if bar is not None:
                bar.close()
    for title, items in (
        ("truncated (kept up to the break)", report.truncated),
        ("FAILED", report.failed),
    ):
        shown = "".join(f"\n  {path}: {reason}" for path, reason in items[:50])
        more = f"\n  ... and {len(items) - 50} more" if len(items) > 50 else ""
        if items:
            print(f"{len(items)} video(s) {title}:{shown}{more}")
    print(
        f"stc prepare: {report.videos} videos in {args.src}: {report.prepared} prepared, "
        f"{report.skipped} already done, {len(report.failed)} failed; {report.copied} other "
        f"file(s) copied; {report.seconds:.1f} s -> {args.dst}"
    )
    return 1 if report.failed else 0


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


def _add_config_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    config_cls: type,
    run: Callable[[argparse.Namespace], int],
    help: str,
    description: str,
) -> None:
    """A subcommand whose flags are the fields of ``config_cls`` (plus ``--config FILE``)."""
    from stc_ext.train.config import add_config_flags

    p = subparsers.add_parser(name, help=help, description=description)
    p.add_argument(
        "--config",
        default=None,
        help="YAML or JSON file of options (keys as the flags); flags override it",
    )
    add_config_flags(p, config_cls)
    p.set_defaults(func=run, config_cls=config_cls)


def _run_training(
    args: argparse.Namespace,
    config_cls: type,
    resolve: Callable[..., Any],
    run: Callable[[Any], Any],
) -> int:
    """Resolve the config, run it under console logging, print the summary (rank 0)."""
    from stc_ext import train as stc_train

    config = resolve(stc_train.given_options(args, config_cls), args.config)
    with _console_logging():
        try:
            result = run(config)
        except KeyboardInterrupt:
            print(
                f"stc {args.command}: aborted; the last saved checkpoint is unchanged",
                file=sys.stderr,
            )
            return 130
    if _rank() == 0:
        print(stc_train.format_train_summary(result))
    return 130 if result.interrupted else 0


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    from stc_ext.train.config import TrainConfig

    _add_config_command(
        subparsers,
        "train",
        TrainConfig,
        _run_train,
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


def _run_train(args: argparse.Namespace) -> int:
    from stc_ext import train as stc_train

    return _run_training(
        args, stc_train.TrainConfig, stc_train.resolve_train_config, stc_train.train
    )


def _add_transfer(subparsers: argparse._SubParsersAction) -> None:
    from stc_ext.transfer import TransferConfig

    _add_config_command(
        subparsers,
        "transfer",
        TransferConfig,
        _run_transfer,
        help="2D->3D knowledge transfer on unlabeled videos (paper §3.2)",
        description=(
            "Teach a randomly initialised 3D network (--model) with a frozen 2D ResNet "
            "(--teacher, --teacher-weights) through an image-video correspondence task on the "
            "unlabeled videos under --videos: do X frames and a clip come from the same time "
            "span of the same video? Defaults follow the paper (§4.2): SGD, batch 32, weight "
            "decay 1e-4, Nesterov 0.9, lr 0.1 divided by 10 every 30 epochs, 150 epochs. Reports "
            "the pair accuracy on held-out videos' pairs; writes OUT_DIR/student.pt for "
            "`stc train --init` plus everything `stc train` writes. Ctrl-C, --resume and "
            "torchrun work as for `stc train`."
        ),
    )


def _run_transfer(args: argparse.Namespace) -> int:
    from stc_ext import transfer as stc_transfer

    return _run_training(
        args,
        stc_transfer.TransferConfig,
        stc_transfer.resolve_transfer_config,
        stc_transfer.transfer,
    )


def _add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    from stc_ext.train.config import EvalConfig

    _add_config_command(
        subparsers,
        "evaluate",
        EvalConfig,
        _run_evaluate,
        help="video-level accuracy by the paper's test protocol, over one or more splits",
        description=(
            "Cut each test video into non-overlapping clips, centre-crop them, average the "
            "softmax over the clips (paper §4.2) and report top-1, top-5 and mean class "
            "accuracy per split and their average (--splits 1,2,3; put {split} in "
            "--checkpoint for one model per split). Writes a JSON report and confusion-matrix "
            "PNGs. Data options default to the checkpoint's training config."
        ),
    )


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


def _int_list(text: str) -> list[int]:
    """argparse type of flags like ``--widths 16,32,64,128``."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, e.g. 16,32,64,128, got {text!r}"
        ) from None


def _add_teacher(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "teacher",
        help="train a small 2D ResNet teacher on a synthetic image task (no ImageNet needed)",
        description=(
            "Train a narrow 2D ResNet to recognise the actor's shape in single synthetic "
            "frames (stc_ext.data.synthetic.shape_images: a different task from the video "
            "classes, which differ only in motion) and write its weights (torchvision keys) "
            "to OUT, for `stc transfer --teacher resnetDEPTH --teacher-weights OUT` and "
            "`stc inflate --source OUT`. Unset options take train_shape_teacher's defaults."
        ),
    )
    p.add_argument("--out", required=True, help="the teacher file to write")
    p.add_argument("--depth", type=int, help="ResNet depth (18, 34, 50, 101, 152)")
    p.add_argument("--widths", type=_int_list, help="stage base widths, e.g. 16,32,64,128")
    p.add_argument("--images", type=int, help="training images")
    p.add_argument("--test-images", type=int, help="held-out images")
    p.add_argument("--image-size", type=int, help="side of the rendered frames")
    p.add_argument("--short-side", type=int, help="frames are resized to this short side")
    p.add_argument("--crop", type=int, help="random (train) / centre (test) crop side")
    p.add_argument("--steps", type=int, help="SGD steps")
    p.add_argument("--batch-size", type=int, help="images per step")
    p.add_argument("--lr", type=float, help="peak learning rate (linear warmup, then cosine decay)")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar"
    )
    p.set_defaults(func=_run_teacher)


def _run_teacher(args: argparse.Namespace) -> int:
    import torch

    from stc_ext.transfer import train_shape_teacher

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    names = (
        "depth",
        "widths",
        "images",
        "test_images",
        "image_size",
        "short_side",
        "crop",
        "steps",
        "batch_size",
        "lr",
        "seed",
    )
    options = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    with _console_logging():
        result = train_shape_teacher(args.out, progress=args.progress, **options)
    print(
        f"teacher resnet{result.depth} (widths {','.join(map(str, result.widths))}): "
        f"shape accuracy {100 * result.train_accuracy:.1f}% train, "
        f"{100 * result.test_accuracy:.1f}% held out, {result.steps} steps in "
        f"{result.seconds:.0f} s\nwrote {result.path}"
    )
    return 0


def _add_inflate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inflate",
        help="I3D-style inflation of a 2D ResNet into a 3D one, as an --init file",
        description=(
            "Build --model and inflate the 2D weights of --source into it (each 2D kernel "
            "repeated over time and divided by the temporal size; BatchNorm copied; STC blocks "
            "and the classifier stay fresh), then write OUT for `stc train --init OUT`. The 2D "
            "and 3D nets must have the same structure: resnet50 -> resnet3d_50 / "
            "stc_resnet3d_50 with --shortcut-type B (torchvision's downsample convs) and the "
            "same --widths. The paper's Table 7 'Inflation' baseline."
        ),
    )
    p.add_argument(
        "--source",
        required=True,
        help="2D weights: a torchvision/timm state_dict file or a `stc teacher` file",
    )
    p.add_argument("--model", required=True, help="3D model name, e.g. resnet3d_50")
    p.add_argument("--out", required=True, help="the init file to write")
    p.add_argument("--frames", type=int, default=16, help="clip length of the 3D model (16)")
    p.add_argument("--size", type=int, default=112, help="crop side (112)")
    p.add_argument(
        "--widths",
        type=_int_list,
        default=None,
        help="stage base widths, e.g. 16,32,64,128 (default: 64,128,256,512)",
    )
    p.add_argument(
        "--shortcut-type",
        choices=("A", "B"),
        default="B",
        help="residual shortcut type (B: convs, as torchvision's; default)",
    )
    p.add_argument(
        "--placement",
        choices=("block", "stage"),
        default=None,
        help="stc_* models: STC block in every residual block (block; default) or one per stage",
    )
    p.set_defaults(func=_run_inflate)


def _run_inflate(args: argparse.Namespace) -> int:
    from stc_ext.models import build_from_config, inflated_backbone
    from stc_ext.train import atomic_save

    config = {
        "model": args.model,
        "frames": args.frames,
        "size": args.size,
        "widths": args.widths,
        "shortcut_type": args.shortcut_type,
    }
    if args.placement is not None:
        config["placement"] = args.placement
    state, report = inflated_backbone(build_from_config(config, num_classes=1), args.source)
    atomic_save(
        {
            "format": "stc_ext.inflated/1",
            "model": state,
            "config": config,
            "source": str(args.source),
        },
        args.out,
    )
    print(f"{report}\nwrote {args.out} (for stc train --init; the classifier is fresh)")
    return 0


def _add_inference_flags(p: argparse.ArgumentParser) -> None:
    """The flags ``stc predict`` and ``stc extract`` share (argument names = dests)."""
    p.add_argument(
        "videos",
        nargs="+",
        metavar="VIDEO_OR_DIR",
        help="video files, frame folders, or folders to walk for videos",
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="an `stc train` checkpoint, or foreign weights (torchvision, 3D-ResNets) with --model",
    )
    clip = p.add_argument_group("model and clips (default: the checkpoint's training config)")
    clip.add_argument("--model", help="model name, for weights that do not record it")
    clip.add_argument(
        "--placement",
        choices=("block", "stage"),
        help="STC placement of weights that do not record it (block)",
    )
    clip.add_argument("--frames", type=int, help="frames per clip (must match the checkpoint)")
    clip.add_argument("--stride", type=int, help="temporal stride between sampled frames")
    clip.add_argument("--size", type=int, help="centre-crop side")
    clip.add_argument("--short-side", type=int, help="frames are resized to this short side")
    clip.add_argument(
        "--drop-last-partial",
        action="store_true",
        help="drop a video's last clip when it would need loop padding",
    )
    speed = p.add_argument_group("speed")
    speed.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (auto)")
    speed.add_argument("--batch-size", type=int, default=4, help="videos decoded per batch (4)")
    speed.add_argument("--clip-batch", type=int, default=32, help="clips per forward pass (32)")
    speed.add_argument("--workers", type=int, default=2, help="decoding worker processes (2)")
    speed.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none", help="autocast")
    speed.add_argument("--backend", help="STC kernel backend (default: the checkpoint's)")
    speed.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar"
    )


def _inference_options(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    for name in ("batch_size", "clip_batch", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')}: must be positive, got {value}")
    if args.workers < 0:
        raise ValueError(f"--workers: must not be negative, got {args.workers}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    names = (
        "model placement frames stride size short_side drop_last_partial device batch_size "
        "clip_batch "
        "workers amp backend"
    ).split()
    return {name: getattr(args, name) for name in names} | {"progress": args.progress}


def _print_skipped(command: str, skipped: list[tuple[str, str]]) -> None:
    if skipped:
        lines = "\n".join(f"  {path}: {reason}" for path, reason in skipped)
        print(f"stc {command}: skipped {len(skipped)} video(s):\n{lines}", file=sys.stderr)


def _add_predict(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="top-k classes of your own videos (the paper's test protocol)",
        description=(
            "Classify each video: non-overlapping clips of the checkpoint's length and stride, "
            "centre-cropped, softmax averaged over the clips (paper §4.2; the code path of "
            "`stc evaluate`). Folders are walked for video files; a folder of images is one "
            "video. Unreadable files are listed and skipped. Class names come from the "
            "checkpoint, else --labels, else indices. Without --out, one line per video."
        ),
    )
    _add_inference_flags(p)
    p.add_argument(
        "--labels",
        help="class names for weights that do not record them: one per line, or classInd.txt",
    )
    p.add_argument("--topk", type=int, default=5, help="classes listed per video (5)")
    p.add_argument("--out", help="write the results to this .json or .csv file")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from stc_ext import predict as stc_predict

    if args.out is not None and Path(args.out).suffix.lower() not in (".json", ".csv"):
        raise ValueError(f"--out: must end in .json or .csv, got {args.out}")
    options = _inference_options(args)
    with _console_logging():
        result = stc_predict.predict(
            args.videos, args.checkpoint, labels=args.labels, topk=args.topk, **options
        )
    if _rank() != 0:
        return 0
    _print_skipped("predict", result.skipped)
    if args.out is not None:
        stc_predict.write_predictions(result, args.out)
        print(
            f"wrote {len(result.predictions)} predictions ({result.model}, labels from "
            f"{result.labels_from}) to {args.out} in {result.seconds:.1f} s"
        )
    else:
        for p in result.predictions:
            top = ", ".join(f"{label} {score:.3f}" for label, _, score in p.top)
            print(f"{p.video}\t{top}")
    return 0 if result.predictions else 1


def _add_extract(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "extract",
        help="per-clip features (pooled or logits) of your videos, one .npy + .json per video",
        description=(
            "Cut each video into the test protocol's non-overlapping centre-cropped clips and "
            "write OUT/<name>.npy, float32 (clips, D): the pooled last-stage features "
            "(--layer pool: 512-D for ResNet-18/34, 2048-D for ResNet-50+) or the logits, and "
            "OUT/<name>.json with each clip's start/end frame and time in seconds. <name> is "
            "the video's path under the folder given, without extension. Resumable: videos "
            "whose outputs exist are skipped; files are written atomically."
        ),
    )
    _add_inference_flags(p)
    p.add_argument("--layer", choices=("pool", "logits"), default="pool", help="output (pool)")
    p.add_argument("--out", default="features", help="output folder (features)")
    p.add_argument("--fps", type=float, help="frame rate of frame-folder videos, for clip times")
    p.set_defaults(func=_run_extract)


def _run_extract(args: argparse.Namespace) -> int:
    from stc_ext import extract as stc_extract

    options = _inference_options(args)
    with _console_logging():
        result = stc_extract.extract(
            args.videos, args.checkpoint, args.out, layer=args.layer, fps=args.fps, **options
        )
    _print_skipped("extract", result.skipped)
    if _rank() == 0:
        dim = f"{result.dim}-D " if result.dim else ""
        print(
            f"wrote {dim}{result.layer} features of {len(result.written)} video(s) to "
            f"{result.out_dir} in {result.seconds:.1f} s"
            + (f"; {len(result.existing)} already there" if result.existing else "")
        )
    return 0 if result.written or result.existing else 1


def _add_export(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a checkpoint's network: torch.export (.pt2) or ONNX",
        description=(
            "Trace the network of --checkpoint with torch.export on clips of its frames and "
            "size (any batch size). pt2: the STC blocks stay stc_ext custom-op nodes (load with "
            "torch.export.load after `import stc_ext`). onnx: the STC op is decomposed into "
            "standard ops first (needs onnx and onnxscript: pip install 'stc_ext[onnx]'); with "
            "onnxruntime installed the file is run on the CPU and compared with the model."
        ),
    )
    p.add_argument("--checkpoint", required=True, help="an `stc train` checkpoint or weights")
    p.add_argument("--out", required=True, help="the file to write (.pt2 or .onnx)")
    p.add_argument("--format", choices=("pt2", "onnx"), help="default: from --out's extension")
    p.add_argument("--model", help="model name, for weights that do not record it")
    p.add_argument(
        "--placement",
        choices=("block", "stage"),
        help="STC placement of weights that do not record it (block)",
    )
    p.add_argument("--frames", type=int, help="frames per clip (must match the checkpoint)")
    p.add_argument("--size", type=int, help="clip side (default: the checkpoint's)")
    p.add_argument(
        "--layer", choices=("logits", "pool"), default="logits", help="the output (logits)"
    )
    p.add_argument("--backend", help="STC kernel backend traced into the program (default: auto)")
    p.add_argument("--opset", type=int, help="ONNX opset (default: torch's)")
    p.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the exported file and compare it with the model (default: on)",
    )
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from stc_ext.export import export_checkpoint

    with _console_logging():
        result = export_checkpoint(
            args.checkpoint,
            args.out,
            args.format,
            model=args.model,
            placement=args.placement,
            frames=args.frames,
            size=args.size,
            layer=args.layer,
            backend=args.backend,
            opset=args.opset,
            check=args.check,
        )
    shape = ("N", *result.input_shape[1:])
    checked = (
        f"max |difference| from the model {result.max_error:.2e}"
        if result.max_error is not None
        else "not checked"
    )
    nodes = f"{result.custom_op_nodes} STC op node(s)"
    nodes += " decomposed into standard ops" if result.format == "onnx" else " kept"
    print(
        f"wrote {result.path} ({result.format}, {result.model}, {result.layer} for clips "
        f"{tuple(shape)}; {nodes}); {checked}"
    )
    return 0


def _add_info(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info",
        help="versions, devices and STC backends; --check self-tests every backend",
        description=(
            "Print the versions (stc_ext, torch, CUDA, Triton, the compiler the extension was "
            "built with), the devices, and each STC backend: available, disabled by "
            "STC_EXT_DISABLE, or missing and why. --check runs every backend available on the "
            "device against the float64 reference (small random shapes, both layouts, plain "
            "and residual forms, forward and backward, the test suite's tolerances): one "
            "PASS/FAIL line per backend and dtype, exit status 1 on any failure; then the "
            "bandwidth of one stage-sized forward per backend next to a plain copy. Turn a "
            "failing backend off with STC_EXT_DISABLE=name[,name...]."
        ),
    )
    p.add_argument("--check", action="store_true", help="self-test the backends (a few seconds)")
    p.add_argument(
        "--device",
        default=None,
        help="device to check: cpu, cuda or cuda:N (default: cuda if present, else cpu)",
    )
    p.add_argument(
        "--backends",
        default=None,
        help="comma-separated backends to check (default: every one available on the device)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    import json

    from stc_ext import info

    env = info.environment()
    if not args.check:
        print(json.dumps(env, indent=2) if args.json else info.format_environment(env))
        return 0
    names = args.backends.split(",") if args.backends else None
    results = info.check_backends(args.device, names)
    shape, bandwidth = info.measure_bandwidth(args.device, names)
    failed = [r for r in results if not r.passed]
    if args.json:
        env["check"] = [{**dataclasses.asdict(r), "passed": r.passed} for r in results]
        env["bandwidth"] = {"shape": shape, "results": [dataclasses.asdict(b) for b in bandwidth]}
        print(json.dumps(env, indent=2))
        return 1 if failed else 0
    print(info.format_environment(env))
    device = results[0].device if results else args.device
    print(f"\nself-check on {device} against the float64 reference:")
    for result in results:
        print(result.line())
    print(
        f"\nforward bandwidth on {device}, x of shape {tuple(shape)} float32 (2 |x| bytes moved; "
        "timings are noisy on a busy machine):"
    )
    for b in bandwidth:
        timing = f"{b.gbps:7.1f} GB/s  {b.milliseconds:8.2f} ms" if b.gbps is not None else b.note
        print(f"  {b.name:<10}{timing}")
    if failed:
        names = sorted({r.backend for r in failed})
        print(
            f"\nFAILED: {', '.join(f'{r.backend} {r.dtype}' for r in failed)}. Until fixed, "
            f"turn it off with STC_EXT_DISABLE={','.join(n for n in names if n != 'reference')}"
            " (backend='auto' then picks the next one)",
            file=sys.stderr,
        )
        return 1
    print("\nall backends PASS")
    return 0


#: Functions that add one subcommand each to the ``stc`` parser.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_synth,
    _add_prepare,
    _add_train,
    _add_evaluate,
    _add_teacher,
    _add_transfer,
    _add_inflate,
    _add_predict,
    _add_extract,
    _add_export,
    _add_info,
]


def _version() -> str:
    import torch

    import stc_ext

    return f"stc {stc_ext.__version__} (torch {torch.__version__}, python {sys.version.split()[0]})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stc", description="Spatio-temporal Channel Correlation networks (stc_ext)."
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add in COMMANDS:
        add(subparsers)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; an unknown flag is reported with its subcommand's usage (argparse
    alone shows the top-level one)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        commands = next(
            a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
        ).choices
        commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _error_message(args: argparse.Namespace, exc: Exception) -> str:
    """The library's message, with a config field at fault named by its flag."""
    from stc_ext.train.config import ConfigError

    config_cls = getattr(args, "config_cls", None)
    if isinstance(exc, ConfigError) and exc.field is not None:
        fields = {f.name for f in dataclasses.fields(config_cls)} if config_cls else set(vars(args))
        if exc.field == "videos" and "videos" in fields:
            return f"VIDEO_OR_DIR: {exc.detail}"
        if exc.field in fields:
            return f"--{exc.field.replace('_', '-')}: {exc.detail}"
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``stc`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    from stc_ext.train.errors import TrainingError

    args = _parse(build_parser(), argv)
    try:
        return int(args.func(args))
    except (ValueError, OSError, ImportError, TrainingError) as exc:  # a message, not a traceback
        print(f"stc {args.command}: error: {_error_message(args, exc)}", file=sys.stderr)
        return 1
