"""Spatial transforms on whole clips (paper §4.2), vectorised over frames.

Clips stay ``uint8`` RGB channels-last, ``(..., T, H, W, 3)`` as the decoder gives them, through
resizing, cropping and flipping; :func:`normalize` is the last step and the only one that makes
floats, returning the network layout ``(..., 3, T, H, W)`` ``float32``. One crop position and one
flip decision apply to every frame of a clip.

Training (:class:`TrainTransform`): resize so the short side is ``short_side`` (122) keeping the
aspect ratio, take a 112×112 crop at one of 5 positions (4 corners + centre) chosen at random,
flip horizontally with probability 1/2, normalise. Testing (:class:`EvalTransform`): the same
resize, a centre crop, normalise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..validation import check_int

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "FIVE_CROP_POSITIONS",
    "EvalTransform",
    "TrainTransform",
    "center_crop",
    "crop",
    "five_crop_offset",
    "hflip",
    "normalize",
    "resize_short_side",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
FIVE_CROP_POSITIONS: tuple[str, ...] = (
    "center",
    "top_left",
    "top_right",
    "bottom_left",
    "bottom_right",
)


def _check_clip(video: torch.Tensor, where: str) -> None:
    if video.dtype != torch.uint8:
        raise TypeError(f"{where}: expected a uint8 clip, got dtype {video.dtype}")
    if video.dim() < 3 or video.shape[-1] != 3:
        raise ValueError(
            f"{where}: expected a clip of shape (..., H, W, 3) (RGB, channels last), "
            f"got shape {tuple(video.shape)}"
        )


def resize_short_side(
    video: torch.Tensor, size: int = 122, only_upscale: bool = False
) -> torch.Tensor:
    """Resize every frame so its short side is ``size`` pixels, keeping the aspect ratio.

    Args:
        video: ``uint8 (..., H, W, 3)``.
        size: the target short side.
        only_upscale: leave frames whose short side is already ``>= size`` untouched (the
            paper's literal "resize to 122 px when smaller"). The default also shrinks larger
            frames, so that a 112 crop keeps most of the scene, as in 3D-ResNets.

    Returns:
        ``uint8 (..., H', W', 3)`` with ``min(H', W') == size`` (bilinear, antialiased).
    """
    _check_clip(video, "resize_short_side")
    check_int("resize_short_side", "size", size)
    h, w = video.shape[-3], video.shape[-2]
    short = min(h, w)
    if short == size or (only_upscale and short >= size):
        return video
    new_h = size if h == short else max(size, round(h * size / short))
    new_w = size if w == short else max(size, round(w * size / short))
    lead = video.shape[:-3]
    # (N, H, W, 3) -> (N, 3, H, W) is a channels-last view: torch's uint8 antialiased bilinear
    # kernel works on it directly, no float copy.
    flat = video.reshape(-1, h, w, 3).permute(0, 3, 1, 2)
    out = F.interpolate(
        flat, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False
    )
    return out.permute(0, 2, 3, 1).reshape(*lead, new_h, new_w, 3)


def five_crop_offset(height: int, width: int, size: int, position: str) -> tuple[int, int]:
    """``(top, left)`` of a ``size``×``size`` crop at one of :data:`FIVE_CROP_POSITIONS`."""
    if size > height or size > width:
        raise ValueError(
            f"crop: a {size}x{size} crop does not fit frames of {height}x{width} "
            "(resize them first)"
        )
    bottom, right = height - size, width - size
    offsets = {
        "center": (bottom // 2, right // 2),
        "top_left": (0, 0),
        "top_right": (0, right),
        "bottom_left": (bottom, 0),
        "bottom_right": (bottom, right),
    }
    if position not in offsets:
        raise ValueError(f"crop: position must be one of {FIVE_CROP_POSITIONS}, got {position!r}")
    return offsets[position]


def crop(video: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    """The ``size``×``size`` window at ``(top, left)`` of every frame (a view, no copy).

    ``video``: ``(..., H, W, 3)``; returns ``(..., size, size, 3)``.
    """
    h, w = video.shape[-3], video.shape[-2]
    if top < 0 or left < 0 or top + size > h or left + size > w:
        raise ValueError(
            f"crop: window top={top}, left={left}, size={size} leaves frames of {h}x{w}"
        )
    return video[..., top : top + size, left : left + size, :]


def center_crop(video: torch.Tensor, size: int = 112) -> torch.Tensor:
    """The centred ``size``×``size`` window of every frame (a view): ``(..., size, size, 3)``."""
    top, left = five_crop_offset(video.shape[-3], video.shape[-2], size, "center")
    return crop(video, top, left, size)


def hflip(video: torch.Tensor) -> torch.Tensor:
    """Mirror every frame left-right: ``(..., H, W, 3)`` -> same shape (a copy)."""
    return video.flip(-2)


def normalize(
    video: torch.Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """``uint8 (..., T, H, W, 3)`` -> ``float32 (..., 3, T, H, W)`` as ``(x / 255 - mean) / std``.

    ``mean`` and ``std`` are per RGB channel, on the [0, 1] scale.
    """
    _check_clip(video, "normalize")
    if video.dim() < 4:
        raise ValueError(
            f"normalize: expected a clip (..., T, H, W, 3), got shape {tuple(video.shape)}"
        )
    mean_t = torch.as_tensor(mean, dtype=torch.float32)
    std_t = torch.as_tensor(std, dtype=torch.float32)
    if mean_t.shape != (3,) or std_t.shape != (3,) or bool((std_t <= 0).any()):
        raise ValueError(
            f"normalize: mean and std need 3 values each, std > 0; got mean={tuple(mean)}, "
            f"std={tuple(std)}"
        )
    scale = 1.0 / (255.0 * std_t)
    shift = mean_t / std_t
    out = torch.movedim(video, -1, -4).to(torch.float32, memory_format=torch.contiguous_format)
    view = (3,) + (1,) * 3
    return out.mul_(scale.view(view)).sub_(shift.view(view))


def _check_sizes(where: str, short_side: int, crop_size: int) -> None:
    check_int(where, "short_side", short_side)
    check_int(where, "crop", crop_size)
    if crop_size > short_side:
        raise ValueError(f"{where}: crop ({crop_size}) must not exceed short_side ({short_side})")


@dataclass
class TrainTransform:
    """Resize, random 5-position crop + flip (same for all frames), normalise.

    Call with a clip ``uint8 (T, H, W, 3)`` (or several, ``(N, T, H, W, 3)``, all getting the
    same crop); returns ``float32 (3, T, crop, crop)`` (``(N, 3, T, crop, crop)``).
    """

    short_side: int = 122
    crop: int = 112
    flip: bool = True
    only_upscale: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        _check_sizes("TrainTransform", self.short_side, self.crop)

    def __call__(
        self, video: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        video = resize_short_side(video, self.short_side, self.only_upscale)
        draws = torch.randint(0, 2 * len(FIVE_CROP_POSITIONS), (1,), generator=generator).item()
        position = FIVE_CROP_POSITIONS[draws % len(FIVE_CROP_POSITIONS)]
        top, left = five_crop_offset(video.shape[-3], video.shape[-2], self.crop, position)
        video = crop(video, top, left, self.crop)
        if self.flip and draws >= len(FIVE_CROP_POSITIONS):
            video = hflip(video)
        return normalize(video, self.mean, self.std)


@dataclass
class EvalTransform:
    """Resize and centre crop, normalise (paper §4.2 testing).

    Call with ``uint8 (..., T, H, W, 3)``; returns ``float32 (..., 3, T, crop, crop)``.
    """

    short_side: int = 122
    crop: int = 112
    only_upscale: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        _check_sizes("EvalTransform", self.short_side, self.crop)

    def __call__(
        self, video: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        video = resize_short_side(video, self.short_side, self.only_upscale)
        return normalize(center_crop(video, self.crop), self.mean, self.std)
