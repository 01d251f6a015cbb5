"""Annotation formats (UCF101, HMDB51, Kinetics-400 CSV, list files, video folders), split
selection, validation messages and the all-at-once missing-file report."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from stc_ext.data import (
    UNLABELED,
    Annotation,
    AnnotationError,
    MissingFilesError,
    VideoRecord,
    read_hmdb51,
    read_kinetics_csv,
    read_list_file,
    read_ucf101,
    read_video_folder,
)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def ucf(tmp_path):
    splits = tmp_path / "ucfTrainTestlist"
    _write(splits / "classInd.txt", "1 ApplyEyeMakeup\n2 Archery\n3 YoYo\n")
    for k in (1, 2, 3):
        _write(
            splits / f"trainlist0{k}.txt",
            f"ApplyEyeMakeup/v_ApplyEyeMakeup_g0{k}_c01.avi 1\r\nYoYo/v_YoYo_g0{k}_c02.avi 3\r\n\n",
        )
        _write(splits / f"testlist0{k}.txt", f"Archery/v_Archery_g1{k}_c01.avi\n")
    return tmp_path / "UCF-101", splits


def test_ucf101_train_and_test_per_split(ucf):
    root, splits = ucf
    train = read_ucf101(root, splits, split=2, subset="train")
    assert train.classes == ["ApplyEyeMakeup", "Archery", "YoYo"]
    assert train.records == [
        VideoRecord(root / "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi", 0),
        VideoRecord(root / "YoYo/v_YoYo_g02_c02.avi", 2),
    ]
    test = read_ucf101(root, splits, split=3, subset="test")
    assert test.records == [VideoRecord(root / "Archery/v_Archery_g13_c01.avi", 1)]
    assert "split 3 test" in test.name


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"split": 4}, ValueError, "split must be 1, 2 or 3, got 4"),
        ({"subset": "val"}, ValueError, "subset must be one of"),
    ],
)
def test_ucf101_bad_arguments(ucf, kwargs, error, message):
    with pytest.raises(error, match=message):
        read_ucf101(*ucf, **kwargs)


@pytest.mark.parametrize(
    "line, message",
    [
        ("Juggling/v_Juggling_g01_c01.avi", r"trainlist01.txt:1: unknown class 'Juggling'"),
        ("YoYo/v_YoYo_g01_c01.avi 1", r"label 1 \(ApplyEyeMakeup\) disagrees with the class"),
        ("YoYo/v_YoYo_g01_c01.avi 9", "label must be an integer in 1..3"),
        ("a b c", "expected '<Class>/<video> \\[label\\]'"),
    ],
)
def test_ucf101_bad_lines_name_file_and_line(ucf, line, message):
    root, splits = ucf
    _write(splits / "trainlist01.txt", line + "\n")
    with pytest.raises(AnnotationError, match=message):
        read_ucf101(root, splits)


def test_ucf101_empty_split_and_missing_files(ucf):
    root, splits = ucf
    _write(splits / "trainlist01.txt", "\n# nothing\n")
    with pytest.raises(AnnotationError, match="the split lists no videos"):
        read_ucf101(root, splits)
    (splits / "testlist02.txt").unlink()
    with pytest.raises(AnnotationError, match="file not found: .*testlist02.txt"):
        read_ucf101(root, splits, split=2, subset="test")
    _write(splits / "classInd.txt", "1 A\n3 B\n")
    with pytest.raises(AnnotationError, match="class indices must be 1..2 without gaps"):
        read_ucf101(root, splits)


@pytest.fixture
def hmdb(tmp_path):
    splits = tmp_path / "testTrainMulti_7030_splits"
    for cls, rows in {
        "brush_hair": ["a.avi 1", "b.avi 2", "c.avi 0"],
        "climb_stairs": ["d.avi 2", "e.avi 1"],
    }.items():
        for k in (1, 2, 3):
            _write(splits / f"{cls}_test_split{k}.txt", "\n".join(rows) + "\n")
    _write(splits / "climb_stairs_test_split2.txt", "d.avi 1 \ne.avi 1\n")
    return tmp_path / "hmdb51", splits


def test_hmdb51_ids_select_train_and_test(hmdb):
    root, splits = hmdb
    train = read_hmdb51(root, splits, split=1, subset="train")
    assert train.classes == ["brush_hair", "climb_stairs"]  # underscores kept, sorted
    assert [(r.path.relative_to(root).as_posix(), r.label) for r in train] == [
        ("brush_hair/a.avi", 0),
        ("climb_stairs/e.avi", 1),
    ]
    test = read_hmdb51(root, splits, split=1, subset="test")
    assert [r.path.name for r in test] == ["b.avi", "d.avi"]
    assert [r.path.name for r in read_hmdb51(root, splits, split=2)] == ["a.avi", "d.avi", "e.avi"]


def test_hmdb51_errors(hmdb, tmp_path):
    root, splits = hmdb
    with pytest.raises(ValueError, match="split must be 1, 2 or 3, got 0"):
        read_hmdb51(root, splits, split=0)
    empty = tmp_path / "empty_splits"
    empty.mkdir()
    with pytest.raises(AnnotationError, match="no '<class>_test_split1.txt' files"):
        read_hmdb51(root, empty)
    _write(splits / "brush_hair_test_split3.txt", "a.avi 7\n")
    with pytest.raises(AnnotationError, match=r"brush_hair_test_split3.txt:1: expected"):
        read_hmdb51(root, splits, split=3)


KINETICS_CSV = """label,youtube_id,time_start,time_end,split
abseiling,--07WQ2iBlw,1,11,train
playing guitar,-0NPUsvTK5s,27,37,train
abseiling,-3B32lodo2M,59,69,val
"""


def test_kinetics_csv_paths_labels_and_subsets(tmp_path):
    csv_path = _write(tmp_path / "kinetics_400.csv", KINETICS_CSV)
    root = tmp_path / "videos"
    (root / "playing_guitar").mkdir(parents=True)  # a folder named with underscores
    train = read_kinetics_csv(csv_path, root, subset="train")
    assert train.classes == ["abseiling", "playing guitar"]
    assert train.records == [
        VideoRecord(root / "abseiling" / "--07WQ2iBlw_000001_000011.mp4", 0),
        VideoRecord(root / "playing_guitar" / "-0NPUsvTK5s_000027_000037.mp4", 1),
    ]
    val = read_kinetics_csv(csv_path, root, subset="val", classes=train.classes)
    assert val.records == [VideoRecord(root / "abseiling" / "-3B32lodo2M_000059_000069.mp4", 0)]
    assert len(read_kinetics_csv(csv_path, root)) == 3


def test_kinetics_csv_errors_and_unlabeled_rows(tmp_path):
    root = tmp_path / "videos"
    csv_path = _write(tmp_path / "k.csv", KINETICS_CSV)
    with pytest.raises(AnnotationError, match=r"k.csv:3: unknown class 'playing guitar'"):
        read_kinetics_csv(csv_path, root, classes=["abseiling"])
    with pytest.raises(AnnotationError, match="the split lists no videos"):
        read_kinetics_csv(csv_path, root, subset="test")
    bad = _write(tmp_path / "bad.csv", "label,youtube_id,time_end\nx,y,3\n")
    with pytest.raises(AnnotationError, match=r"missing column\(s\) \['time_start'\]"):
        read_kinetics_csv(bad, root)
    bad = _write(tmp_path / "bad2.csv", "label,youtube_id,time_start,time_end\nx,y,a,3\n")
    with pytest.raises(AnnotationError, match="bad2.csv:2: time_start/time_end must be numbers"):
        read_kinetics_csv(bad, root)
    test = _write(tmp_path / "test.csv", "youtube_id,time_start,time_end,split\nabc,0,10,test\n")
    ann = read_kinetics_csv(test, root, subset="test")
    assert ann.records == [VideoRecord(root / "abc_000000_000010.mp4", UNLABELED)]


def test_list_file_integer_and_named_labels(tmp_path):
    lst = _write(
        tmp_path / "lists" / "train.txt", "# path label\nclips/a b.mp4 2\nclips/c.mp4 0\n\n"
    )
    ann = read_list_file(lst)
    assert ann.classes == ["0", "1", "2"]
    assert ann.records == [
        VideoRecord(tmp_path / "lists" / "clips" / "a b.mp4", 2),  # spaces in paths are fine
        VideoRecord(tmp_path / "lists" / "clips" / "c.mp4", 0),
    ]
    named = _write(tmp_path / "named.txt", "x.mp4 jump\ny.mp4 run\nz.mp4 jump\n")
    ann = read_list_file(named, root=tmp_path / "media")
    assert ann.classes == ["jump", "run"] and [r.label for r in ann] == [0, 1, 0]
    assert ann.records[0].path == tmp_path / "media" / "x.mp4"
    one = _write(tmp_path / "one.txt", "x.mp4 1\ny.mp4 2\n")
    assert [r.label for r in read_list_file(one, one_based=True)] == [0, 1]


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("x.mp4 walk\n", {"classes": ["run"]}, r"bad.txt:1: unknown class 'walk'"),
        ("x.mp4 5\n", {"classes": ["a", "b"]}, "label 5 is outside 0..1"),
        ("justapath.mp4\n", {}, r"bad.txt:1: expected '<relative/path> <label>'"),
        ("\n", {}, "the list holds no videos"),
    ],
)
def test_list_file_errors(tmp_path, text, kwargs, message):
    with pytest.raises(AnnotationError, match=message):
        read_list_file(_write(tmp_path / "bad.txt", text), **kwargs)


def test_video_folder_is_unlabeled_sorted_and_recursive(tmp_path):
    for rel in ("b/2.mp4", "a.AVI", "b/c/3.webm", "notes.txt"):
        _write(tmp_path / "raw" / rel, "")
    ann = read_video_folder(tmp_path / "raw")
    assert [r.path.relative_to(tmp_path / "raw").as_posix() for r in ann] == [
        "a.AVI",
        "b/2.mp4",
        "b/c/3.webm",
    ]
    assert all(r.label == UNLABELED for r in ann) and ann.classes == []
    assert len(read_video_folder(tmp_path / "raw", recursive=False)) == 1
    with pytest.raises(AnnotationError, match="no videos"):
        read_video_folder(tmp_path / "raw", extensions=(".mkv",))
    with pytest.raises(AnnotationError, match="folder not found"):
        read_video_folder(tmp_path / "nowhere")


def test_check_files_reports_all_missing_at_once(tmp_path, caplog):
    present = _write(tmp_path / "v" / "ok.mp4", "")
    (tmp_path / "v" / "frames_only").mkdir()  # listed as .avi, stored as a frame folder
    records = [
        VideoRecord(present, 0),
        VideoRecord(tmp_path / "v" / "gone1.mp4", 1),
        VideoRecord(tmp_path / "v" / "frames_only.avi", 1),
        VideoRecord(tmp_path / "v" / "gone2.mp4", 0),
    ]
    ann = Annotation(records, ["a", "b"], "my split")
    with pytest.raises(MissingFilesError) as info:
        ann.check_files(strict=True)
    assert info.value.missing == [str(tmp_path / "v" / f"gone{i}.mp4") for i in (1, 2)]
    assert "my split: 2 listed video(s) not found" in str(info.value)
    with caplog.at_level(logging.WARNING, logger="stc_ext.data"):
        kept = ann.check_files(strict=False)
    assert [r.path for r in kept] == [present, tmp_path / "v" / "frames_only"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "gone1.mp4" in warnings[0].getMessage() and "gone2.mp4" in warnings[0].getMessage()
    with pytest.raises(MissingFilesError, match="1 listed video"):
        Annotation([VideoRecord(tmp_path / "none.mp4")], [], "x").check_files(strict=False)
