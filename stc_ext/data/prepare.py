"""Preparing a dataset tree for fast loading: :func:`prepare_dataset` (``stc prepare``).

Decoding, not the network, sets the speed of training 3D CNNs on a few CPU cores; most of the
cost of a raw 320x240 video goes into pixels that the 112x112 crop throws away, and into frames
decoded only to reach a clip that starts late. Two preparations, each of the whole tree
``SRC`` into ``DST`` with the same folder layout:

- ``"resize"``: every video re-encoded as H.264 (``.mp4``) with its short side at
  ``short_side`` (aspect ratio and frame rate kept, never upscaled), a keyframe every
  ``keyframe_interval`` frames so that :class:`~.video_file.VideoFileReader` seeks close to any
  clip, and x264's ``fastdecode`` tuning (no CABAC or deblocking: about 1.4x faster decoding
  measured here, for ~15% larger files). Audio is dropped.
- ``"frames"``: every video extracted to a folder of JPEGs ``<stem>/image_00001.jpg ...`` (the
  3D-ResNets layout :class:`~.frame_folder.FrameFolderReader` reads), at the same short side.

Either way a prepared video has exactly the frames a full decode of its source gives (the same
count, in order), so clip sampling is unchanged. Every other file (split lists, class lists,
CSVs, JSON) is copied as it is, so annotation files stay usable unchanged: a list naming
``Class/v_X.avi`` resolves in ``DST`` to ``Class/v_X.mp4`` or the folder ``Class/v_X/``
(:meth:`~.annotations.Annotation.check_files`), and the datasets read ``DST`` with only the
root changed.

The run is parallel over processes, resumable and atomic: each output is written under a
temporary name (``*.part``) and renamed when complete, finished outputs are skipped on a rerun
and partial ones redone. ``DST/stc_prepare.json`` records the settings; a rerun with other
settings is refused rather than mixing them. A video that cannot be prepared is listed in the
report (and in ``DST/stc_prepare_failed.txt``) and never stops the run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

from ..validation import check_int
from .decode import VIDEO_EXTENSIONS
from .errors import VideoDecodeError
from .frame_folder import frame_file_name
from .video_file import VideoFileReader, import_av

__all__ = [
    "MODES",
    "PREPARED_VIDEO_SUFFIX",
    "PrepareOptions",
    "PrepareReport",
    "prepare_dataset",
    "prepare_video",
    "prepared_name",
]

logger = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("resize", "frames")
#: The extension of every resized video (H.264 in MP4), whatever its source's.
PREPARED_VIDEO_SUFFIX = ".mp4"
MANIFEST = "stc_prepare.json"
FAILED_LIST = "stc_prepare_failed.txt"
_PART = ".part"
_FORMAT = "stc_ext.prepare/1"


@dataclass(frozen=True)
class PrepareOptions:
    """How to prepare each video.

    Attributes:
        mode: ``"resize"`` (H.264 ``.mp4``) or ``"frames"`` (a folder of JPEGs).
        short_side: the output's short side in pixels; ``0`` keeps the source size. Never
            upscales. ``"resize"`` rounds both sides to even numbers (needed by YUV 4:2:0).
        keyframe_interval: ``"resize"``: frames between keyframes (a seek decodes at most this
            many frames before a clip's first).
        crf: ``"resize"``: x264 constant rate factor (lower is better quality; 23 is x264's
            default).
        preset: ``"resize"``: x264 speed preset (``"fast"``: a fair encode speed and size).
        jpeg_quality: ``"frames"``: JPEG quality, 1..95.
    """

    mode: str = "resize"
    short_side: int = 128
    keyframe_interval: int = 16
    crf: int = 23
    preset: str = "fast"
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"prepare: mode must be one of {list(MODES)}, got {self.mode!r}")
        check_int("prepare", "short_side", self.short_side, minimum=0)
        if self.mode == "resize" and self.short_side % 2:
            raise ValueError(
                f"prepare: short_side must be even for mode 'resize' (YUV 4:2:0), got "
                f"{self.short_side}"
            )
        check_int("prepare", "keyframe_interval", self.keyframe_interval)
        check_int("prepare", "crf", self.crf, minimum=0, maximum=51)
        check_int("prepare", "jpeg_quality", self.jpeg_quality, maximum=95)


@dataclass
class PrepareReport:
    """What :func:`prepare_dataset` did.

    Attributes:
        videos: videos found under the source.
        prepared: videos prepared by this run.
        skipped: videos whose output was already complete (an earlier run).
        copied: other files copied (split lists, CSVs, ...); unchanged ones are not counted.
        failed: ``(relative path, reason)`` of the videos that could not be prepared.
        truncated: ``(relative path, reason)`` of the videos whose decoding broke before their
            end: their output holds the frames before the break, as a full decode would.
        seconds: wall time.
    """

    videos: int = 0
    prepared: int = 0
    skipped: int = 0
    copied: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    truncated: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def prepared_name(relative: str | Path, mode: str) -> Path:
    """Where the prepared version of video ``relative`` goes, relative to the destination:
    ``a/b.avi`` -> ``a/b.mp4`` (resize) or the folder ``a/b`` (frames)."""
    relative = Path(relative)
    if mode == "resize":
        return relative.with_suffix(PREPARED_VIDEO_SUFFIX)
    return relative.with_suffix("")


def _output_size(width: int, height: int, short_side: int, even: bool) -> tuple[int, int]:
    """``(width, height)`` with the short side at ``short_side`` (no upscaling)."""
    short = min(width, height)
    scale = short_side / short if 0 < short_side < short else 1.0
    w, h = width * scale, height * scale
    if even:
        return max(2, 2 * round(w / 2)), max(2, 2 * round(h / 2))
    return max(1, round(w)), max(1, round(h))


def _frame_rate(stream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return Fraction(25)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def prepare_video(
    source: str | Path, target: str | Path, options: PrepareOptions, threads: int = 0
) -> str | None:
    """Prepare one video: write ``target`` (a ``.mp4`` file or a JPEG folder, by
    ``options.mode``) atomically, through ``target + ".part"``.

    Args:
        threads: codec threads; 0 lets FFmpeg choose (use 1 with one process per core).

    Returns:
        ``None``, or why decoding stopped before the video's end (the output then holds the
        frames before that point, as a full decode would give).

    Raises:
        VideoDecodeError: the source cannot be decoded at all.
    """
    target = Path(target)
    part = target.with_name(target.name + _PART)
    _remove(part)
    target.parent.mkdir(parents=True, exist_ok=True)
    reader = VideoFileReader(source, thread_type="SLICE" if threads == 1 else "AUTO")
    try:
        with reader:
            if options.mode == "resize":
                _encode_h264(reader, part, options, threads)
            else:
                _write_jpegs(reader, part, options)
    except BaseException:
        _remove(part)
        raise
    os.replace(part, target)
    return reader.decode_error


def _encode_h264(reader: VideoFileReader, part: Path, options: PrepareOptions, threads: int):
    av = import_av()
    rate = _frame_rate(reader.stream())
    with av.open(str(part), "w", format="mp4") as out:
        stream = None
        for i, frame in enumerate(reader.iter_frames()):
            if stream is None:
                width, height = _output_size(*reader.frame_size(frame), options.short_side, True)
                stream = out.add_stream("libx264", rate=rate)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.codec_context.thread_count = threads
                stream.options = {
                    "crf": str(options.crf),
                    "preset": options.preset,
                    "tune": "fastdecode",
                    "g": str(options.keyframe_interval),
                }
            small = frame.reformat(
                width=width, height=height, format="yuv420p", interpolation="AREA"
            )
            # Constant frame rate: frame i at i / rate. The source's picture types are dropped
            # (x264 would otherwise copy its keyframes on top of keyframe_interval's).
            small.pts, small.time_base = i, 1 / rate
            small.pict_type = av.video.frame.PictureType.NONE
            for packet in stream.encode(small):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _write_jpegs(reader: VideoFileReader, part: Path, options: PrepareOptions) -> None:
    part.mkdir(parents=True)
    size: tuple[int, int] | None = None
    for i, frame in enumerate(reader.iter_frames()):
        if size is None:
            size = _output_size(*reader.frame_size(frame), options.short_side, False)
        image = frame.reformat(
            width=size[0], height=size[1], format="rgb24", interpolation="AREA"
        ).to_image()
        image.save(part / frame_file_name(i), quality=options.jpeg_quality)


def _prepare_job(job: tuple[str, str, str, dict, int]) -> tuple[str, str, str | None]:
    """Worker: ``(relative, "ok" | "truncated" | "failed", detail)``; never raises, so one bad
    video cannot stop the run."""
    relative, source, target, options, threads = job
    try:
        stopped = prepare_video(source, target, PrepareOptions(**options), threads)
    except VideoDecodeError as exc:
        return relative, "failed", exc.reason or str(exc)
    except Exception as exc:  # noqa: BLE001 - an encoder/filesystem error is this video's, reported
        return relative, "failed", f"{type(exc).__name__}: {exc}"
    return relative, ("truncated" if stopped else "ok"), stopped


def _check_manifest(dst: Path, options: PrepareOptions) -> None:
    manifest = dst / MANIFEST
    wanted = {"format": _FORMAT, **asdict(options)}
    if manifest.is_file():
        try:
            found = json.loads(manifest.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"prepare: cannot read {manifest}: {exc}") from exc
        if found != wanted:
            differ = sorted(
                k for k in wanted.keys() | found.keys() if found.get(k) != wanted.get(k)
            )
            settings = ", ".join(
                f"{k} {found.get(k)!r} there, {wanted.get(k)!r} now" for k in differ
            )
            raise ValueError(
                f"prepare: {dst} was prepared with other settings ({settings}); use another "
                "destination or the same settings"
            )
        return
    dst.mkdir(parents=True, exist_ok=True)
    tmp = manifest.with_name(manifest.name + _PART)
    tmp.write_text(json.dumps(wanted, indent=2) + "\n")
    os.replace(tmp, manifest)


def _copy_if_changed(source: Path, target: Path) -> bool:
    """Copy ``source`` to ``target`` atomically unless an identical copy (size and mtime) is
    there; return whether it copied."""
    if target.is_file():
        a, b = source.stat(), target.stat()
        if a.st_size == b.st_size and int(a.st_mtime) == int(b.st_mtime):
            return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + _PART)
    shutil.copy2(source, tmp)
    os.replace(tmp, target)
    return True


def _walk(src: Path) -> tuple[list[Path], list[Path]]:
    """``(videos, other files)`` under ``src``, relative and sorted."""
    videos, others = [], []
    for folder, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            relative = Path(folder, name).relative_to(src)
            if name.lower().endswith(VIDEO_EXTENSIONS):
                videos.append(relative)
            elif not name.endswith(_PART) and name not in (MANIFEST, FAILED_LIST):
                others.append(relative)
    return videos, others


def _check_trees(src: Path, dst: Path) -> None:
    if not src.is_dir():
        raise FileNotFoundError(f"prepare: source folder not found: {src}")
    s, d = src.resolve(), dst.resolve()
    if s == d or s in d.parents or d in s.parents:
        raise ValueError(
            f"prepare: the destination {dst} and the source {src} must not contain each other"
        )


def prepare_dataset(
    src: str | Path,
    dst: str | Path,
    mode: str = "resize",
    short_side: int = 128,
    keyframe_interval: int = 16,
    crf: int = 23,
    preset: str = "fast",
    jpeg_quality: int = 90,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> PrepareReport:
    """Prepare every video under ``src`` into ``dst`` (see the module docstring).

    Args:
        src: the dataset's root folder (videos in any layout, plus annotation files).
        dst: the prepared tree's root (created; must not overlap ``src``).
        mode, short_side, keyframe_interval, crf, preset, jpeg_quality: see
            :class:`PrepareOptions`.
        workers: processes preparing videos in parallel (one codec thread each; with 1, the
            codecs choose their own threading).
        progress: called as ``progress(done, total)`` at the start and after each video.

    Returns:
        A :class:`PrepareReport`; failures are listed there (and written to
        ``dst/stc_prepare_failed.txt``), not raised.

    Raises:
        FileNotFoundError: ``src`` is not a folder.
        ValueError: bad options, overlapping trees, or ``dst`` prepared with other settings.
    """
    start = time.perf_counter()
    options = PrepareOptions(mode, short_side, keyframe_interval, crf, preset, jpeg_quality)
    workers = check_int("prepare", "workers", workers)
    src, dst = Path(src), Path(dst)
    _check_trees(src, dst)
    _check_manifest(dst, options)
    videos, others = _walk(src)
    report = PrepareReport(videos=len(videos))
    for relative in others:
        report.copied += _copy_if_changed(src / relative, dst / relative)

    owner: dict[Path, Path] = {}
    copied = set(others) | {folder for path in others for folder in path.parents}
    jobs = []
    threads = 1 if workers > 1 else 0
    for relative in videos:
        output = prepared_name(relative, options.mode)
        if output in owner or output in copied:
            clash = f"{owner[output]}'s" if output in owner else "a copied file's"
            report.failed.append((str(relative), f"its output {output} is also {clash}"))
            continue
        owner[output] = relative
        if (dst / output).exists():
            report.skipped += 1
            continue
        jobs.append(
            (str(relative), str(src / relative), str(dst / output), asdict(options), threads)
        )

    total, done = len(videos), report.skipped + len(report.failed)
    if progress is not None:
        progress(done, total)
    results = []
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            for future in as_completed([pool.submit(_prepare_job, job) for job in jobs]):
                results.append(future.result())
                done += 1
                if progress is not None:
                    progress(done, total)
    else:
        for job in jobs:
            results.append(_prepare_job(job))
            done += 1
            if progress is not None:
                progress(done, total)
    for relative, status, detail in sorted(results):
        if status == "failed":
            report.failed.append((relative, detail or "unknown error"))
        else:
            report.prepared += 1
            if status == "truncated":
                report.truncated.append((relative, detail or ""))
    report.failed.sort()
    _write_failed_list(dst, report.failed)
    report.seconds = time.perf_counter() - start
    return report


def _write_failed_list(dst: Path, failed: list[tuple[str, str]]) -> None:
    path = dst / FAILED_LIST
    if not failed:
        if path.exists():
            path.unlink()
        return
    tmp = path.with_name(path.name + _PART)
    tmp.write_text("".join(f"{relative}\t{reason}\n" for relative, reason in failed))
    os.replace(tmp, path)
