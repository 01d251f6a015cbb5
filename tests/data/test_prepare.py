"""`stc prepare` (stc_ext.data.prepare): resized videos and frame folders that keep every frame,
the tree and the annotation files; resumable, atomic, failures listed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from data_helpers import frame_ids, indexed_frames, write_video

from stc_ext.cli import main
from stc_ext.data import VideoClipDataset, count_frames, read_ucf101, read_video
from stc_ext.data import prepare as prepare_module
from stc_ext.data.prepare import prepare_dataset, prepared_name
from stc_ext.data.video_file import VideoFileReader

N = 36  # frames per source video


@pytest.fixture
def ucf_tree(tmp_path) -> Path:
    """A tiny UCF101-like tree: Class/v_*.avi (MPEG-4 part 2 with B-frames, like UCF101's
    XviD files) and one .mp4, 80x60 frames that encode their index; lists name the files."""
    root = tmp_path / "UCF"
    mpeg4 = dict(codec="mpeg4", options={"bf": "2", "g": "12", "qscale": "2"})
    write_video(root / "A" / "v_A_g01_c01.avi", indexed_frames(N, 60, 80), **mpeg4)
    write_video(root / "A" / "v_A_g01_c02.avi", indexed_frames(N - 6, 60, 80), **mpeg4)
    write_video(root / "B" / "v_B_g01_c01.mp4", indexed_frames(N, 60, 80), fps=30)
    splits = root / "splits"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 A\n2 B\n")
    (splits / "trainlist01.txt").write_text("A/v_A_g01_c01.avi 1\nB/v_B_g01_c01.mp4 2\n")
    (splits / "testlist01.txt").write_text("A/v_A_g01_c02.avi\n")
    return root


def _videos(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".avi", ".mp4"))


def test_resize_keeps_every_frame_the_rate_and_the_tree(ucf_tree, tmp_path):
    dst = tmp_path / "UCF-128"
    # crf 12: the frames differ by 3 gray levels, which a lossier encode merges
    report = prepare_dataset(ucf_tree, dst, short_side=32, keyframe_interval=8, crf=12)
    assert (report.videos, report.prepared, report.skipped, report.failed) == (3, 3, 0, [])
    assert report.copied == 3
    for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt"):
        assert (dst / "splits" / name).read_bytes() == (ucf_tree / "splits" / name).read_bytes()
    for source in _videos(ucf_tree):
        relative = source.relative_to(ucf_tree)
        target = dst / prepared_name(relative, "resize")
        assert target.suffix == ".mp4" and target.is_file()
        reader = VideoFileReader(target)
        with reader:
            stream = reader.stream()
            assert (stream.width, stream.height) == (42, 32)  # 80x60 -> short side 32, even
            src_rate = VideoFileReader(source).stream().average_rate
            assert stream.average_rate == src_rate
            seek_points = reader.packet_index().seek_points
        frames, n = VideoFileReader(target).read(lambda n: np.arange(n))
        original = read_video(source)  # (MPEG-4's B-frames blur some levels: compare with it)
        # A keyframe at least every keyframe_interval frames (x264 adds some at scene cuts).
        assert np.diff([0, *seek_points, n]).max() <= 8
        assert n == len(original)
        np.testing.assert_array_equal(frame_ids(frames), frame_ids(original))  # same, in order
    assert not list(dst.rglob("*.part"))


def test_annotation_lists_naming_avi_read_the_prepared_tree_with_only_the_root_changed(
    ucf_tree, tmp_path
):
    for mode in ("resize", "frames"):
        dst = tmp_path / mode
        prepare_dataset(ucf_tree, dst, mode=mode, short_side=32)
        train = read_ucf101(dst, dst / "splits", 1, "train").check_files(strict=True)
        expected = ["A/v_A_g01_c01.mp4", "B/v_B_g01_c01.mp4"]
        if mode == "frames":
            expected = ["A/v_A_g01_c01", "B/v_B_g01_c01"]
        assert [str(r.path.relative_to(dst)) for r in train.records] == expected
        dataset = VideoClipDataset(train, frames=8, stride=2, mode="train", strict=True)
        clip, label = dataset[0]
        assert clip.shape == (3, 8, 112, 112) and label == 0
        test = VideoClipDataset(read_ucf101(dst, dst / "splits", 1, "test"), 8, 2, "test")
        assert test.read_frames(0).shape[:2] == (2, 8)  # 30 frames -> 15 positions -> 2 clips


def test_frames_mode_writes_the_3d_resnets_layout(ucf_tree, tmp_path):
    dst = tmp_path / "frames"
    report = prepare_dataset(ucf_tree, dst, mode="frames", short_side=0, jpeg_quality=95)
    assert report.prepared == 3 and not report.failed
    folder = dst / "A" / "v_A_g01_c02"
    names = sorted(os.listdir(folder))
    assert names[0] == "image_00001.jpg" and len(names) == N - 6
    original = read_video(ucf_tree / "A" / "v_A_g01_c02.avi")
    prepared = read_video(folder)
    assert prepared.shape == original.shape  # short_side 0 keeps the size
    np.testing.assert_array_equal(frame_ids(prepared), frame_ids(original))


def test_rerun_skips_finished_outputs_and_redoes_partial_ones(ucf_tree, tmp_path):
    dst = tmp_path / "out"
    prepare_dataset(ucf_tree, dst, short_side=32)
    done = dst / "A" / "v_A_g01_c01.mp4"
    stamp = done.stat().st_mtime_ns
    # An interrupted run: one output missing, its partial file left behind.
    partial = dst / "B" / "v_B_g01_c01.mp4"
    partial.unlink()
    partial.with_name(partial.name + ".part").write_bytes(b"half a video")
    report = prepare_dataset(ucf_tree, dst, short_side=32)
    assert (report.prepared, report.skipped, report.copied) == (1, 2, 0)
    assert done.stat().st_mtime_ns == stamp  # untouched
    assert count_frames(partial) == N and not list(dst.rglob("*.part"))


def test_a_crash_mid_video_leaves_no_output_and_is_reported(ucf_tree, tmp_path, monkeypatch):
    original = prepare_module._encode_h264

    def crash_after_writing(reader, part, options, threads):
        original(reader, part, options, threads)
        if "v_A_g01_c02" in str(part):
            raise OSError("disk full")

    monkeypatch.setattr(prepare_module, "_encode_h264", crash_after_writing)
    dst = tmp_path / "out"
    report = prepare_dataset(ucf_tree, dst, short_side=32)
    assert report.failed == [("A/v_A_g01_c02.avi", "OSError: disk full")]
    assert not (dst / "A" / "v_A_g01_c02.mp4").exists() and not list(dst.rglob("*.part"))
    assert report.prepared == 2


def test_failures_are_listed_and_never_stop_the_run(ucf_tree, tmp_path, capsys):
    (ucf_tree / "A" / "broken.avi").write_bytes(b"\x00not a video" * 50)
    (ucf_tree / "B" / "empty.mp4").write_bytes(b"")
    # Two sources with one output name (a.avi and a.mp4 -> a.mp4): the second is refused.
    write_video(ucf_tree / "B" / "v_B_g01_c01.avi", indexed_frames(4, 16, 16))
    dst = tmp_path / "out"
    code = main(["prepare", str(ucf_tree), str(dst), "--short-side", "32", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    failed = (dst / "stc_prepare_failed.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in failed] == [
        "A/broken.avi",
        "B/empty.mp4",
        "B/v_B_g01_c01.mp4",
    ]
    assert "also B/v_B_g01_c01.avi's" in failed[2]
    assert "3 video(s) FAILED" in out and "A/broken.avi: cannot open" in out
    assert "6 videos" in out and "3 prepared" in out and "3 failed" in out
    assert (dst / "A" / "v_A_g01_c01.mp4").is_file()
    # Once the bad files are gone, a rerun succeeds and the failure list goes away.
    for name in ("A/broken.avi", "B/empty.mp4", "B/v_B_g01_c01.avi"):
        (ucf_tree / name).unlink()
    assert main(["prepare", str(ucf_tree), str(dst), "--short-side", "32", "--no-progress"]) == 0
    assert not (dst / "stc_prepare_failed.txt").exists()
    assert "0 prepared, 3 already done, 0 failed" in capsys.readouterr().out


def test_a_truncated_source_keeps_its_decodable_frames(tmp_path, monkeypatch):
    src = tmp_path / "src"
    whole = write_video(src / "v.mp4", indexed_frames(60, 32, 32), faststart=True).read_bytes()
    (src / "v.mp4").write_bytes(whole[: int(len(whole) * 0.6)])
    decodable = count_frames(src / "v.mp4")
    assert 0 < decodable < 60
    report = prepare_dataset(src, tmp_path / "dst", mode="frames", short_side=0)
    assert report.prepared == 1 and not report.failed
    assert count_frames(tmp_path / "dst" / "v") == decodable
    # A decoder error part-way (FFmpeg raised, rather than the file simply ending) is reported.
    original = prepare_module.prepare_video

    def broke_part_way(source, target, options, threads=0):
        original(source, target, options, threads)
        return "decoding stopped after 20 frames: invalid data"

    monkeypatch.setattr(prepare_module, "prepare_video", broke_part_way)
    report = prepare_dataset(src, tmp_path / "dst2", mode="frames", short_side=0)
    assert report.truncated == [("v.mp4", "decoding stopped after 20 frames: invalid data")]
    assert report.prepared == 1


@pytest.mark.slow
def test_workers_give_the_same_outputs(ucf_tree, tmp_path):
    one = prepare_dataset(ucf_tree, tmp_path / "one", mode="frames", short_side=32)
    two = prepare_dataset(ucf_tree, tmp_path / "two", mode="frames", short_side=32, workers=2)
    assert (one.prepared, two.prepared) == (3, 3)
    for folder in (tmp_path / "one").rglob("image_00001.jpg"):
        twin = tmp_path / "two" / folder.relative_to(tmp_path / "one")
        assert sorted(os.listdir(folder.parent)) == sorted(os.listdir(twin.parent))
        assert folder.read_bytes() == twin.read_bytes()


def test_settings_are_recorded_and_a_rerun_with_others_is_refused(ucf_tree, tmp_path):
    dst = tmp_path / "out"
    prepare_dataset(ucf_tree, dst, short_side=32)
    with pytest.raises(ValueError, match="short_side 32 there, 64 now"):
        prepare_dataset(ucf_tree, dst, short_side=64)
    with pytest.raises(ValueError, match="must not contain each other"):
        prepare_dataset(ucf_tree, ucf_tree / "prepared")
    with pytest.raises(FileNotFoundError, match="source folder not found"):
        prepare_dataset(tmp_path / "absent", dst)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mode="crop"), "mode must be one of"),
        (dict(short_side=33), "short_side must be even"),
        (dict(short_side=-1), "short_side must be an int >= 0"),
        (dict(keyframe_interval=0), "keyframe_interval must be a positive int"),
        (dict(jpeg_quality=100, mode="frames"), "jpeg_quality must be an int in 1..95"),
        (dict(workers=0), "workers must be a positive int"),
    ],
)
def test_bad_options_name_the_argument(ucf_tree, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prepare_dataset(ucf_tree, tmp_path / "out", **kwargs)


def test_never_upscales(tmp_path):
    write_video(tmp_path / "src" / "small.mp4", indexed_frames(5, 24, 40))
    prepare_dataset(tmp_path / "src", tmp_path / "dst", short_side=128)
    with VideoFileReader(tmp_path / "dst" / "small.mp4") as reader:
        assert (reader.stream().width, reader.stream().height) == (40, 24)


def test_cli_reports_bad_options_without_a_traceback(ucf_tree, tmp_path, capsys):
    args = ["prepare", str(ucf_tree), str(tmp_path / "out"), "--no-progress"]
    assert main([*args, "--short-side", "33"]) == 1
    assert capsys.readouterr().err.startswith("stc prepare: error: prepare: short_side must be")
