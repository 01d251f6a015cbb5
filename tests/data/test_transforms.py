"""Spatial transforms: uint8 resize keeping aspect, 5-position crop + flip shared by all frames,
normalisation last, centre crop; vectorised results equal a frame-by-frame reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stc_ext.data import IMAGENET_MEAN, IMAGENET_STD, EvalTransform, TrainTransform, normalize
from stc_ext.data.transforms import (
    FIVE_CROP_POSITIONS,
    center_crop,
    five_crop_offset,
    resize_short_side,
)


def _clip(t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (t, h, w, 3), dtype=torch.uint8, generator=g)


def _resize_frame(frame: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Reference: one frame at a time, through float."""
    x = frame.permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return y[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((240, 320), (122, 163)),
        ((320, 240), (163, 122)),
        ((90, 160), (122, 217)),
        ((122, 200), (122, 200)),
        ((128, 128), (122, 122)),
    ],
)
def test_resize_short_side_keeps_aspect_and_uint8(shape, expected):
    clip = _clip(3, *shape)
    out = resize_short_side(clip, 122)
    assert out.dtype == torch.uint8 and out.shape == (3, *expected, 3)
    for t in range(3):  # vectorised == per frame, within one rounding step
        ref = _resize_frame(clip[t], expected)
        assert (out[t].int() - ref.int()).abs().max() <= 1


def test_resize_only_upscale_leaves_large_frames():
    big, small = _clip(2, 240, 320), _clip(2, 100, 150)
    assert resize_short_side(big, 122, only_upscale=True) is big
    assert resize_short_side(small, 122, only_upscale=True).shape == (2, 122, 183, 3)


def test_resize_accepts_leading_dims():
    clips = _clip(6, 60, 80).reshape(2, 3, 60, 80, 3)
    out = resize_short_side(clips, 30)
    assert out.shape == (2, 3, 30, 40, 3)
    torch.testing.assert_close(out[1, 2], resize_short_side(clips[1, 2:3], 30)[0])


def test_five_crop_offsets():
    assert [five_crop_offset(122, 163, 112, p) for p in FIVE_CROP_POSITIONS] == [
        (5, 25),
        (0, 0),
        (0, 51),
        (10, 0),
        (10, 51),
    ]
    with pytest.raises(ValueError, match="does not fit frames of 100x163"):
        five_crop_offset(100, 163, 112, "center")
    with pytest.raises(ValueError, match="position must be one of"):
        five_crop_offset(122, 163, 112, "middle")


def test_normalize_values_layout_and_range():
    clip = _clip(4, 8, 6)
    out = normalize(clip, IMAGENET_MEAN, IMAGENET_STD)
    assert out.dtype == torch.float32 and out.shape == (3, 4, 8, 6) and out.is_contiguous()
    for c in range(3):
        ref = (clip[..., c].double() / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        torch.testing.assert_close(out[c].double(), ref, rtol=0, atol=1e-5)
    lo = torch.tensor([(0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)])
    hi = torch.tensor([(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)])
    flat = out.reshape(3, -1)
    assert bool((flat.min(1).values >= lo - 1e-5).all() and (flat.max(1).values <= hi + 1e-5).all())
    with pytest.raises(ValueError, match="std > 0"):
        normalize(clip, (0.5, 0.5, 0.5), (0.2, 0.0, 0.2))
    with pytest.raises(TypeError, match="uint8"):
        normalize(clip.float())


def _candidates(frame: torch.Tensor, size: int = 112) -> list[torch.Tensor]:
    """The 10 possible training views of one (already resized) frame, normalised."""
    views = []
    for p in FIVE_CROP_POSITIONS:
        top, left = five_crop_offset(frame.shape[0], frame.shape[1], size, p)
        view = frame[top : top + size, left : left + size]
        views += [view, view.flip(1)]
    return [normalize(v[None])[:, 0] for v in views]


def test_train_crop_and_flip_are_shared_by_all_frames_and_cover_all_ten_views():
    # Frames differ only by a per-frame brightness step, so every frame must show the same view.
    base = _clip(1, 122, 163)[0].clamp(0, 200)
    clip = torch.stack([base + 10 * t for t in range(5)])  # uint8, (5, 122, 163, 3)
    candidates = [_candidates(clip[t]) for t in range(5)]
    gen = torch.Generator().manual_seed(0)
    transform = TrainTransform()
    seen = set()
    for _ in range(60):
        out = transform(clip, generator=gen)
        assert out.shape == (3, 5, 112, 112) and out.dtype == torch.float32
        views = [[torch.equal(out[:, t], cand) for cand in candidates[t]] for t in range(5)]
        chosen = {row.index(True) for row in views}
        assert len(chosen) == 1, "frames of one clip got different crops or flips"
        seen |= chosen
    assert seen == set(range(10))


def test_train_without_flip_never_mirrors():
    clip = _clip(2, 122, 140)
    candidates = _candidates(clip[0])
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        out = TrainTransform(flip=False)(clip, generator=gen)
        index = [torch.equal(out[:, 0], c) for c in candidates].index(True)
        assert index % 2 == 0


def test_eval_transform_is_resize_then_centre_crop():
    clips = _clip(2 * 4, 240, 320).reshape(2, 4, 240, 320, 3)
    out = EvalTransform()(clips)
    assert out.shape == (2, 3, 4, 112, 112) and out.dtype == torch.float32
    ref = normalize(center_crop(resize_short_side(clips[1], 122), 112))
    torch.testing.assert_close(out[1], ref)
    # the centre crop of a 122x163 frame starts at (5, 25)
    resized = resize_short_side(clips[0, :1], 122)
    torch.testing.assert_close(out[0, :, :1], normalize(resized[:, 5:117, 25:137]))


def test_crop_larger_than_short_side_is_rejected():
    with pytest.raises(ValueError, match="crop \\(130\\) must not exceed short_side \\(122\\)"):
        TrainTransform(crop=130)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: TrainTransform(crop=0), "TrainTransform: crop must be a positive int, got 0"),
        (
            lambda: EvalTransform(short_side=12.5),
            "EvalTransform: short_side must be a positive int, got 12.5",
        ),
        (
            lambda: resize_short_side(_clip(1, 8, 8), 0),
            "resize_short_side: size must be a positive int, got 0",
        ),
    ],
)
def test_sizes_must_be_positive_ints(make, message):
    with pytest.raises(ValueError, match=message):
        make()
