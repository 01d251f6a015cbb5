"""The engine runs any Task: a toy task without videos trains, checkpoints, exports and
resumes bit for bit through ``Trainer``, and other tasks refuse its checkpoints."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from run_helpers import stop_at
from torch import nn
from train_helpers import state_equal

from stc_ext.data import ClipBatch, collate_clips
from stc_ext.train import (
    ConfigError,
    RunConfig,
    TaskData,
    TrainConfig,
    Trainer,
    load_checkpoint,
    train,
)

SHAPE = (3, 2, 4, 4)  # (C, T, H, W) of a toy clip


class SignTask:
    """Tell random clips with a positive mean from the others (no files, no videos)."""

    name = "sign"
    accuracy_name = "sign acc"
    model_fields = ("frames", "size", "dropout", "optimizer")
    schedule_fields = ("batch_size", "seed")
    export_name = "weights.pt"
    init_report = None

    def check(self, config: RunConfig) -> None:
        if config.frames != SHAPE[1]:
            raise ConfigError(f"the sign task has {SHAPE[1]}-frame clips", field="frames")

    def build_data(self, config: RunConfig) -> TaskData:
        generator = torch.Generator().manual_seed(0)
        clips = torch.randn(24, *SHAPE, generator=generator)
        labels = (clips.mean(dim=(1, 2, 3, 4)) > 0).long().tolist()
        items = list(zip(clips, labels, strict=True))
        return TaskData(
            classes=["negative", "positive"],
            train=items[:16],
            val=items[16:],
            collate=collate_clips,
            summary="16 random clips",
            train_size="the 16 random clips",
        )

    def build_model(self, config, data, checkpoint) -> nn.Module:
        width = SHAPE[0] * SHAPE[1] * SHAPE[2] * SHAPE[3]
        model = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(width, 2))
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model"])
        return model

    def unpack(self, batch: ClipBatch):
        return (batch.clips,), batch.labels

    def dummy_batch(self, config: RunConfig) -> ClipBatch:
        return ClipBatch(torch.zeros(1, *SHAPE), torch.zeros(1, dtype=torch.int64))

    def model_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return model.state_dict()

    def checkpoint_extras(self, model_state) -> dict[str, object]:
        return {"weight_norm": float(model_state["2.weight"].norm())}

    def export(self, checkpoint, path) -> None:
        torch.save(checkpoint["model"], path)

    def describe(self, config: RunConfig, data: TaskData) -> str:
        return f"sign of {len(data.train)} random clips"


def _config(out, **changes) -> RunConfig:
    values = dict(
        model="resnet3d_10",
        frames=2,
        size=4,
        short_side=4,
        epochs=2,
        batch_size=4,
        micro_batch_size=2,
        lr=0.1,
        dropout=0.5,
        workers=0,
        out_dir=str(out),
        progress=False,
        tensorboard=False,
        seed=3,
    )
    values.update(changes)
    return RunConfig(**values)


def _run(config: RunConfig, on_step=None):
    trainer = Trainer(config, SignTask(), on_step=on_step)
    trainer.setup()
    return trainer.fit()


def test_a_custom_task_trains_checkpoints_and_exports(tmp_path):
    result = _run(_config(tmp_path))
    assert (result.task, result.description) == ("sign", "sign of 16 random clips")
    assert result.classes == ["negative", "positive"] and result.steps == 8
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert all(0 <= row["val_top1"] <= 1 for row in result.history)
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint["task"] == "sign"
    assert checkpoint["weight_norm"] == pytest.approx(float(checkpoint["model"]["2.weight"].norm()))
    assert result.exported == tmp_path / "weights.pt"
    assert state_equal(torch.load(result.exported, weights_only=True), checkpoint["model"]) == []
    with pytest.raises(ConfigError, match="^frames: the sign task has 2-frame clips"):
        _run(_config(tmp_path / "other", frames=4))


def test_a_custom_task_resumes_bitwise_and_keeps_its_checkpoints(tmp_path):
    reference = _run(_config(tmp_path / "reference"))
    out = tmp_path / "run"
    first = _run(_config(out), on_step=stop_at(epoch=0, step=1))
    assert first.interrupted and first.steps == 2
    resumed = _run(dataclasses.replace(_config(out), resume=str(out / "last.pt")))
    assert resumed.steps == reference.steps and not resumed.interrupted
    expected = load_checkpoint(tmp_path / "reference" / "last.pt")["model"]
    assert state_equal(expected, load_checkpoint(out / "last.pt")["model"]) == []
    with pytest.raises(ConfigError, match="'sign' run, not a 'classify' one"):
        train(TrainConfig(resume=str(out / "last.pt"), out_dir=str(tmp_path / "classify")))
