"""Stop + resume reaches bitwise the weights of an uninterrupted run; Ctrl-C saves and exits."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from run_helpers import stop_at
from train_helpers import optimizer_buffers_equal, state_equal, tiny_config

from stc_ext.train import EvalConfig, evaluate, load_checkpoint, resolve_train_config, train


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    """Reference: 2 epochs x 3 steps, accumulation 2, dropout (so the RNG matters)."""
    out = tmp_path_factory.mktemp("reference")
    result = train(tiny_config(tiny_data, out, dropout=0.5))
    assert not result.interrupted and result.steps == 6
    return load_checkpoint(out / "last.pt")


def _assert_same_run(reference, resumed):
    assert state_equal(reference["model"], resumed["model"]) == []
    assert optimizer_buffers_equal(reference["optimizer"], resumed["optimizer"])
    assert reference["scheduler"] == resumed["scheduler"]
    assert reference["step"] == resumed["step"] and reference["epoch"] == resumed["epoch"]
    assert torch.equal(reference["rng"][0]["torch"], resumed["rng"][0]["torch"])
    for row_a, row_b in zip(reference["history"], resumed["history"], strict=True):
        for key in ("train_loss", "train_top1", "val_loss", "val_top1", "lr", "step"):
            assert row_a[key] == pytest.approx(row_b[key], rel=1e-12), key


def test_mid_epoch_stop_and_resume_is_bitwise_exact(tiny_data, tmp_path, uninterrupted):
    out = tmp_path / "run"
    config = tiny_config(tiny_data, out, dropout=0.5)
    first = train(config, on_step=stop_at(epoch=0, step=1))
    assert first.interrupted and first.steps == 2
    saved = load_checkpoint(out / "last.pt")
    assert saved["epoch"] == 0 and saved["batches_done"] == 4  # 2 steps x 2 micro-batches
    assert saved["sampler"] == {"epoch": 0, "position": 8, "seed": 7}
    # Resume through the config resolution a user gets (checkpoint config + flags), and
    # decode with a worker process this time: the data must not depend on it.
    resumed_config = resolve_train_config({"resume": str(out / "last.pt"), "workers": 1})
    assert resumed_config.dropout == 0.5 and resumed_config.workers == 1
    second = train(resumed_config)
    assert not second.interrupted and second.steps == 6
    _assert_same_run(uninterrupted, load_checkpoint(out / "last.pt"))


def test_resume_at_an_epoch_boundary_with_more_epochs(tiny_data, tmp_path, uninterrupted):
    out = tmp_path / "run"
    train(tiny_config(tiny_data, out, dropout=0.5, epochs=1))
    result = train(resolve_train_config({"resume": str(out / "last.pt"), "epochs": 2}))
    assert [row["epoch"] for row in result.history] == [1, 2]
    _assert_same_run(uninterrupted, load_checkpoint(out / "last.pt"))
    # One metrics row per finished epoch, no duplicates after the resume.
    lines = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch,step,lr,train_loss")
    assert len((out / "metrics.jsonl").read_text().strip().splitlines()) == 2


def test_ctrl_c_saves_a_checkpoint_and_returns(tiny_data, tmp_path):
    previous = signal.getsignal(signal.SIGINT)

    def interrupt(trainer, epoch, step):
        if (epoch, step) == (0, 0):
            os.kill(os.getpid(), signal.SIGINT)

    result = train(tiny_config(tiny_data, tmp_path, epochs=3), on_step=interrupt)
    assert result.interrupted and result.steps == 1 and result.epochs_done == 0
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved["batches_done"] == 2 and saved["step"] == 1
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is put back
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_second_ctrl_c_aborts(tiny_data, tmp_path):
    def interrupt_twice(trainer, epoch, step):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tiny_data, tmp_path), on_step=interrupt_twice)
    assert not (tmp_path / "last.pt").exists()


@pytest.mark.slow  # > 5 s
def test_checkpoints_with_the_old_shortcut_key_resume_and_evaluate(tiny_data, tmp_path):
    # Shortcut B gives the basic blocks downsample convs: a config read as shortcut A (the
    # default of ResNet-10) would build a model without them and fail to load the weights.
    out = tmp_path / "run"
    train(tiny_config(tiny_data, out, epochs=1, shortcut_type="B"))
    old = torch.load(out / "last.pt", weights_only=True)
    old["config"]["shortcut"] = old["config"].pop("shortcut_type")  # as earlier versions wrote
    torch.save(old, out / "last.pt")
    assert load_checkpoint(out / "last.pt")["config"]["shortcut_type"] == "B"
    report = evaluate(EvalConfig(checkpoint=str(out / "last.pt"), workers=0, progress=False))
    assert report.splits[0].num_videos == 3
    config = resolve_train_config({"resume": str(out / "last.pt"), "epochs": 2})
    assert config.shortcut_type == "B"
    result = train(config)
    assert result.epochs_done == 2
    assert "layer2.0.downsample.0.weight" in load_checkpoint(out / "last.pt")["model"]
