"""Data pipeline speed: decoded, sampled and transformed clips per second, per source.

Each row is one ``VideoClipDataset`` item (decode -> sample -> transform) in the main process;
``extra_info`` records ``clips_per_s`` (clips of ``frames`` x 112 x 112 per second, from the
median time) and the frames decoded per item. Sources: H.264 files at UCF101's 320x240 and at the
synthetic dataset's 128x128, and a folder of 320x240 JPEGs. ``cold`` is a video's first read
(decodes it all to learn its true length); ``warm`` uses the cached length and stops decoding
after the last sampled frame, as every later epoch does.

    pytest bench/bench_data.py
    STC_BENCH_FRAMES=32 STC_BENCH_STRIDE=1 pytest bench/bench_data.py
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av", reason="PyAV is needed to decode videos")

from stc_ext.data import Annotation, VideoClipDataset, VideoRecord  # noqa: E402
from stc_ext.data.synthetic import render, sample_scene, write_video  # noqa: E402

FRAMES = int(os.environ.get("STC_BENCH_FRAMES", "16"))
STRIDE = int(os.environ.get("STC_BENCH_STRIDE", "2"))
VIDEO_FRAMES = 150  # 6 s at 25 fps, about UCF101's mean length


def _moving_frames(n: int, height: int, width: int) -> np.ndarray:
    """Textured frames with motion (so the encoder does real work), ``uint8 (n, H, W, 3)``."""
    scene = sample_scene(np.random.default_rng(0), frames=n, size=max(height, width))
    return np.ascontiguousarray(render("MoveSideways", scene)[:, :height, :width])


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench_data")
    ucf = _moving_frames(VIDEO_FRAMES, 240, 320)
    write_video(root / "ucf_320x240.mp4", ucf)
    write_video(root / "synthetic_128x128.mp4", _moving_frames(48, 128, 128))
    folder = root / "ucf_320x240_jpeg"
    folder.mkdir()
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        for i, frame in enumerate(ucf):
            Image.fromarray(frame).save(folder / f"image_{i + 1:05d}.jpg", quality=90)
    return {
        "h264-320x240": root / "ucf_320x240.mp4",
        "h264-128x128": root / "synthetic_128x128.mp4",
        "jpeg-320x240": folder if Image is not None else None,
    }


@pytest.mark.parametrize("cache", ["cold", "warm"])
@pytest.mark.parametrize("mode", ["train", "test"])
@pytest.mark.parametrize("source", ["h264-320x240", "h264-128x128", "jpeg-320x240"])
def test_clips_per_second(benchmark, sources, source, mode, cache):
    path = sources[source]
    if path is None:
        pytest.skip("Pillow is needed to write the JPEG frame folder")
    if source.startswith("jpeg") and cache == "cold":
        pytest.skip("frame folders have no cold read: listing the folder gives the length")
    ds = VideoClipDataset(Annotation([VideoRecord(path, 0)], ["a"]), FRAMES, STRIDE, mode)
    torch.manual_seed(0)
    if cache == "warm":
        ds[0]  # learn the length once

    def item():
        if cache == "cold":
            ds._num_frames.clear()
        return ds[0]

    benchmark.group = f"data {mode} {FRAMES}x{STRIDE}"
    out = benchmark(item)
    clips = out[0].shape[0] if mode == "test" else 1
    seconds = benchmark.stats.stats.median
    benchmark.extra_info["clips_per_s"] = round(clips / seconds, 1)
    benchmark.extra_info["clips_per_item"] = clips
