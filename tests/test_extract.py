"""stc_ext/extract.py and `stc extract`: per-clip pooled features or logits with clip times,
one .npy + .json per video, resumable, atomic, through the test protocol's clips."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from inference_helpers import tiny_run, write_broken_files, write_real_looking_clip

from stc_ext import cli
from stc_ext.data import VideoRecord, non_overlapping_clip_indices, read_video
from stc_ext.extract import extract, output_name
from stc_ext.predict import predict
from stc_ext.train import ConfigError
from stc_ext.train.inference import build_model, clip_settings, protocol_dataset, read_source

pytest.importorskip("av", reason="PyAV is needed to write and decode videos")


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """torch on one thread (tests/conftest.py says why)."""


def _extract(videos, checkpoint, out, **kw):
    return extract(videos, checkpoint, out, workers=0, device="cpu", **kw)


@pytest.mark.slow  # > 1 s idle; make test runs it
def test_pool_features_equal_the_networks_on_the_test_clips(tmp_path):
    run = tiny_run()
    videos = sorted(run.root.glob("videos/*/*.mp4"))
    result = _extract([run.root / "videos"], run.checkpoint, tmp_path / "f", batch_size=2)
    assert result.layer == "pool" and result.dim == 8 and len(result.written) == 6
    source = read_source(run.checkpoint)
    clip = clip_settings(source.config)
    model = build_model(source, clip)
    for video in videos:
        name = video.relative_to(run.root / "videos").with_suffix("")
        features = np.load(tmp_path / "f" / f"{name}.npy")
        index = json.loads((tmp_path / "f" / f"{name}.json").read_text())
        # Directly: the dataset's clips of this video through the network.
        clips, _, _ = protocol_dataset([VideoRecord(video)], clip)[0]
        with torch.no_grad():
            expected = model.forward_features(clips).numpy()
        np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
        assert features.dtype == np.float32 and index["shape"] == list(features.shape)
        assert index["video"] == str(video) and index["layer"] == "pool"
        assert index["fps"] == 25.0 and index["num_frames"] == 20
        assert (index["frames"], index["stride"], index["size"]) == (4, 2, 32)
        # 20 frames, stride 2: positions 0..18 in clips of 4 -> [0,8), [8,16), [16,20) looped
        spans = [(c["start_frame"], c["end_frame"], c["padded"]) for c in index["clips"]]
        assert spans == [(0, 8, False), (8, 16, False), (16, 20, True)]
        assert [(c["start_s"], c["end_s"]) for c in index["clips"]] == [
            (0.0, 0.32),
            (0.32, 0.64),
            (0.64, 0.8),
        ]
        assert len(index["clips"]) == len(features)


def test_logits_average_to_the_predicted_scores(tmp_path):
    run = tiny_run()
    video = next(run.root.glob("videos/*/*.mp4"))
    _extract([video], run.checkpoint, tmp_path, layer="logits")
    logits = torch.from_numpy(np.load(tmp_path / f"{video.stem}.npy"))
    index = json.loads((tmp_path / f"{video.stem}.json").read_text())
    assert index["classes"] == run.classes and logits.shape == (3, 3)
    scores = torch.softmax(logits, dim=1).mean(0)
    (p,) = predict([video], run.checkpoint, workers=0, device="cpu", topk=3).predictions
    for label, c, score in p.top:
        assert scores[c].item() == pytest.approx(score, abs=1e-5) and label == run.classes[c]


def test_real_looking_clip_times_follow_its_frame_rate(tmp_path):
    run = tiny_run()
    clip = write_real_looking_clip(tmp_path / "in" / "street.mp4")
    _extract([clip], run.checkpoint, tmp_path / "out")
    index = json.loads((tmp_path / "out" / "street.json").read_text())
    assert index["fps"] == pytest.approx(30000 / 1001) and index["num_frames"] == 37
    indices = non_overlapping_clip_indices(37, 4, 2)
    assert [c["start_frame"] for c in index["clips"]] == indices[:, 0].tolist()
    assert index["clips"][-1]["end_frame"] == 37 and index["clips"][-1]["padded"]
    assert index["clips"][1]["start_s"] == pytest.approx(8 * 1001 / 30000, abs=1e-6)


def test_resumable_and_atomic(tmp_path, monkeypatch):
    run = tiny_run()
    out = tmp_path / "f"
    first = _extract([run.root / "videos"], run.checkpoint, out)
    assert len(first.written) == 6 and not first.existing
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = _extract([run.root / "videos"], run.checkpoint, out)
    assert not again.written and len(again.existing) == 6
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps
    # A video whose index is missing (an interrupted run) is done again, and only it.
    victim = sorted(out.rglob("*.json"))[0]
    victim.unlink()
    third = _extract([run.root / "videos"], run.checkpoint, out)
    assert third.written == [str(victim.with_suffix(".npy"))] and len(third.existing) == 5
    # A crash while writing leaves no partial file behind.
    victim.unlink()
    victim.with_suffix(".npy").unlink()

    def crash(file, array):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        _extract([run.root / "videos"], run.checkpoint, out)
    assert not victim.with_suffix(".npy").exists() and not victim.exists()
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files


def test_unreadable_files_are_listed(tmp_path, capsys):
    run = tiny_run()
    broken = write_broken_files(tmp_path / "bad")
    video = next(run.root.glob("videos/*/*.mp4"))
    flags = ["--checkpoint", str(run.checkpoint), "--workers", "0", "--no-progress"]
    out = tmp_path / "f"
    assert cli.main(["extract", str(video), str(tmp_path / "bad"), *flags, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "wrote 8-D pool features of 1 video(s)" in captured.out
    assert "skipped 2 video(s)" in captured.err
    assert all(str(p) in captured.err for p in broken)
    assert sorted(p.name for p in out.iterdir()) == [f"{video.stem}.json", f"{video.stem}.npy"]


def test_frame_folders_take_fps_from_the_flag(tmp_path):
    from PIL import Image

    run = tiny_run()
    frames = read_video(next(run.root.glob("videos/*/*.mp4"))).numpy()
    folder = tmp_path / "clipA"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"img_{i + 1:05d}.png")
    _extract([folder], run.checkpoint, tmp_path / "without")
    index = json.loads((tmp_path / "without" / "clipA.json").read_text())
    assert index["fps"] is None and index["clips"][0]["end_s"] is None
    assert index["clips"][0]["end_frame"] == 8
    _extract([folder], run.checkpoint, tmp_path / "with", fps=10)
    index = json.loads((tmp_path / "with" / "clipA.json").read_text())
    assert index["fps"] == 10 and index["clips"][1]["start_s"] == 0.8


def test_a_backbone_without_classifier_gives_pooled_features_only(tmp_path):
    run = tiny_run()
    state = torch.load(run.checkpoint, weights_only=True)["model"]
    backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
    config = {"model": "stc_resnet3d_10", "widths": [8, 8, 8, 8], "frames": 4, "size": 32}
    path = tmp_path / "student.pt"
    torch.save({"format": "stc_ext.transfer.student/1", "model": backbone, "config": config}, path)
    video = next(run.root.glob("videos/*/*.mp4"))
    _extract([video], path, tmp_path / "a", short_side=32)
    _extract([video], run.checkpoint, tmp_path / "b")
    name = f"{video.stem}.npy"
    np.testing.assert_array_equal(np.load(tmp_path / "a" / name), np.load(tmp_path / "b" / name))
    with pytest.raises(ConfigError, match="backbone without classifier"):
        _extract([video], path, tmp_path / "c", layer="logits")


def test_clashing_output_names_are_refused(tmp_path):
    run = tiny_run()
    video = next(run.root.glob("videos/*/*.mp4"))
    other = tmp_path / "other" / video.name
    other.parent.mkdir()
    other.write_bytes(video.read_bytes())
    with pytest.raises(ConfigError, match="same output name"):
        _extract([video, other], run.checkpoint, tmp_path / "f")
    assert not (tmp_path / "f").exists()


def test_output_name():
    assert output_name("a/b.mp4") == "a/b"
    assert output_name("frames") == "frames"
    assert output_name(os.path.join("x", "y.z.avi")) == "x/y.z"
