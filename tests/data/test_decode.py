"""Decoding video files (PyAV) and frame folders: frames, counts, early stop, corrupt inputs."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from data_helpers import frame_ids, indexed_frames, write_frame_folder, write_video

from stc_ext.data import (
    FrameFolderReader,
    VideoDecodeError,
    VideoFileReader,
    count_frames,
    open_video,
    read_video,
)


def test_read_video_file_gives_every_frame_in_order(video_file):
    frames = read_video(video_file)
    assert frames.dtype == torch.uint8
    assert frames.shape == (30, 48, 64, 3)
    np.testing.assert_array_equal(frame_ids(frames), np.arange(30))
    assert count_frames(video_file) == 30


@pytest.mark.parametrize("known", [None, 30])
def test_selector_picks_frames_with_repeats_and_any_shape(video_file, known):
    seen = []

    def select(n: int) -> np.ndarray:
        seen.append(n)
        return np.array([[7, 3, 3], [0, 29, 7]])

    frames, n = VideoFileReader(video_file).read(select, known)
    assert n == 30 and seen == [30]
    assert frames.shape == (2, 3, 48, 64, 3)
    np.testing.assert_array_equal(frame_ids(frames), [[7, 3, 3], [0, 29, 7]])


def test_a_stale_frame_count_is_corrected_without_error(video_file):
    # A cached count larger than the truth (e.g. from a header) must not break the read.
    seen = []

    def select(n: int) -> np.ndarray:
        seen.append(n)
        return np.array([n - 1])

    frames, n = VideoFileReader(video_file).read(select, num_frames=50)
    assert n == 30 and seen == [50, 30]
    np.testing.assert_array_equal(frame_ids(frames), [29])


def test_decoding_stops_after_the_last_needed_frame_and_keeps_only_selected(
    video_file, monkeypatch
):
    reader = VideoFileReader(video_file)
    calls = []
    original = reader.decode

    def spy(wanted, stop):
        kept, decoded = original(wanted, stop)
        calls.append((sorted(wanted), stop, sorted(kept), decoded))
        return kept, decoded

    monkeypatch.setattr(reader, "decode", spy)
    frames, n = reader.read(lambda n: np.array([2, 5, 2]))
    assert n == 30  # the packet count stood in for the unknown length
    assert calls == [([2, 5], 6, [2, 5], 6)]
    np.testing.assert_array_equal(frame_ids(frames), [2, 5, 2])
    assert reader.count_packets() == 30


def test_a_short_video_gets_a_second_pass_for_newly_needed_frames(video_file, monkeypatch):
    reader = VideoFileReader(video_file)
    monkeypatch.setattr(reader, "count_packets", lambda: 40)  # as if the packets lied
    frames, n = reader.read(lambda n: np.array([0, n // 2, n - 1]))
    assert n == 30
    np.testing.assert_array_equal(frame_ids(frames), [0, 15, 29])


def test_selector_out_of_range_is_reported(video_file):
    with pytest.raises(ValueError, match="indices in \\[0, 30\\] for a video of 30 frames"):
        VideoFileReader(video_file).read(lambda n: np.array([0, n]))


@pytest.mark.parametrize("thread_type", ["NONE", "SLICE", "FRAME", "AUTO"])
def test_thread_types_decode_the_same_frames(video_file, thread_type):
    frames, _ = VideoFileReader(video_file, thread_type).read(lambda n: np.arange(n))
    np.testing.assert_array_equal(frame_ids(frames), np.arange(30))


def test_frame_folder_natural_order_and_selection(tmp_path):
    # img_2 must come before img_10; a stray text file is ignored.
    folder = write_frame_folder(tmp_path / "v", indexed_frames(12, 32, 40), "img_{}.jpg")
    (folder / "notes.txt").write_text("not a frame")
    reader = open_video(folder)
    assert isinstance(reader, FrameFolderReader)
    assert reader.frame_names()[:3] == ["img_1.jpg", "img_2.jpg", "img_3.jpg"]
    frames, n = reader.read(lambda n: np.array([11, 1, 10, 1]))
    assert n == 12 and count_frames(folder) == 12
    assert frames.shape == (4, 32, 40, 3) and frames.dtype == torch.uint8
    np.testing.assert_array_equal(frame_ids(frames), [11, 1, 10, 1])


def test_frame_folder_png_and_pyav_fallback_without_pillow(tmp_path, monkeypatch):
    folder = write_frame_folder(tmp_path / "v", indexed_frames(5, 16, 24), "{:03d}.png")
    monkeypatch.setitem(sys.modules, "PIL", None)  # `from PIL import Image` now fails
    frames = read_video(folder)
    np.testing.assert_array_equal(frame_ids(frames), np.arange(5))


def test_frames_of_different_sizes_in_a_folder_are_rejected(tmp_path):
    folder = write_frame_folder(tmp_path / "v", indexed_frames(2, 16, 24))
    write_frame_folder(folder, indexed_frames(3, 32, 24)[2:], "image_00003.jpg")
    with pytest.raises(VideoDecodeError, match="frames differ in size"):
        read_video(folder)


def _truncated(src, dst, keep: float):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda d, v: d.joinpath("empty.mp4").write_bytes(b"") and d / "empty.mp4", "cannot open"),
        (
            lambda d, v: d.joinpath("junk.mp4").write_bytes(b"\x00junk" * 99) and d / "junk.mp4",
            "cannot open",
        ),
        # moov atom at the end: cutting the file loses the index, nothing decodes.
        (lambda d, v: _truncated(v, d / "cut.mp4", 0.5), "cannot open"),
        (lambda d, v: d / "absent.mp4", "cannot open"),
    ],
    ids=["empty", "garbage", "truncated", "absent"],
)
def test_undecodable_files_raise_with_their_path(tmp_path, video_file, make, reason):
    path = make(tmp_path, video_file)
    with pytest.raises(VideoDecodeError, match=reason) as info:
        read_video(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)


def test_truncated_tail_keeps_the_decodable_frames(tmp_path):
    # With the index at the front, a cut file still decodes up to the cut.
    full = write_video(tmp_path / "full.mp4", indexed_frames(60, 32, 32), faststart=True)
    cut = _truncated(full, tmp_path / "cut.mp4", 0.6)
    frames = read_video(cut)
    assert 0 < frames.shape[0] < 60
    np.testing.assert_array_equal(frame_ids(frames), np.arange(frames.shape[0]))


def test_file_without_video_stream(tmp_path):
    import av

    path = tmp_path / "audio.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(VideoDecodeError, match="no video stream"):
        read_video(path)


def test_empty_or_corrupt_frame_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoDecodeError, match="holds no .jpg"):
        read_video(empty)
    bad = write_frame_folder(tmp_path / "bad", indexed_frames(3, 16, 16))
    (bad / "image_00002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(VideoDecodeError, match="image_00002.jpg"):
        read_video(bad)
    # frames not selected are never opened
    frames, _ = open_video(bad).read(lambda n: np.array([0, 2]))
    np.testing.assert_array_equal(frame_ids(frames), [0, 2])


def test_decode_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(VideoDecodeError("/x/v.mp4", "boom")))
    assert (err.path, err.reason, str(err)) == ("/x/v.mp4", "boom", "/x/v.mp4: boom")
