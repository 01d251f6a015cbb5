"""A resume applies the settings it is given, records them, and extends each schedule
sensibly."""

from __future__ import annotations

import json
import math

import pytest
from train_helpers import tiny_config

from stc_ext.cli import main
from stc_ext.train import ClassifyTask, Trainer, load_checkpoint, train


def _lrs(result):
    return [row["lr"] for row in result.history]


@pytest.fixture(scope="module")
def two_epochs(tiny_data, tmp_path_factory):
    """Finished 2-epoch runs of each schedule: {scheduler: run folder}."""
    runs = {}
    for scheduler in ("none", "step", "cosine", "plateau"):
        out = tmp_path_factory.mktemp(scheduler)
        train(_config(tiny_data, out, scheduler, epochs=2))
        runs[scheduler] = out
    return runs


def _config(data, out, scheduler, **changes):
    return tiny_config(data, out, scheduler=scheduler, lr_step=1, lr_factor=0.5, **changes)


def _resume(data, run, tmp_path, scheduler, **changes):
    out = tmp_path / "resumed"
    config = _config(data, out, scheduler, resume=str(run / "last.pt"), **changes)
    return train(config), out


@pytest.mark.slow  # > 1 s idle; make test runs it
def test_a_changed_lr_is_applied_and_recorded(tiny_data, two_epochs, tmp_path, capsys):
    run = two_epochs["none"]
    out = tmp_path / "resumed"
    code = main(
        [
            "train",
            "--resume",
            str(run / "last.pt"),
            "--out-dir",
            str(out),
            "--epochs",
            "4",
            "--lr",
            "0.5",
            "--weight-decay",
            "0.001",
        ]
    )
    assert code == 0
    assert "resumed at step 6 with epochs 2 -> 4, lr 0.05 -> 0.5" in capsys.readouterr().out
    saved = load_checkpoint(out / "last.pt")
    assert [row["lr"] for row in saved["history"]] == [0.05, 0.05, 0.5, 0.5]
    assert saved["optimizer"]["param_groups"][0]["weight_decay"] == 0.001
    entry = saved["overrides"][-1]
    assert entry["step"] == 6 and entry["epoch"] == 2 and entry["resumed_from"].endswith("last.pt")
    assert entry["changes"]["lr"] == [0.05, 0.5] and entry["changes"]["epochs"] == [2, 4]
    assert entry["changes"]["weight_decay"] == [0.0001, 0.001]
    config_json = json.loads((out / "config.json").read_text())
    assert config_json["epochs"] == 4 and config_json["lr"] == 0.5
    assert config_json["overrides"] == saved["overrides"]
    # config.json still reads back as a config file (its history is not an option).
    assert main(["train", "--config", str(out / "config.json"), "--resume", str(out / "last.pt"),
                 "--epochs", "4"]) == 0  # fmt: skip


def test_a_resume_without_changes_records_nothing(tiny_data, two_epochs, tmp_path):
    result, out = _resume(tiny_data, two_epochs["none"], tmp_path, "none", epochs=2)
    assert result.overrides == [] and "overrides" not in json.loads(
        (out / "config.json").read_text()
    )


def test_extending_a_cosine_run_follows_the_longer_curve(tiny_data, two_epochs, tmp_path):
    result, _ = _resume(tiny_data, two_epochs["cosine"], tmp_path, "cosine", epochs=4)
    curve = [0.05 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert _lrs(result)[:2] == pytest.approx([0.05, 0.025])  # the 2-epoch curve ran
    assert _lrs(result)[2:] == pytest.approx(curve[2:])  # then the 4-epoch one, not lr 0
    assert _lrs(result)[2] > 0


@pytest.mark.slow  # > 1 s idle; make test runs it
def test_extending_a_step_run_keeps_dividing(tiny_data, two_epochs, tmp_path):
    result, _ = _resume(tiny_data, two_epochs["step"], tmp_path, "step", epochs=4)
    assert _lrs(result) == pytest.approx([0.05, 0.025, 0.0125, 0.00625])
    result, _ = _resume(tiny_data, two_epochs["step"], tmp_path / "b", "step", epochs=3, lr=0.2)
    assert _lrs(result)[2] == pytest.approx(0.2 * 0.5**2)  # the new base lr, same staircase


def test_extending_a_plateau_run_keeps_its_state_and_applies_new_settings(
    tiny_data, two_epochs, tmp_path
):
    last = load_checkpoint(two_epochs["plateau"] / "last.pt")
    config = _config(
        tiny_data,
        tmp_path / "a",
        "plateau",
        epochs=4,
        patience=3,
        resume=str(two_epochs["plateau"] / "last.pt"),
    )
    trainer = Trainer(config, ClassifyTask())
    trainer.setup()
    try:
        plateau = trainer.schedule.plateau
        assert plateau.num_bad_epochs == last["scheduler"]["num_bad_epochs"]
        assert plateau.best == last["scheduler"]["best"]
        assert plateau.patience == 3 and plateau.factor == 0.5
        assert trainer.schedule.lr == last["optimizer"]["param_groups"][0]["lr"]
    finally:
        trainer.close()
    config = _config(
        tiny_data,
        tmp_path / "b",
        "plateau",
        epochs=4,
        lr=0.3,
        resume=str(two_epochs["plateau"] / "last.pt"),
    )
    trainer = Trainer(config, ClassifyTask())
    trainer.setup()
    trainer.close()
    assert trainer.schedule.lr == 0.3  # a changed lr is the plateau's new rate


def test_a_changed_momentum_and_scheduler_are_applied(tiny_data, two_epochs, tmp_path):
    result, out = _resume(tiny_data, two_epochs["cosine"], tmp_path, "step", epochs=3, momentum=0.5)
    saved = load_checkpoint(out / "last.pt")
    assert saved["optimizer"]["param_groups"][0]["momentum"] == 0.5
    assert _lrs(result)[2] == pytest.approx(0.05 * 0.5**2)
    assert set(result.overrides[-1]["changes"]) == {"epochs", "momentum", "scheduler"}
