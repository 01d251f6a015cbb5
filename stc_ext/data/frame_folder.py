"""Videos stored as folders of images, one per frame: :class:`FrameFolderReader`."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from .errors import VideoDecodeError
from .frame_reader import Selector, check_indices, gather_frames

__all__ = ["IMAGE_EXTENSIONS", "FrameFolderReader", "frame_file_name"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")

_DIGITS = re.compile(r"(\d+)")


def frame_file_name(index: int) -> str:
    """The name of frame ``index`` (0-based) in a folder this package writes:
    ``image_00001.jpg`` for frame 0 (the 3D-ResNets layout)."""
    return f"image_{index + 1:05d}.jpg"


def _natural_key(name: str) -> list:
    """Sort key treating digit runs as numbers: ``img_2.jpg`` < ``img_10.jpg``."""
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(name)]


def _load_image(path: str) -> np.ndarray:
    """Decode one image to ``uint8 (H, W, 3)`` RGB with Pillow (PyAV when Pillow is absent)."""
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    from .video_file import import_av

    with import_av().open(path) as container:
        for frame in container.decode(video=0):
            return frame.to_ndarray(format="rgb24")
    raise VideoDecodeError(path, "image has no frame")


class FrameFolderReader:
    """Read a video stored as a folder of images, one per frame (``image_00001.jpg`` ...).

    Frames are the folder's ``.jpg``/``.jpeg``/``.png`` files in natural order (numbers compare as
    numbers, so ``img_2`` precedes ``img_10``). Only the selected images are decoded.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._names: list[str] | None = None

    def frame_names(self) -> list[str]:
        """The image file names in frame order (listed once, then cached)."""
        if self._names is None:
            try:
                names = [n for n in os.listdir(self.path) if n.lower().endswith(IMAGE_EXTENSIONS)]
            except OSError as exc:
                raise VideoDecodeError(self.path, f"cannot list frame folder: {exc}") from exc
            if not names:
                raise VideoDecodeError(self.path, "frame folder holds no .jpg/.jpeg/.png images")
            self._names = sorted(names, key=_natural_key)
        return self._names

    def read(self, select: Selector, num_frames: int | None = None) -> tuple[torch.Tensor, int]:
        """Decode the images ``select(n)`` chooses; see :class:`~.frame_reader.FrameReader`.

        ``num_frames`` is ignored: listing the folder gives the count for free.
        """
        names = self.frame_names()
        n = len(names)
        idx = check_indices(self.path, select(n), n)
        unique, inverse = np.unique(idx, return_inverse=True)
        arrays = []
        for i in unique:
            file = os.path.join(self.path, names[int(i)])
            try:
                arrays.append(_load_image(file))
            except (OSError, ValueError, SyntaxError) as exc:  # what Pillow/PyAV raise for bad data
                raise VideoDecodeError(self.path, f"cannot decode frame {file}: {exc}") from exc
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise VideoDecodeError(self.path, f"frames differ in size: {sorted(shapes)}")
        return gather_frames(arrays, inverse, idx.shape), n
