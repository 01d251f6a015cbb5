"""Writing frames as H.264 video files: RGB -> YUV 4:2:0 in numpy, then libx264 through PyAV
(:func:`write_video`), set up so that the same frames always give the same bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_video"]


def _rgb_to_yuv420p(frames: np.ndarray) -> np.ndarray:
    """``uint8 (T, H, W, 3)`` RGB -> ``uint8 (T, 3H/2, W)`` planar YUV 4:2:0 (BT.601, limited
    range, as FFmpeg's default conversion), laid out as PyAV's ``yuv420p`` arrays."""
    t, h, w, _ = frames.shape
    r, g, b = (frames[..., c].astype(np.float32) for c in range(3))
    y = r * np.float32(65.481 / 255)
    y += g * np.float32(128.553 / 255)
    y += b * np.float32(24.966 / 255)
    y += np.float32(16.0)
    # 2x2 sums (x/4 folded into the coefficients below)
    r, g, b = (
        x[:, 0::2, 0::2] + x[:, 1::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 1::2] for x in (r, g, b)
    )
    u = 128.0 + (-37.797 / 1020) * r + (-74.203 / 1020) * g + (112.0 / 1020) * b
    v = 128.0 + (112.0 / 1020) * r + (-93.786 / 1020) * g + (-18.214 / 1020) * b
    planes = [y.reshape(t, h, w), u.reshape(t, h // 4, w), v.reshape(t, h // 4, w)]
    out = np.concatenate(planes, axis=1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def write_video(path: str | Path, frames: np.ndarray, fps: int = 25, crf: int = 20) -> None:
    """Encode ``uint8 (T, H, W, 3)`` RGB frames as H.264 (yuv420p) with PyAV.

    ``H`` and ``W`` must be multiples of 4. The colour conversion is done here in numpy, the
    encoder runs on one thread and without B-frames or macroblock-tree rate control: with them,
    libx264 gave different bytes for the same frames from run to run (seen at 48x48 and 64x64,
    12 frames).
    """
    import av

    t, h, w, _ = frames.shape
    if h % 4 or w % 4:
        raise ValueError(f"write_video: frame sizes must be multiples of 4, got {h}x{w}")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {
            "crf": str(crf),
            "preset": "veryfast",
            "x264-params": "bframes=0:mbtree=0",
        }
        for planes in _rgb_to_yuv420p(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(planes, format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
