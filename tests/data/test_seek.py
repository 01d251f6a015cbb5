"""Seeking decode (stc_ext.data.video_file): clips read after a seek equal clips from a full
decode, frame by frame, across codecs and containers; untrustworthy containers fall back."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from data_helpers import moving_frames, write_video

from stc_ext.data import VideoFileReader
from stc_ext.data import video_file as video_file_module
from stc_ext.data.video_file import PacketIndex

FRAMES = 40

# name -> write_video keyword arguments. Each has B-frames or several keyframes (or both).
SEEKABLE = {
    "h264-bframes.mp4": dict(options={"preset": "fast", "g": "8", "bf": "3"}),
    "h264-open-gop.mp4": dict(
        options={"preset": "fast", "x264-params": "keyint=10:open-gop=1:bframes=3"}
    ),
    "h264-bframes.mkv": dict(options={"preset": "fast", "g": "8"}, container_format="matroska"),
    "h264.avi": dict(options={"preset": "fast", "g": "8", "bf": "0"}, container_format="avi"),
    "mpeg4-bframes.avi": dict(
        codec="mpeg4", options={"bf": "2", "g": "12", "qscale": "3"}, container_format="avi"
    ),
    "mjpeg.avi": dict(codec="mjpeg", options={}, pix_fmt="yuvj420p", container_format="avi"),
    "vp9.webm": dict(codec="libvpx-vp9", options={"g": "10"}, container_format="webm"),
}
# MPEG program streams only estimate timestamps after a seek: seen landing on wrong frames.
UNSEEKABLE = {
    "mpeg2.mpg": dict(codec="mpeg2video", options={"bf": "2", "g": "12"}, container_format="mpeg")
}


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each test sees the first fallback warning of every cause."""
    monkeypatch.setattr(video_file_module, "_warned_fallbacks", set())


def _write(tmp_path, name: str, kwargs: dict):
    import av

    codec = kwargs.get("codec", "libx264")
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    return write_video(tmp_path / name, moving_frames(FRAMES, 48, 64), **kwargs)


def _full_decode(path) -> np.ndarray:
    frames, n = VideoFileReader(path, seek=False).read(lambda n: np.arange(n))
    assert n == FRAMES
    return frames.numpy()


def _spy_seeks(reader: VideoFileReader) -> list[tuple[int, bool]]:
    """Record ``(start, succeeded)`` of every seek-and-decode the reader attempts."""
    calls: list[tuple[int, bool]] = []
    original = reader._decode_from

    def spy(index, start, wanted, stop):
        try:
            result = original(index, start, wanted, stop)
        except Exception:
            calls.append((start, False))
            raise
        calls.append((start, True))
        return result

    reader._decode_from = spy
    return calls


@pytest.mark.slow  # > 1 s idle; make test runs it
@pytest.mark.parametrize("known_length", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize("name", sorted(SEEKABLE))
def test_seeked_clips_equal_a_full_decode_frame_by_frame(tmp_path, caplog, name, known_length):
    path = _write(tmp_path, name, SEEKABLE[name])
    full = _full_decode(path)
    seek_points = VideoFileReader(path).packet_index().seek_points
    assert seek_points, f"{name}: the test video needs keyframes after the first"
    caplog.set_level(logging.WARNING, logger="stc_ext.data")
    for first in range(FRAMES - 4):
        wanted = np.array([first, first + 1, first + 3, first + 3])  # a repeat, a gap
        reader = VideoFileReader(path)
        seeks = _spy_seeks(reader)
        frames, n = reader.read(lambda n, w=wanted: w, FRAMES if known_length else None)
        assert n == FRAMES
        np.testing.assert_array_equal(frames.numpy(), full[wanted], err_msg=f"first={first}")
        # Every read past the first seek point seeked, to the last one before it, and the
        # check of the packets and frames passed (no fallback).
        expected = [s for s in seek_points if s <= first]
        attempted = [(s, ok) for s, ok in seeks if s > 0]
        assert attempted == ([(expected[-1], True)] if expected else []), f"first={first}"
    assert not caplog.records  # no fallback warning


@pytest.mark.parametrize("name", sorted(UNSEEKABLE))
def test_a_container_whose_seeks_land_wrong_falls_back_and_says_so_once(tmp_path, caplog, name):
    path = _write(tmp_path, name, UNSEEKABLE[name])
    full = _full_decode(path)
    caplog.set_level(logging.WARNING, logger="stc_ext.data")
    for first in range(0, FRAMES - 4, 3):
        clip = np.arange(first, first + 4)
        frames, _ = VideoFileReader(path).read(lambda n, c=clip: c, FRAMES)
        np.testing.assert_array_equal(frames.numpy(), full[first : first + 4])
    warnings = [r for r in caplog.records if "instead of seeking" in r.getMessage()]
    assert 1 <= len(warnings) <= 2  # one per cause seen, not one per read
    assert str(path) in warnings[0].getMessage()


def test_an_index_that_disagrees_with_the_packets_read_falls_back(tmp_path, caplog):
    path = _write(tmp_path, "v.mp4", SEEKABLE["h264-bframes.mp4"])
    full = _full_decode(path)
    reader = VideoFileReader(path)
    good = reader.packet_index()
    # Same timestamps, one packet size off: the packets after the seek no longer match.
    sizes = list(good.packet_sizes)
    sizes[-1] += 1
    reader._index = PacketIndex(good.packet_pts, tuple(sizes), good.seek_points, None, FRAMES)
    seeks = _spy_seeks(reader)
    caplog.set_level(logging.WARNING, logger="stc_ext.data")
    frames, _ = reader.read(lambda n: np.arange(n - 5, n), FRAMES)
    np.testing.assert_array_equal(frames.numpy(), full[-5:])
    assert seeks[0] == (good.seek_point(FRAMES - 5), False)
    assert "differs from the index" in caplog.text and "instead of seeking" in caplog.text


@pytest.mark.parametrize(
    "pts, keyframe, problem",
    [
        ([0, None, 2], [True, False, False], "packets without timestamps"),
        ([0, 1, 1], [True, False, False], "packets with repeated timestamps"),
        ([0, 1, 2], [False, False, False], "no packet is flagged as a keyframe"),
    ],
)
def test_an_untrustworthy_index_is_never_seeked_and_still_counts(
    tmp_path, caplog, pts, keyframe, problem
):
    index = PacketIndex.from_packets(pts, [9, 9, 9], keyframe)
    assert (index.problem, index.num_packets, index.seek_points) == (problem, 3, ())
    path = _write(tmp_path, "v.mp4", SEEKABLE["h264-bframes.mp4"])
    full = _full_decode(path)
    caplog.set_level(logging.WARNING, logger="stc_ext.data")
    for _ in range(2):
        reader = VideoFileReader(path)
        reader._index = index
        seeks = _spy_seeks(reader)
        frames, _ = reader.read(lambda n: np.array([30, 31]), FRAMES)
        np.testing.assert_array_equal(frames.numpy(), full[[30, 31]])
        assert not seeks
    assert caplog.text.count(problem) == 1  # said once


def test_seek_points_are_keyframes_nothing_earlier_is_shown_after():
    # Decode order: I0 P3 B1 B2 | I5(open GOP: B4 after it is shown before it) B4 P7 B6 | I8
    pts = [0, 3, 1, 2, 5, 4, 7, 6, 8]
    key = [True, False, False, False, True, False, False, False, True]
    index = PacketIndex.from_packets(pts, [1] * 9, key)
    assert index.frame_pts == list(range(9))
    assert index.seek_points == (5, 8)
    assert [index.seek_point(f) for f in (0, 4, 5, 7, 8)] == [0, 0, 5, 5, 8]
    # A keyframe shown before a frame decoded ahead of it cannot start a clean decode.
    index = PacketIndex.from_packets([0, 2, 1, 3], [1] * 4, [True, False, True, False])
    assert index.seek_points == ()


def test_a_stale_length_and_a_truncated_tail_with_seeking(tmp_path):
    path = _write(tmp_path, "v.mp4", SEEKABLE["h264-bframes.mp4"])
    full = _full_decode(path)
    seen = []

    def last_two(n: int) -> np.ndarray:
        seen.append(n)
        return np.array([n - 2, n - 1])

    frames, n = VideoFileReader(path).read(last_two, num_frames=FRAMES + 25)
    assert n == FRAMES and seen == [FRAMES + 25, FRAMES]
    np.testing.assert_array_equal(frames.numpy(), full[-2:])
    # A file cut short (index at the front, so it still opens): the seeking read keeps what the
    # full decode keeps.
    kwargs = dict(SEEKABLE["h264-bframes.mp4"], faststart=True)
    whole = _write(tmp_path, "whole.mp4", kwargs).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: int(len(whole) * 0.7)])
    truncated, length = VideoFileReader(cut, seek=False).read(lambda n: np.arange(n))
    assert 8 < length < FRAMES
    reader = VideoFileReader(cut)
    seeks = _spy_seeks(reader)
    frames, n = reader.read(last_two)
    assert n == length and (seeks[0][0] > 0)
    np.testing.assert_array_equal(frames.numpy(), truncated[-2:].numpy())
