"""The `stc` command itself: its version and how it reports flags it does not know."""

from __future__ import annotations

import pytest
import torch

import stc_ext
from stc_ext.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"stc {stc_ext.__version__} (torch {torch.__version__}")


@pytest.mark.parametrize(
    "command, required",
    [
        ("train", []),
        ("evaluate", []),
        ("transfer", []),
        ("synth", ["--out", "x"]),
        ("inflate", ["--source", "x", "--model", "resnet3d_18", "--out", "y"]),
    ],
)
def test_an_unknown_flag_shows_the_subcommands_usage(command, required, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, *required, "--no-such-flag", "3"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: stc {command} ")
    assert f"stc {command}: error: unrecognized arguments: --no-such-flag 3" in err
