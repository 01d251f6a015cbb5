"""VideoClipDataset + ClipLoader end to end: decode -> sample -> transform, the three modes,
lenient skipping with one report per epoch, strict errors, collate and per-video averaging."""

from __future__ import annotations

import logging
import traceback

import numpy as np
import pytest
import torch
from data_helpers import frame_ids, indexed_frames, write_frame_folder, write_video

from stc_ext.data import (
    Annotation,
    ClipBatch,
    ClipLoader,
    EvalTransform,
    MissingFilesError,
    SkippedVideo,
    VideoBatch,
    VideoClipDataset,
    VideoDecodeError,
    VideoRecord,
    average_clip_scores,
    collate_clips,
    normalize,
)


@pytest.fixture
def media(tmp_path):
    """Three good videos (two files, one frame folder) and one corrupt file, UCF-style labels."""
    good_a = write_video(tmp_path / "A" / "a.mp4", indexed_frames(40, 64, 96))
    good_b = write_video(tmp_path / "B" / "b.mp4", indexed_frames(9, 64, 96))
    folder = write_frame_folder(tmp_path / "B" / "c", indexed_frames(20, 64, 96))
    broken = tmp_path / "A" / "broken.mp4"
    broken.write_bytes(b"\x00" * 512)
    records = [
        VideoRecord(good_a, 0),
        VideoRecord(broken, 0),
        VideoRecord(good_b, 1),
        VideoRecord(folder, 1),
    ]
    return Annotation(records, ["A", "B"], "fixture split")


class _Identity:
    """Keep frames uint8 (T, H, W, 3) so tests can read which frames were sampled."""

    def __call__(self, video, generator=None):
        return video


def test_train_items_shapes_dtypes_and_ranges(media):
    ds = VideoClipDataset(media, frames=8, stride=2, mode="train")
    clip, label = ds[0]
    assert clip.shape == (3, 8, 112, 112) and clip.dtype == torch.float32 and label == 0
    lo = normalize(torch.zeros(1, 1, 1, 3, dtype=torch.uint8)).reshape(3)
    hi = normalize(torch.full((1, 1, 1, 3), 255, dtype=torch.uint8)).reshape(3)
    assert bool((clip.amin(dim=(1, 2, 3)) >= lo - 1e-5).all())
    assert bool((clip.amax(dim=(1, 2, 3)) <= hi + 1e-5).all())
    assert ds.classes == ["A", "B"] and ds.labels == [0, 0, 1, 1] and len(ds) == 4


def test_train_frames_follow_stride_and_loop_padding(media):
    ds = VideoClipDataset(media, frames=8, stride=3, mode="train", transform=_Identity())
    torch.manual_seed(0)
    starts = set()
    for _ in range(15):
        ids = frame_ids(ds[0][0])
        np.testing.assert_array_equal(np.diff(ids), 3)
        assert 0 <= ids[0] <= 40 - 22
        starts.add(ids[0])
    assert len(starts) > 5  # the temporal position is random
    # 9 frames at stride 3 -> positions 0, 3, 6, looped
    np.testing.assert_array_equal(frame_ids(ds[2][0]), [0, 3, 6, 0, 3, 6, 0, 3])


def test_frame_folder_source(media):
    ds = VideoClipDataset(media, frames=4, stride=5, mode="val", transform=_Identity())
    np.testing.assert_array_equal(frame_ids(ds[3][0]), [2, 7, 12, 17])  # centred in 20 frames


def test_test_mode_returns_every_non_overlapping_clip(media):
    ds = VideoClipDataset(media, frames=8, stride=2, mode="test", transform=_Identity())
    frames, label, index = ds[0]
    assert (label, index) == (0, 0)
    ids = frame_ids(frames)
    assert ids.shape == (3, 8)  # 20 positions -> 3 clips, the last one padded
    np.testing.assert_array_equal(ids.reshape(-1)[:20], np.arange(0, 40, 2))
    clips, _, _ = VideoClipDataset(media, frames=8, stride=2, mode="test")[0]
    assert clips.shape == (3, 3, 8, 112, 112) and clips.dtype == torch.float32
    # every clip gets the same centre crop as the evaluation transform alone gives
    torch.testing.assert_close(clips, EvalTransform()(frames))


def test_lenient_mode_skips_and_the_loader_reports_once_per_epoch(media, caplog):
    ds = VideoClipDataset(media, frames=4, stride=2, mode="train")
    item = ds[1]
    assert isinstance(item, SkippedVideo)
    assert item.index == 1 and item.path.endswith("broken.mp4") and "cannot open" in item.reason
    loader = ClipLoader(ds, batch_size=2, shuffle=False, drop_last=False)
    for epoch in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="stc_ext.data"):
            batches = list(loader)
        assert [len(b.labels) for b in batches] == [1, 2]  # the broken video is dropped
        assert all(isinstance(b, ClipBatch) for b in batches)
        assert batches[1].clips.shape == (2, 3, 4, 112, 112)
        reports = [r for r in caplog.records if "skipped" in r.getMessage()]
        assert len(reports) == 1, f"epoch {epoch}: expected one report"
        message = reports[0].getMessage()
        assert "broken.mp4" in message and "cannot open" in message and "1 undecodable" in message
        assert [s.index for s in loader.last_epoch_skipped] == [1]


def test_strict_mode_raises_with_the_path(media):
    ds = VideoClipDataset(media, frames=4, stride=2, strict=True)
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        ds[1]
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        list(ClipLoader(ds, batch_size=4, shuffle=False))


def test_worker_processes_report_skips_and_raise_strict_errors(media, caplog):
    ds = VideoClipDataset(media, frames=4, stride=2, mode="test")
    loader = ClipLoader(ds, batch_size=1, num_workers=2)
    with caplog.at_level(logging.WARNING, logger="stc_ext.data"):
        batches = list(loader)
    assert sorted(int(b.indices[0]) for b in batches) == [0, 2, 3]
    assert [s.index for s in loader.last_epoch_skipped] == [1]
    assert sum("broken.mp4" in r.getMessage() for r in caplog.records) == 1
    strict = ClipLoader(
        VideoClipDataset(media, frames=4, stride=2, strict=True),
        batch_size=4,
        shuffle=False,
        num_workers=1,
    )
    with pytest.raises(VideoDecodeError, match="broken.mp4") as raised:  # from the worker
        list(strict)
    # The traceback holds both loaders in reference cycles. Left to the cyclic GC (during some
    # later test), a DataLoader's queues are finalized before its iterator, the stop signal
    # never reaches the workers and each is killed after a 5 s join timeout (15 s here).
    # Break the cycles so that reference counting shuts the workers down now, in order.
    traceback.clear_frames(raised.tb)
    del raised, loader, strict


def test_missing_files_are_reported_before_any_decoding(media, tmp_path, caplog):
    records = list(media.records) + [
        VideoRecord(tmp_path / "gone1.mp4", 0),
        VideoRecord(tmp_path / "gone2.mp4", 1),
    ]
    ann = Annotation(records, media.classes, "with gaps")
    with pytest.raises(MissingFilesError) as info:
        VideoClipDataset(ann, strict=True)
    assert [p.rsplit("/", 1)[-1] for p in info.value.missing] == ["gone1.mp4", "gone2.mp4"]
    with caplog.at_level(logging.WARNING, logger="stc_ext.data"):
        ds = VideoClipDataset(ann)
    assert len(ds) == 4
    assert (
        sum("gone1.mp4" in r.getMessage() and "gone2.mp4" in r.getMessage() for r in caplog.records)
        == 1
    )


def test_collate_test_batches_and_average_per_video(media):
    ds = VideoClipDataset(media, frames=8, stride=2, mode="test")
    batch, skipped = collate_clips([ds[i] for i in range(4)])
    assert isinstance(batch, VideoBatch) and [s.index for s in skipped] == [1]
    # video 0: 40 frames -> 3 clips; video 2: 9 frames -> 1; folder 3: 20 frames -> 2
    assert batch.clips.shape == (6, 3, 8, 112, 112)
    assert batch.clip_to_video.tolist() == [0, 0, 0, 1, 2, 2]
    assert batch.labels.tolist() == [0, 1, 1] and batch.indices.tolist() == [0, 2, 3]
    scores = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    torch.testing.assert_close(
        average_clip_scores(scores, batch.clip_to_video, 3),
        torch.tensor([[2.0, 3.0], [6.0, 7.0], [9.0, 10.0]]),
    )
    assert collate_clips([ds[1]]) == (None, [ds[1]])


def test_dataset_argument_validation(media, tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        VideoClipDataset(media, mode="eval")
    with pytest.raises(ValueError, match="frames must be a positive int, got 0"):
        VideoClipDataset(media, frames=0)
    with pytest.raises(TypeError, match="read_video_folder"):
        VideoClipDataset(str(tmp_path))
    with pytest.raises(IndexError):
        VideoClipDataset(media)[4]
    unlabeled = VideoClipDataset([media.records[0].path], frames=2, stride=1)
    assert unlabeled[0][1] == -1 and unlabeled.classes == []


@pytest.mark.parametrize("batch_size", [0, 2.0, True])
def test_loader_batch_size_must_be_a_positive_int(media, batch_size):
    with pytest.raises(ValueError, match="ClipLoader: batch_size must be a positive int"):
        ClipLoader(VideoClipDataset(media), batch_size=batch_size)
