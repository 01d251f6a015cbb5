"""Pair sampling: positives share video and time span, negatives do not, 1:1, seeded."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from transfer_helpers import TIMECODE_FRAMES, read_timecode

from stc_ext.data import SkippedVideo, VideoDecodeError, read_video_folder
from stc_ext.train import ConfigError
from stc_ext.train.data import SeededDataset, sample_seed
from stc_ext.transfer import (
    PairBatch,
    PairDataset,
    collate_pairs,
    held_out_split,
    plan_pair,
    teacher_frame_positions,
)


def _plans(num_videos: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    return [plan_pair(i, num_videos, generator) for i in range(2 * num_videos)]


def test_plans_are_balanced_and_negatives_pair_different_videos():
    plans = _plans(7, seed=1)
    positives = [p for p in plans if p.positive]
    negatives = [p for p in plans if not p.positive]
    assert len(positives) == len(negatives) == 7
    assert all(p.frame_video == p.clip_video for p in positives)
    assert all(p.frame_video != p.clip_video for p in negatives)
    # Every video anchors exactly one positive and one negative per epoch.
    assert Counter(p.frame_video for p in plans) == Counter({v: 2 for v in range(7)})


def test_negative_partners_are_drawn_uniformly_from_the_other_videos():
    generator = torch.Generator().manual_seed(3)
    partners = Counter(plan_pair(3, 4, generator).clip_video for _ in range(3000))
    assert set(partners) == {0, 2, 3}  # pair 3 is anchored on video 1
    assert all(abs(n / 3000 - 1 / 3) < 0.04 for n in partners.values())


def test_plans_are_a_function_of_the_seed():
    assert _plans(20, seed=5) == _plans(20, seed=5)
    assert _plans(20, seed=5) != _plans(20, seed=6)


def test_plan_arguments_are_checked():
    with pytest.raises(ValueError, match="at least 2 videos"):
        plan_pair(0, 1)
    with pytest.raises(IndexError, match="out of range"):
        plan_pair(8, 4)


@pytest.mark.parametrize(("frames", "teacher_frames"), [(16, 16), (16, 8), (8, 3), (5, 1)])
def test_teacher_frames_span_the_clip(frames, teacher_frames):
    positions = teacher_frame_positions(frames, teacher_frames)
    assert len(positions) == teacher_frames and np.all(np.diff(positions) >= 0)
    assert positions.min() >= 0 and positions.max() <= frames - 1
    if teacher_frames > 1:
        assert positions[0] == 0 and positions[-1] == frames - 1
    if teacher_frames == frames:
        assert np.array_equal(positions, np.arange(frames))


def _timecodes(frames: torch.Tensor) -> list[tuple[int, int]]:
    return [read_timecode(frame) for frame in frames]


@pytest.mark.parametrize("teacher_frames", [4, 3])
def test_positives_share_video_and_span_negatives_do_not(timecode_videos, teacher_frames):
    dataset = PairDataset(
        read_video_folder(timecode_videos),
        frames=4,
        stride=3,
        teacher_frames=teacher_frames,
        short_side=32,
        crop=32,
    )
    starts = set()
    for seed in range(6):
        for index in range(len(dataset)):
            generator = torch.Generator().manual_seed(seed)
            plan, teacher, clip = dataset.read_pair(index, generator)
            assert teacher.shape == (teacher_frames, 32, 32, 3) and clip.shape == (4, 32, 32, 3)
            teacher_codes, clip_codes = _timecodes(teacher), _timecodes(clip)
            clip_videos = {v for v, _ in clip_codes}
            teacher_videos = {v for v, _ in teacher_codes}
            assert clip_videos == {plan.clip_video} and teacher_videos == {plan.frame_video}
            clip_times = [t for _, t in clip_codes]
            assert np.all(np.diff(clip_times) == 3)  # 4 frames at stride 3
            if plan.positive:
                # The same time span: the teacher's frames are clip frames, first to last.
                positions = teacher_frame_positions(4, teacher_frames)
                assert [t for _, t in teacher_codes] == [clip_times[p] for p in positions]
                starts.add(clip_times[0])
            else:
                assert plan.frame_video != plan.clip_video
            assert max(clip_times) < TIMECODE_FRAMES
    assert len(starts) > 3  # positions are random, not always the same span


def test_train_items_are_a_function_of_the_item_seed(unlabeled_videos):
    dataset = SeededDataset(
        PairDataset(
            read_video_folder(unlabeled_videos),
            frames=4,
            stride=2,
            teacher_frames=4,
            short_side=32,
            crop=28,
        )
    )
    key = (3, sample_seed(7, 0, 3))
    first, second = dataset[key], dataset[key]
    assert first[2] == 0  # odd index: a negative
    assert first[0].shape == (3, 4, 28, 28) and first[1].shape == (3, 4, 28, 28)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    other = dataset[(3, sample_seed(7, 1, 3))]  # the next epoch resamples the pair
    assert not torch.equal(first[1], other[1])


def test_validation_pairs_are_fixed(unlabeled_videos):
    dataset = PairDataset(
        read_video_folder(unlabeled_videos),
        frames=4,
        stride=2,
        teacher_frames=4,
        mode="val",
        short_side=32,
        crop=28,
    )
    torch.manual_seed(0)
    first = [dataset[i] for i in range(4)]
    torch.manual_seed(1)  # the global RNG plays no part
    second = [dataset[i] for i in range(4)]
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    assert [item[2] for item in first] == [1, 0, 1, 0]


def test_undecodable_videos_are_skipped_or_raise(timecode_videos, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("video0.mp4", "video1.mp4"):
        (folder / name).write_bytes((timecode_videos / name).read_bytes())
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    videos = read_video_folder(folder)
    broken = [i for i, r in enumerate(videos.records) if r.path.name == "broken.mp4"][0]
    lenient = PairDataset(
        videos, frames=4, stride=1, teacher_frames=4, mode="val", short_side=32, crop=32
    )
    item = lenient[2 * broken]  # its positive pair
    assert isinstance(item, SkippedVideo) and "broken.mp4" in item.path
    good = [2 * v for v in range(3) if v != broken]  # positives: one video each
    batch, skipped = collate_pairs([lenient[good[0]], item, lenient[good[1]]])
    assert isinstance(batch, PairBatch) and skipped == [item]
    assert batch.frames.shape[0] == batch.clips.shape[0] == batch.labels.shape[0] == 2
    assert collate_pairs([item]) == (None, [item])
    strict = PairDataset(
        videos,
        frames=4,
        stride=1,
        teacher_frames=4,
        mode="val",
        short_side=32,
        crop=32,
        strict=True,
    )
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        strict[2 * broken]


def test_held_out_split_is_stable_and_disjoint(unlabeled_videos):
    videos = read_video_folder(unlabeled_videos)
    train, val = held_out_split(videos, unlabeled_videos, 0.25)
    assert val is not None and len(val.records) == 3 and len(train.records) == 9
    assert not {r.path for r in train.records} & {r.path for r in val.records}
    again = held_out_split(read_video_folder(unlabeled_videos), unlabeled_videos, 0.25)[1]
    assert [r.path for r in again.records] == [r.path for r in val.records]
    assert held_out_split(videos, unlabeled_videos, 0.0) == (videos, None)
    with pytest.raises(ConfigError, match="too few"):
        held_out_split(videos, unlabeled_videos, 0.9)
