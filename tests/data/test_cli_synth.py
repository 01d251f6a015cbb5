"""The `stc synth` command."""

from __future__ import annotations

import pytest

from stc_ext.cli import build_parser, main
from stc_ext.data import read_ucf101

pytest.importorskip("av", reason="PyAV is needed to write the synthetic videos")

ARGS = ["--classes", "2", "--videos-per-class", "2", "--frames", "6", "--size", "32"]


def test_synth_writes_a_ucf101_layout(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["synth", "--out", str(out), "--seed", "4", *ARGS]) == 0
    assert "wrote 4 videos (2 classes, 2 train / 2 test)" in capsys.readouterr().out
    train = read_ucf101(out / "videos", out / "splits", split=1, subset="train")
    assert train.classes == ["MoveUp", "MoveDown"] and len(train) == 2
    assert (out / "synthetic.json").is_file()


def test_synth_reports_errors_without_a_traceback(tmp_path, capsys):
    out = str(tmp_path)
    assert main(["synth", "--out", out, *ARGS]) == 0
    capsys.readouterr()
    assert main(["synth", "--out", out, *ARGS]) == 1
    err = capsys.readouterr().err
    assert err.startswith("stc synth: error:") and "--force" in err
    assert main(["synth", "--out", out, "--force", *ARGS]) == 0
    assert main(["synth", "--out", out, "--force", "--classes", "99"]) == 1
    assert "classes must be an int in 2..12, got 99" in capsys.readouterr().err


def test_parser_requires_a_command():
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
    assert build_parser().parse_args(["synth", "--out", "x"]).videos_per_class == 40
