"""Data pipeline throughput in clips per second *per core*, per source, sampling and clip length.

Sources, made on the fly (nothing downloaded): 3 videos of 150 frames (6 s at 25 fps, about
UCF101's mean length) of a 1/f colour texture panning 1.5 px/frame with sensor noise:

- ``raw``: 320x240 H.264 as a camera or web encoder writes it (x264 preset medium, crf 23,
  keyframes every 250 frames, B-frames; ~330 kb/s, UCF101's XviD files average ~560 kb/s);
- ``prepared``: ``raw`` through ``stc prepare --mode resize`` (170x128, keyframe every 16 frames,
  fastdecode);
- ``jpeg-320``: every frame of ``raw`` as a 320x240 JPEG (quality 90), a 3D-ResNets extraction;
- ``jpeg-128``: ``raw`` through ``stc prepare --mode frames`` (170x128 JPEGs).

Rows: ``VideoClipDataset`` items (decode -> sample -> 5-crop/flip or centre crop -> normalised
``float32 (3, T, 112, 112)``) in this process with one torch thread, frame counts already cached
(every epoch after the first), for ``train`` sampling (one clip at a random position) and
``test`` sampling (the whole video as non-overlapping clips), ``T`` = 16 and 64 at stride 2.
Rates count 112x112 clips per second of this process's CPU time (all its threads; pinned to
one core, that is what the core spends), next to clips per wall-clock second, which falls with
the load of whatever else runs on the machine. ``decoder`` rows compare PyAV (this package's
reader) with decord on the same frame selections (decode to RGB only, no transform).

Pin to one core for per-core numbers; run the interleaved table (rows measured round-robin, so
ratios are side by side even on a busy machine) or the pytest-benchmark rows (wall clock)::

    taskset -c 1 python bench/bench_data.py --rounds 5 [--out table.md]
    taskset -c 1 pytest bench/bench_data.py
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

SOURCES = ("raw", "prepared", "jpeg-320", "jpeg-128")
MODES = ("train", "test")
CLIP_FRAMES = (16, 64)
STRIDE = 2
VIDEO_FRAMES = 150
VIDEOS = 3
FLOOR_RATIO, FLOOR_CLIPS = 4.0, 80.0  # prepared vs raw, 16x112x112 train clips, per core


def textured_frames(n: int, height: int, width: int, seed: int) -> np.ndarray:
    """A 1/f colour texture (natural-image-like spectrum) panning at (1.3, 0.7) px/frame with
    sensor noise: ``uint8 (n, H, W, 3)``, real work for a motion-compensating encoder."""
    rng = np.random.default_rng(seed)
    pan = (1.3, 0.7)
    big_h, big_w = height + int(pan[1] * n) + 2, width + int(pan[0] * n) + 2
    freq = np.hypot(np.fft.fftfreq(big_h)[:, None], np.fft.fftfreq(big_w)[None, :])
    freq[0, 0] = 1.0
    planes = []
    for _ in range(3):
        spectrum = (rng.standard_normal(freq.shape) + 1j * rng.standard_normal(freq.shape)) / freq
        spectrum[0, 0] = 0
        plane = np.fft.ifft2(spectrum).real
        planes.append(plane / plane.std())
    mix = np.array([[1.0, 0.3, 0.2], [0.3, 1.0, 0.3], [0.2, 0.3, 1.0]]) / 1.5
    texture = (np.stack(planes, -1) * 55) @ mix.T + 128
    frames = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        x, y = pan[0] * t, pan[1] * t
        ix, iy, fx, fy = int(x), int(y), x - int(x), y - int(y)
        a = texture[iy : iy + height + 1, ix : ix + width + 1]
        frame = (1 - fy) * ((1 - fx) * a[:-1, :-1] + fx * a[:-1, 1:]) + fy * (
            (1 - fx) * a[1:, :-1] + fx * a[1:, 1:]
        )
        frame += rng.normal(0, 3.0, frame.shape)
        frames[t] = np.clip(frame, 0, 255)
    return frames


def _encode_raw(path: Path, frames: np.ndarray) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "23", "preset": "medium"}  # x264's defaults: keyint 250, 3 B
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_sources(root: Path) -> dict[str, list[Path]]:
    """Write the sources (see the module docstring) under ``root``: ``{source: video paths}``."""
    from PIL import Image

    from stc_ext.data.frame_folder import frame_file_name
    from stc_ext.data.prepare import prepare_dataset

    raw_root = root / "raw"
    raw_root.mkdir(parents=True)
    sources: dict[str, list[Path]] = {name: [] for name in SOURCES}
    for seed in range(VIDEOS):
        frames = textured_frames(VIDEO_FRAMES, 240, 320, seed)
        path = raw_root / f"v{seed}.mp4"
        _encode_raw(path, frames)
        sources["raw"].append(path)
        folder = root / "jpeg-320" / f"v{seed}"
        folder.mkdir(parents=True)
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(folder / frame_file_name(i), quality=90)
        sources["jpeg-320"].append(folder)
    for source, mode in (("prepared", "resize"), ("jpeg-128", "frames")):
        report = prepare_dataset(raw_root, root / source, mode=mode, workers=min(2, VIDEOS))
        if report.failed:
            raise RuntimeError(f"preparing the {source} source failed: {report.failed}")
        sources[source] = sorted(p for p in (root / source).iterdir() if p.name.startswith("v"))
    return sources


def make_dataset(paths: list[Path], mode: str, frames: int):
    """A ``VideoClipDataset`` over ``paths`` whose frame counts are already cached."""
    from stc_ext.data import Annotation, VideoClipDataset, VideoRecord

    annotation = Annotation([VideoRecord(p, 0) for p in paths], ["texture"], "bench")
    dataset = VideoClipDataset(annotation, frames=frames, stride=STRIDE, mode=mode, strict=True)
    for i in range(len(dataset)):
        dataset.read_frames(i)  # learn the lengths, as the first epoch does
    return dataset


def item_reader(dataset) -> Callable[[], int]:
    """A function reading the next item round-robin and returning the clips it gave."""
    indices = itertools.cycle(range(len(dataset)))

    def read() -> int:
        item = dataset[next(indices)]
        return item[0].shape[0] if dataset.mode == "test" else 1

    return read


def decoder_reader(paths: list[Path], decoder: str, frames: int) -> Callable[[], int]:
    """Decode one training clip's frames (random position, stride 2) to RGB with ``decoder``
    (``"pyav"`` or ``"decord"``), round-robin over ``paths``; returns 1 (clip)."""
    from stc_ext.data import VideoFileReader, train_clip_indices

    lengths = [VideoFileReader(p).count_packets() for p in paths]
    videos = itertools.cycle(range(len(paths)))
    if decoder == "decord":
        import decord

        def read() -> int:
            v = next(videos)
            idx = train_clip_indices(lengths[v], frames, STRIDE)
            reader = decord.VideoReader(str(paths[v]), ctx=decord.cpu(0), num_threads=1)
            reader.get_batch(idx.tolist()).asnumpy()
            return 1

        return read

    def read() -> int:
        v = next(videos)
        VideoFileReader(paths[v]).read(lambda n: train_clip_indices(n, frames, STRIDE), lengths[v])
        return 1

    return read


def rows(sources: dict[str, list[Path]]) -> dict[str, Callable[[], int]]:
    """Every measured row: ``{name: read one unit, return the clips it gave}``."""
    out: dict[str, Callable[[], int]] = {}
    for mode, frames, source in itertools.product(MODES, CLIP_FRAMES, SOURCES):
        out[f"{mode} {frames}x112 {source}"] = item_reader(
            make_dataset(sources[source], mode, frames)
        )
    decoders = ["pyav"] + (["decord"] if _has_decord() else [])
    for frames, source, decoder in itertools.product(CLIP_FRAMES, ("raw", "prepared"), decoders):
        out[f"decoder {frames} {source} {decoder}"] = decoder_reader(
            sources[source], decoder, frames
        )
    return out


def _has_decord() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


def decoder_agreement(root: Path, sources: dict[str, list[Path]]) -> list[str]:
    """Do decord and PyAV return the same frames? Max |difference| over 20 clips of 16 frames
    (stride 2) per file: raw and prepared H.264, and MPEG-4 part 2 with B-frames in AVI (UCF101's
    XviD format) made from the same texture."""
    import av
    import decord

    from stc_ext.data import VideoFileReader

    avi = root / "mpeg4-bframes.avi"
    with av.open(str(avi), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"bf": "2", "g": "12", "qscale": "4"}
        for frame in textured_frames(VIDEO_FRAMES, 240, 320, seed=7):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    lines = []
    starts = np.random.default_rng(0).integers(0, VIDEO_FRAMES - 31, size=20)
    for name, path in (
        ("raw", sources["raw"][0]),
        ("prepared", sources["prepared"][0]),
        ("mpeg4-bframes.avi", avi),
    ):
        worst, differing = 0, 0
        for start in starts:
            idx = np.arange(start, start + 31, STRIDE)
            ours, _ = VideoFileReader(path).read(lambda n, i=idx: i)
            theirs = decord.VideoReader(str(path), num_threads=1).get_batch(idx.tolist())
            diff = np.abs(ours.numpy().astype(int) - theirs.asnumpy().astype(int))
            worst = max(worst, int(diff.max()))
            differing += int((diff.reshape(len(idx), -1).max(1) > 0).sum())
        lines.append(
            f"decord vs PyAV frames, {name}: {differing} of {len(starts) * 16} frames differ, "
            f"max |difference| {worst}"
        )
    return lines


def measure(read: Callable[[], int], seconds: float) -> tuple[float, float]:
    """``(clips per CPU second, clips per wall second)`` of ``read`` over at least ``seconds``
    of CPU time (and at least 3 calls).

    CPU time (this process's, all threads) is what a core spends on the work: on a shared
    machine the wall-clock rate drops with the other processes' load, the CPU-time rate much
    less (caches and memory bandwidth are still shared).
    """
    clips, calls = 0, 0
    cpu, wall = time.process_time(), time.perf_counter()
    while calls < 3 or time.process_time() - cpu < seconds:
        clips += read()
        calls += 1
    return clips / (time.process_time() - cpu), clips / (time.perf_counter() - wall)


def _environment() -> str:
    import av

    try:
        import decord

        decord_version = decord.__version__
    except ImportError:
        decord_version = "not installed"
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    return (
        f"date {datetime.date.today()}, python {platform.python_version()}, torch "
        f"{torch.__version__} ({torch.get_num_threads()} thread), PyAV {av.__version__} "
        f"(libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}), decord "
        f"{decord_version}, numpy {np.__version__}\nCPU {cpu}, {os.cpu_count()} cores, this "
        f"process on cores {affinity}, load average before {os.getloadavg()}"
    )


def table(results: dict[str, list[tuple[float, float]]]) -> str:
    """Markdown: per row, the median clips per CPU second and its spread over rounds, the
    ratio to ``raw`` (same row otherwise), and the median clips per wall second."""
    lines = [
        "| row | clips per CPU-s (median) | min..max over rounds | x raw | clips per wall-s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, values in results.items():
        cpu = [c for c, _ in values]
        median = statistics.median(cpu)
        base = name.replace("prepared", "raw").replace("jpeg-320", "raw").replace("jpeg-128", "raw")
        ratio = median / _cpu_median(results[base]) if base in results else float("nan")
        wall = statistics.median(w for _, w in values)
        lines.append(
            f"| {name} | {median:.1f} | {min(cpu):.1f}..{max(cpu):.1f} | {ratio:.2f} | {wall:.1f} |"
        )
    return "\n".join(lines)


def _disk_bytes(paths: list[Path]) -> int:
    return sum(f.stat().st_size for p in paths for f in ([p] if p.is_file() else list(p.iterdir())))


def _cpu_median(values: list[tuple[float, float]]) -> float:
    return statistics.median(c for c, _ in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="round-robin rounds (5)")
    parser.add_argument("--seconds", type=float, default=1.0, help="per row and round (1.0)")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    env = _environment()
    with tempfile.TemporaryDirectory() as tmp:
        print("making the sources ...", file=sys.stderr)
        sources = make_sources(Path(tmp))
        agreement = decoder_agreement(Path(tmp), sources) if _has_decord() else []
        sizes = [
            f"{name}: {_disk_bytes(paths) / len(paths) / 1024:.0f} KiB per 6 s video"
            for name, paths in sources.items()
        ]
        measured = rows(sources)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in measured}
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
            for name, read in measured.items():
                results[name].append(measure(read, args.seconds))
    raw = _cpu_median(results["train 16x112 raw"])
    prepared = _cpu_median(results["train 16x112 prepared"])
    floor = (
        f"floor (train 16x112, per core): prepared {prepared:.1f} clips per CPU-second = "
        f"{prepared / raw:.2f}x raw; needs >= {FLOOR_RATIO:.0f}x and >= {FLOOR_CLIPS:.0f}: "
        + ("met" if prepared >= FLOOR_RATIO * raw and prepared >= FLOOR_CLIPS else "NOT met")
    )
    decoders = [
        f"decord / PyAV, {name[len('decoder ') : -len(' pyav')]}: "
        f"{_cpu_median(results[name[:-4] + 'decord']) / _cpu_median(values):.2f}"
        for name, values in results.items()
        if name.endswith(" pyav") and name[:-4] + "decord" in results
    ]
    text = "\n".join(
        [f"{env}, after {os.getloadavg()}", "", table(results), "", floor, *decoders, *agreement]
        + ["", "Sizes: " + "; ".join(sizes), ""]
    )
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
else:  # collected by pytest: one pytest-benchmark row per row of the table
    import pytest

    pytest.importorskip("av", reason="PyAV is needed to decode videos")
    pytest.importorskip("PIL", reason="Pillow is needed to write the JPEG sources")

    @pytest.fixture(scope="module")
    def sources(tmp_path_factory) -> dict[str, list[Path]]:
        return make_sources(tmp_path_factory.mktemp("bench_data"))

    @pytest.fixture(scope="module", autouse=True)
    def one_thread():
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(previous)

    @pytest.mark.parametrize("frames", CLIP_FRAMES)
    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize("source", SOURCES)
    def test_clips_per_second(benchmark, sources, source, mode, frames):
        read = item_reader(make_dataset(sources[source], mode, frames))
        benchmark.group = f"data {mode} {frames}x112 stride {STRIDE}"
        clips = benchmark(read)
        benchmark.extra_info["clips_per_s"] = round(clips / benchmark.stats.stats.median, 1)

    @pytest.mark.parametrize("decoder", ["pyav", "decord"])
    @pytest.mark.parametrize("source", ["raw", "prepared"])
    def test_decoder(benchmark, sources, source, decoder):
        if decoder == "decord" and not _has_decord():
            pytest.skip("decord is not installed (pip install decord2)")
        read = decoder_reader(sources[source], decoder, 16)
        benchmark.group = f"decoder train 16 stride {STRIDE}"
        clips = benchmark(read)
        benchmark.extra_info["clips_per_s"] = round(clips / benchmark.stats.stats.median, 1)
