"""`stc train` / `stc evaluate` end to end: config file, resume, evaluate, Ctrl-C, torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.distributed as dist
from train_helpers import TINY_FLAGS

from stc_ext.cli import main
from stc_ext.train import load_checkpoint


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


@pytest.mark.slow  # three runs: train, resume, evaluate
def test_train_resume_evaluate_through_the_cli(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    config = tmp_path / "tiny.json"
    config.write_text(
        json.dumps(
            {
                "dataset": "synthetic",
                "model": "stc_resnet3d_10",
                "widths": [8, 8, 8, 8],
                "frames": 4,
                "size": 32,
                "short_side": 32,
                "batch_size": 4,
                "micro_batch_size": 2,
                "lr": 0.05,
                "workers": 0,
                "progress": False,
                "tensorboard": False,
                "epochs": 5,
            }
        )
    )
    # Flags override the file.
    assert (
        main(
            [
                "train",
                "--config",
                str(config),
                "--root",
                str(tiny_data),
                "--out-dir",
                str(out),
                "--epochs",
                "1",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    summary = capsys.readouterr().out
    assert "finished: 1/1 epochs, 3 steps" in summary and "val top-1" in summary
    assert json.loads((out / "config.json").read_text())["epochs"] == 1

    assert main(["train", "--resume", str(out / "last.pt"), "--epochs", "2"]) == 0
    assert "finished: 2/2 epochs, 6 steps" in capsys.readouterr().out
    saved = json.loads((out / "config.json").read_text())
    assert saved["epochs"] == 2 and saved["resume"] == str(out / "last.pt")
    assert load_checkpoint(out / "last.pt")["epoch"] == 2

    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(out / "best.pt"),
                "--splits",
                "1,2",
                "--workers",
                "0",
                "--no-progress",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "top-1" in table and "mean class" in table and "\nmean " in table
    report = json.loads((out / "eval_test_split1-2.json").read_text())
    assert [s["split"] for s in report["splits"]] == [1, 2]


def test_cli_reports_bad_configuration_without_a_traceback(tiny_data, tmp_path, capsys):
    code = main(
        [
            "train",
            *TINY_FLAGS,
            "--root",
            str(tiny_data),
            "--out-dir",
            str(tmp_path),
            "--model",
            "stc_resnet3d_19",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.startswith(
        "stc train: error: --model: unknown model 'stc_resnet3d_19'"
    )
    # The library names the config field; the command shows its flag instead.
    code = main(["train", *TINY_FLAGS, "--root", str(tiny_data), "--micro-batch-size", "-1"])
    err = capsys.readouterr().err
    assert code == 1 and err == "stc train: error: --micro-batch-size: must be positive, got -1\n"
    code = main(["train", "--config", str(tmp_path / "none.yaml")])
    assert code == 1 and "config file not found" in capsys.readouterr().err
    code = main(["evaluate", "--checkpoint", str(tmp_path / "none.pt")])
    assert (
        code == 1 and f"--checkpoint: {tmp_path / 'none.pt'}: not found" in capsys.readouterr().err
    )


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"stc train exited early:\n{proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear within {seconds} s")
        time.sleep(0.2)


@pytest.mark.slow  # a subprocess trains a whole epoch first
def test_ctrl_c_saves_and_exits_cleanly(tiny_data, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stc_ext",
            "train",
            *TINY_FLAGS,
            "--root",
            str(tiny_data),
            "--out-dir",
            str(out),
            "--epochs",
            "1000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_subprocess_env(),
    )
    _wait_for(out / "metrics.csv", proc, seconds=240)  # after the first epoch
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "SIGINT received" in stderr
    assert "INTERRUPTED" in stdout
    saved = load_checkpoint(out / "last.pt")
    assert saved["epoch"] >= 1 and saved["step"] >= 3


@pytest.mark.slow  # torchrun starts two processes
@pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(),
    reason="torch.distributed with gloo is needed",
)
def test_torchrun_two_processes(tiny_data, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "stc_ext",
            "train",
            *TINY_FLAGS,
            "--root",
            str(tiny_data),
            "--out-dir",
            str(out),
            "--epochs",
            "1",
        ],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("finished: 1/1 epochs") == 1  # rank 0 prints the summary
    assert "1 epochs x 3 steps, batch 4 = 2 rank(s) x 2 clips x 1 accumulation" in proc.stderr
    saved = load_checkpoint(out / "last.pt")
    assert saved["world_size"] == 2 and len(saved["rng"]) == 2 and saved["step"] == 3
