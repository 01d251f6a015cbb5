"""Video-level evaluation: the protocol, several splits, the report, and its errors."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from stc_ext.train import ConfigError, EvalConfig, evaluate, format_eval_table


def _eval(checkpoint, **changes) -> EvalConfig:
    return EvalConfig(checkpoint=str(checkpoint), workers=0, progress=False, **changes)


def test_one_model_per_split_and_the_average(finished_run, tmp_path):
    run_dir, _ = finished_run
    for split in (1, 2):  # the tiny dataset's split 2 lists the same videos as split 1
        (tmp_path / f"split{split}").mkdir()
        shutil.copy(run_dir / "best.pt", tmp_path / f"split{split}" / "best.pt")
    result = evaluate(
        _eval(
            tmp_path / "split{split}" / "best.pt", splits=[1, 2], out=str(tmp_path / "report.json")
        )
    )
    one, two = result.splits
    assert (one.split, two.split) == (1, 2)
    assert one.num_videos == 3 and one.checkpoint.endswith("split1/best.pt")
    # 12 frames at stride 2 are 6 positions: two non-overlapping 4-frame clips per video.
    assert one.num_clips == 6 and all(p["clips"] == 2 for p in one.predictions)
    assert one.top1 == two.top1 and result.average["top1"] == pytest.approx(one.top1)
    assert 0 <= one.mean_class_accuracy <= 1 and one.top5 == 1.0  # 3 classes: top-5 = all
    assert result.protocol["clips"] == "non-overlapping" and result.protocol["crop"] == "centre"
    report = json.loads((tmp_path / "report.json").read_text())
    assert [s["split"] for s in report["splits"]] == [1, 2]
    assert report["average"]["top1"] == pytest.approx(result.average["top1"])
    assert len(report["splits"][0]["confusion"]) == 3
    assert (tmp_path / "report_confusion_split1.png").is_file()
    assert (tmp_path / "report_confusion_split2.png").is_file()
    table = format_eval_table(result)
    assert "mean" in table and "chance 33.3%" in table and "non-overlapping" in table


def test_default_report_goes_next_to_the_checkpoint(finished_run, tmp_path):
    run_dir, _ = finished_run
    shutil.copy(run_dir / "best.pt", tmp_path / "best.pt")
    result = evaluate(_eval(tmp_path / "best.pt"))
    assert result.report_path == str(tmp_path / "eval_test_split1.json")
    assert (tmp_path / "eval_test_split1_confusion_split1.png").is_file()


def test_evaluation_errors(finished_run, tiny_data_2cls, tmp_path):
    run_dir, _ = finished_run
    best = run_dir / "best.pt"
    cases = [
        (
            _eval(best, frames=8),
            "frames: 8 does not match the checkpoint, which was trained with frames=4",
        ),
        (_eval(best, root=str(tiny_data_2cls)), "2 classes, but the checkpoint's classifier has 3"),
        (_eval(tmp_path / "split{split}.pt", splits=[1]), "split1.pt: not found (split 1)"),
        (_eval(best, root=str(tmp_path / "nowhere")), "not found"),
        (_eval(best, model="c3d"), "unknown model 'c3d'"),
    ]
    for config, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            evaluate(config)
    shutil.copy(best, tmp_path / "split1.pt")
    with pytest.raises(ConfigError, match=re.escape("split2.pt: not found (split 2)")):
        evaluate(_eval(tmp_path / "split{split}.pt", splits=[1, 2]))
    assert not list(tmp_path.glob("*.json"))  # nothing evaluated before the check


def _two_split_checkpoints(run_dir, tmp_path):
    for split in (1, 2):
        (tmp_path / f"split{split}").mkdir()
        shutil.copy(run_dir / "best.pt", tmp_path / f"split{split}" / "best.pt")
    return tmp_path / "split{split}" / "best.pt"


def test_a_split_that_fails_is_never_reported_as_a_success(finished_run, tiny_data, tmp_path):
    """`evaluate --splits 1,2` where split 2's videos cannot be decoded."""
    run_dir, _ = finished_run
    data = shutil.copytree(tiny_data, tmp_path / "data")
    broken = data / "videos" / "MoveUp" / "broken.mp4"
    broken.write_bytes(b"")
    (data / "splits" / "testlist02.txt").write_text("MoveUp/broken.mp4\n")
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"status": "complete", "average": {"top1": 0.99}}))  # stale
    checkpoint = _two_split_checkpoints(run_dir, tmp_path)
    with pytest.raises(ConfigError):
        evaluate(_eval(checkpoint, splits=[1, 2], root=str(data), out=str(report)))
    written = json.loads(report.read_text())
    assert written["status"] == "failed" and written["failed_split"] == 2
    assert "average" not in written and [s["split"] for s in written["splits"]] == [1]


def test_every_split_is_checked_before_any_video_is_decoded(finished_run, tmp_path, capsys):
    from stc_ext.cli import main

    run_dir, _ = finished_run
    checkpoint = _two_split_checkpoints(run_dir, tmp_path)
    (tmp_path / "split2" / "best.pt").write_text("not a checkpoint\n")
    report = tmp_path / "report.json"
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--splits", "1,2", "--out", str(report)]
    assert main([*argv, "--workers", "0", "--no-progress"]) == 1
    assert "split2/best.pt: is not a PyTorch file" in capsys.readouterr().err
    assert not report.exists() and not list(tmp_path.glob("*.png"))  # split 1 did not run
