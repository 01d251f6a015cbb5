"""Every command reads weights through one loader that names the file and says what it is
instead; no traceback."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn
from train_helpers import TINY_FLAGS

from stc_ext.cli import main
from stc_ext.models import CheckpointFileError, load_file, read_state_dict
from stc_ext.train import CHECKPOINT_FORMAT, ConfigError, load_checkpoint

PROBLEMS = {
    "text": "is not a PyTorch file (it is text beginning 'epoch,loss",
    "empty": "is empty (0 bytes)",
    "truncated": "is truncated or corrupt",
    "legacy_truncated": "is truncated or corrupt",
    "random": "is not a PyTorch file (it begins with the bytes",
    "module": "holds a pickled Python object (torch.nn.modules.linear.Linear)",
    "folder": "is a folder, not a file of weights",
}


def _write(kind: str, path):
    """A broken weights file of ``kind`` at ``path``."""
    if kind == "text":
        path.write_text("epoch,loss\n1,0.5\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind in ("truncated", "legacy_truncated"):
        zipped = kind == "truncated"
        torch.save({"w": torch.randn(64, 64)}, path, _use_new_zipfile_serialization=zipped)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random":
        path.write_bytes(bytes(range(7, 250)) * 4)
    elif kind == "module":
        torch.save(nn.Linear(2, 2), path)
    elif kind == "folder":
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", PROBLEMS)
def test_the_loader_names_the_file_and_the_problem(kind, tmp_path):
    path = _write(kind, tmp_path / "weights.pt")
    with pytest.raises(CheckpointFileError) as info:
        load_file(path)
    assert str(info.value).startswith(f"{path}: {PROBLEMS[kind]}")
    with pytest.raises(CheckpointFileError, match=PROBLEMS[kind].split(" (")[0]):
        read_state_dict(path)  # the library loaders use it too
    with pytest.raises(ConfigError, match=f"resume: {path}: "):
        load_checkpoint(path, field="resume")


def test_the_loader_reads_what_torch_save_wrote(tmp_path):
    state = {"w": torch.randn(3, 4)}
    for zipped in (True, False):
        path = tmp_path / f"ok{zipped}.pt"
        torch.save(state, path, _use_new_zipfile_serialization=zipped)
        for mmap in (False, True):  # the legacy format is read whole even when mapping
            assert torch.equal(load_file(path, mmap=mmap)["w"], state["w"])
    with pytest.raises(CheckpointFileError, match="holds a Tensor, not a state dict"):
        torch.save(torch.zeros(3), tmp_path / "tensor.pt")
        read_state_dict(tmp_path / "tensor.pt")


def _commands(tiny_data, tmp_path, weights):
    """Each command that reads weights, given ``weights``: (argv, flag)."""
    out = str(tmp_path / "out")
    train = ["train", *TINY_FLAGS, "--root", str(tiny_data), "--out-dir", out]
    return {
        "train --init": ([*train, "--init", weights], "--init"),
        "train --resume": (["train", "--resume", weights, "--out-dir", out], "--resume"),
        "evaluate": (["evaluate", "--checkpoint", weights, "--out", out + ".json"], "--checkpoint"),
        "inflate": (
            ["inflate", "--source", weights, "--model", "resnet3d_18", "--out", out + ".pt"],
            None,
        ),
        "transfer": (
            [
                "transfer",
                "--videos",
                str(tiny_data / "videos"),
                "--teacher",
                "resnet18",
                "--teacher-weights",
                weights,
                "--out-dir",
                out,
            ],
            "--teacher-weights",
        ),
    }


COMMANDS = ("train --init", "train --resume", "evaluate", "inflate", "transfer")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", PROBLEMS)
def test_each_command_reports_each_broken_file(command, kind, tiny_data, tmp_path, capsys):
    weights = _write(kind, tmp_path / "weights.pt")
    argv, flag = _commands(tiny_data, tmp_path, str(weights))[command]
    assert main(argv) == 1
    err = capsys.readouterr().err
    name = argv[0]
    assert "Traceback" not in err
    prefix = f"stc {name}: error: " + (f"{flag}: " if flag else "")
    assert f"{prefix}{weights}: {PROBLEMS[kind]}" in err, err
    assert not (tmp_path / "out" / "last.pt").exists()


def _training_checkpoint(path, task, model):
    torch.save(
        {"format": CHECKPOINT_FORMAT, "task": task, "config": {}, "model": model, "classes": []},
        path,
    )
    return path


def test_a_checkpoint_of_another_kind_is_named(tiny_data, tmp_path, capsys):
    transfer_run = _training_checkpoint(tmp_path / "t.pt", "transfer", {"w": torch.zeros(2)})
    classify_run = _training_checkpoint(
        tmp_path / "c.pt", "classify", {"conv1.weight": torch.zeros(4, 3, 3, 7, 7)}
    )
    student = tmp_path / "student.pt"
    torch.save({"format": "stc_ext.transfer.student/1", "model": {"w": torch.zeros(2)}}, student)
    cases = [
        ("train --resume", transfer_run, "is of a 'transfer' run, not a 'classify' one"),
        ("train --resume", student, "is a 'stc_ext.transfer.student/1' file, not a stc_ext"),
        ("evaluate", transfer_run, "is a 'transfer' checkpoint, not a classifier"),
        ("inflate", classify_run, "holds 3D weights (conv1.weight is 5-D)"),
        ("transfer", classify_run, "holding 3D weights (conv1.weight is 5-D), not a 2D teacher"),
    ]
    for command, weights, problem in cases:
        argv, _ = _commands(tiny_data, tmp_path, str(weights))[command]
        assert main(argv) == 1, command
        err = capsys.readouterr().err
        assert "Traceback" not in err and str(weights) in err and problem in err, (command, err)


def test_files_are_not_left_open(tmp_path):
    path = _write("truncated", tmp_path / "w.pt")
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    for _ in range(5):
        with pytest.raises(CheckpointFileError):
            load_file(path)
    after = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    assert after <= before
