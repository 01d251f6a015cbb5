"""stc_ext/predict.py and `stc predict`: top-k classes of your own videos through the test
protocol of `stc evaluate`, folders walked, unreadable files listed, labels from the checkpoint,
a labels file or indices, JSON/CSV output."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch
from inference_helpers import tiny_run, write_broken_files, write_real_looking_clip

from stc_ext import cli
from stc_ext.predict import collect_videos, predict, read_labels
from stc_ext.train import ConfigError, EvalConfig, evaluate

pytest.importorskip("av", reason="PyAV is needed to write and decode videos")


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """torch on one thread (tests/conftest.py says why)."""


def _predict(videos, checkpoint, **kw):
    return predict(videos, checkpoint, workers=0, device="cpu", **kw)


def test_collect_videos_walks_folders_and_lists_missing(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.mp4", "a/b/y.AVI", "a/notes.txt", "z.webm"):
        (tmp_path / name).write_bytes(b"")
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "img_001.jpg").write_bytes(b"")
    found = collect_videos(
        [tmp_path / "a", tmp_path / "z.webm", frames, tmp_path / "a" / "x.mp4", tmp_path / "nope"]
    )
    assert found.names == ["b/y.AVI", "x.mp4", "z.webm", "frames"]  # x.mp4 once
    assert found.missing == [str(tmp_path / "nope")]


def test_predicts_every_readable_video_and_lists_the_rest(tmp_path):
    run = tiny_run()
    broken = write_broken_files(tmp_path / "broken")
    result = _predict(
        [run.root / "videos", tmp_path / "broken", tmp_path / "missing.mp4"], run.checkpoint, topk=2
    )
    videos = sorted(run.root.glob("videos/*/*.mp4"))
    assert [p.video for p in result.predictions] == [str(v) for v in videos]
    assert result.labels_from == "checkpoint"
    for p in result.predictions:
        assert len(p.top) == 2 and p.top[0][2] >= p.top[1][2]
        assert all(label == run.classes[index] for label, index, _ in p.top)
        assert p.clips == 3  # 20 frames at stride 2: 10 positions -> 3 clips of 4 (last looped)
    reasons = dict(result.skipped)
    assert set(reasons) == {str(p) for p in broken} | {str(tmp_path / "missing.mp4")}
    assert reasons[str(tmp_path / "missing.mp4")] == "not found"
    assert result.protocol["frames"] == 4 and result.protocol["stride"] == 2


def test_same_scores_as_stc_evaluate(tmp_path):
    """predict and evaluate share one code path: the same videos get the same scores."""
    run = tiny_run()
    report = evaluate(
        EvalConfig(
            checkpoint=str(run.checkpoint), workers=0, progress=False, out=str(tmp_path / "e.json")
        )
    )
    evaluated = {p["video"]: p for p in report.splits[0].predictions}
    result = _predict(list(evaluated), run.checkpoint, topk=3)
    assert len(result.predictions) == len(evaluated) == 3
    for p in result.predictions:
        label, _, score = p.top[0]
        # The report rounds scores to 5 digits; the two runs batch the clips differently, and
        # float32 kernels may round differently per batch shape: equal to ~1e-5, not bitwise.
        assert label == evaluated[p.video]["prediction"]
        assert score == pytest.approx(evaluated[p.video]["score"], abs=2e-5)
        assert p.clips == evaluated[p.video]["clips"]
        assert sum(s for _, _, s in p.top) == pytest.approx(1.0, abs=1e-5)  # all 3 classes


def test_foreign_weights_with_a_labels_file_or_indices(tmp_path):
    run = tiny_run()
    weights = tmp_path / "weights.pth"
    state = torch.load(run.checkpoint, weights_only=True)["model"]
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, weights)
    video = next(run.root.glob("videos/*/*.mp4"))
    # The architecture of bare weights must be named; its widths come from... nowhere: a
    # wrong guess is a clear mismatch.
    with pytest.raises(ConfigError, match="does not record its architecture"):
        _predict([video], weights)
    with pytest.raises(ConfigError, match="weights do not fit stc_resnet3d_10"):
        _predict([video], weights, model="stc_resnet3d_10", frames=4)
    # A file that records the config (as `stc inflate` writes) is enough.
    config = {"model": "stc_resnet3d_10", "widths": [8, 8, 8, 8], "frames": 4, "size": 32}
    torch.save({"model": state, "config": config}, weights)
    by_index = _predict([video], weights, short_side=32)
    assert by_index.labels_from == "class indices"
    assert {label for label, _, _ in by_index.predictions[0].top} == {"0", "1", "2"}
    labels = tmp_path / "classInd.txt"
    labels.write_text("1 Up\n2 Down\n3 Grow Larger\n")
    named = _predict([video], weights, short_side=32, labels=labels)
    assert named.labels_from == str(labels)
    names = ["Up", "Down", "Grow Larger"]
    assert [(names[i], s) for _, i, s in by_index.predictions[0].top] == [
        (label, s) for label, _, s in named.predictions[0].top
    ]


def test_read_labels_formats_and_errors(tmp_path):
    plain = tmp_path / "kinetics.txt"
    plain.write_text("abseiling\nair drumming\n\n")
    assert read_labels(plain, 2) == ["abseiling", "air drumming"]
    zero = tmp_path / "zero.txt"
    zero.write_text("0 a\n1 b\n2 c\n")
    assert read_labels(zero, 3) == ["a", "b", "c"]
    with pytest.raises(ConfigError, match="holds 2 class names.*has 3"):
        read_labels(plain, 3)
    with pytest.raises(ConfigError, match="labels: not found"):
        read_labels(tmp_path / "none.txt", 3)


def test_real_looking_clip(tmp_path):
    run = tiny_run()
    clip = write_real_looking_clip(tmp_path / "camera" / "street.mp4")
    result = _predict([tmp_path / "camera"], run.checkpoint)
    (p,) = result.predictions
    assert p.video == str(clip) and p.clips == 5  # 37 frames at stride 2: 19 positions -> 5 clips
    assert len(p.top) == 3  # top-5 of a 3-class model


def test_cli_outputs(tmp_path, capsys):
    run = tiny_run()
    videos = str(run.root / "videos")
    common = ["--checkpoint", str(run.checkpoint), "--workers", "0", "--no-progress"]
    assert cli.main(["predict", videos, *common, "--topk", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and all(line.split("\t")[1].split()[0] in run.classes for line in lines)

    out_json = tmp_path / "r.json"
    assert (
        cli.main(["predict", videos, str(tmp_path / "gone.mp4"), *common, "--out", str(out_json)])
        == 0
    )
    report = json.loads(out_json.read_text())
    assert len(report["predictions"]) == 6 and report["labels_from"] == "checkpoint"
    assert report["skipped"] == [{"video": str(tmp_path / "gone.mp4"), "reason": "not found"}]
    assert "skipped 1 video" in capsys.readouterr().err

    out_csv = tmp_path / "r.csv"
    assert cli.main(["predict", videos, *common, "--topk", "2", "--out", str(out_csv)]) == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 6 and rows[0]["label_1"] in run.classes
    assert float(rows[0]["score_1"]) >= float(rows[0]["score_2"])
    for p, row in zip(report["predictions"], rows, strict=True):
        assert row["video"] == p["video"] and row["label_1"] == p["top"][0]["label"]


def test_cli_errors_name_the_flag(tmp_path, capsys):
    run = tiny_run()
    video = str(next(run.root.glob("videos/*/*.mp4")))
    common = ["--workers", "0", "--no-progress"]
    cases = [
        (
            ["--checkpoint", str(tmp_path / "no.pt")],
            f"--checkpoint: {tmp_path / 'no.pt'}: not found",
        ),
        (["--checkpoint", str(run.checkpoint), "--frames", "8"], "--frames: 8 does not match"),
        (["--checkpoint", str(run.checkpoint), "--out", "r.txt"], "--out: must end in .json"),
        (["--checkpoint", str(run.checkpoint), "--topk", "0"], "--topk: must be positive"),
    ]
    for flags, message in cases:
        assert cli.main(["predict", video, *common, *flags]) == 1
        assert message in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path), "--checkpoint", str(run.checkpoint), *common]) == 1
    assert "VIDEO_OR_DIR: no videos found" in capsys.readouterr().err


def test_nothing_readable_exits_non_zero(tmp_path, capsys):
    run = tiny_run()
    broken = write_broken_files(tmp_path)
    flags = ["--checkpoint", str(run.checkpoint), "--workers", "0", "--no-progress"]
    assert cli.main(["predict", *map(str, broken), *flags]) == 1
    err = capsys.readouterr().err
    assert "skipped 2 video(s)" in err and "truncated.mp4" in err


def test_a_folder_of_copies_predicts_identically(tmp_path):
    """Batching and clip chunking do not change a video's scores."""
    run = tiny_run()
    video = next(run.root.glob("videos/*/*.mp4"))
    for i in range(3):
        shutil.copy(video, tmp_path / f"copy{i}.mp4")
    one = _predict([video], run.checkpoint, batch_size=1, clip_batch=1).predictions[0]
    many = _predict([tmp_path], run.checkpoint, batch_size=2, clip_batch=5).predictions
    for p in many:
        assert [(c, pytest.approx(s, abs=1e-6)) for _, c, s in p.top] == [
            (c, s) for _, c, s in one.top
        ]
