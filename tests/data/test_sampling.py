"""Temporal sampling: stride, random position, loop padding, non-overlapping test clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stc_ext.data import (
    center_clip_indices,
    clip_span,
    non_overlapping_clip_indices,
    train_clip_indices,
)


@pytest.mark.parametrize("frames, stride", [(16, 1), (16, 2), (5, 3), (1, 4), (7, 16)])
def test_train_clip_spacing_and_range(frames, stride):
    gen = torch.Generator().manual_seed(0)
    n = clip_span(frames, stride) + 9
    for _ in range(20):
        idx = train_clip_indices(n, frames, stride, gen)
        assert idx.shape == (frames,) and idx.dtype == np.int64
        assert idx.min() >= 0 and idx.max() < n
        np.testing.assert_array_equal(np.diff(idx), np.full(frames - 1, stride))


def test_train_clip_start_is_uniform_over_all_positions():
    gen = torch.Generator().manual_seed(1)
    n, frames, stride = 20, 4, 2  # span 7: starts 0..13
    starts = [train_clip_indices(n, frames, stride, gen)[0] for _ in range(2000)]
    counts = np.bincount(starts, minlength=14)
    assert len(counts) == 14 and counts.min() > 100  # every start occurs, none outside


def test_train_clip_uses_the_global_rng_when_no_generator():
    torch.manual_seed(5)
    a = [train_clip_indices(100, 8, 2)[0] for _ in range(5)]
    torch.manual_seed(5)
    b = [train_clip_indices(100, 8, 2)[0] for _ in range(5)]
    assert a == b and len(set(a)) > 1


@pytest.mark.parametrize(
    "n, frames, stride, expected",
    [
        (5, 8, 1, [0, 1, 2, 3, 4, 0, 1, 2]),
        (9, 8, 2, [0, 2, 4, 6, 8, 0, 2, 4]),
        (1, 4, 3, [0, 0, 0, 0]),
        (3, 16, 2, [0, 2] * 8),
    ],
)
def test_short_videos_are_loop_padded(n, frames, stride, expected):
    np.testing.assert_array_equal(train_clip_indices(n, frames, stride), expected)
    np.testing.assert_array_equal(center_clip_indices(n, frames, stride), expected)


def test_center_clip():
    np.testing.assert_array_equal(center_clip_indices(20, 4, 2), [6, 8, 10, 12])
    np.testing.assert_array_equal(center_clip_indices(7, 4, 2), [0, 2, 4, 6])


@pytest.mark.parametrize("n", [1, 7, 31, 32, 33, 64, 100])
@pytest.mark.parametrize("frames, stride", [(16, 2), (4, 1), (3, 5)])
def test_test_clips_cover_every_sampled_position_once(n, frames, stride):
    clips = non_overlapping_clip_indices(n, frames, stride)
    positions = np.arange(0, n, stride)
    assert clips.shape == (int(np.ceil(len(positions) / frames)), frames)
    flat = clips.reshape(-1)
    # read in order, the clips are every sampled position exactly once (no overlap), then the
    # last clip's padding loops back to the start of the video
    np.testing.assert_array_equal(flat[: len(positions)], positions)
    np.testing.assert_array_equal(flat, np.resize(positions, len(flat)))


def test_test_clips_example_and_drop_last_partial():
    np.testing.assert_array_equal(non_overlapping_clip_indices(10, 3, 2), [[0, 2, 4], [6, 8, 0]])
    np.testing.assert_array_equal(
        non_overlapping_clip_indices(10, 3, 2, drop_last_partial=True), [[0, 2, 4]]
    )
    # a video shorter than one clip keeps its single padded clip
    np.testing.assert_array_equal(
        non_overlapping_clip_indices(3, 4, 1, drop_last_partial=True), [[0, 1, 2, 0]]
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: train_clip_indices(10, 0, 1),
        lambda: train_clip_indices(10, 4, 0),
        lambda: train_clip_indices(10, 4.0, 1),
        lambda: non_overlapping_clip_indices(0, 4, 1),
        lambda: clip_span(True, 1),
    ],
)
def test_bad_arguments_are_rejected(call):
    with pytest.raises(ValueError, match="must be a positive int|at least 1 frame"):
        call()
