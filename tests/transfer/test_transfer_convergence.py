"""The correspondence task learns: a few dozen optimiser steps of the transfer (the trainer,
the pairs from decoded videos, the network, the small-scale levers the Table 7 recipe uses)
drive the training pair accuracy well above chance, and the same run on shuffled pair labels
stays at chance. The check that the transfer at small scale was missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transfer_helpers import tiny_transfer_config

import stc_ext.transfer.task as transfer_task
from stc_ext.data import read_video_folder, synthetic
from stc_ext.train import Trainer
from stc_ext.transfer import PairDataset, TransferTask, collate_pairs

pytestmark = pytest.mark.slow  # two runs of 60 steps: about 20-40 s on 2 busy cores

VIDEOS = 8


@pytest.fixture(scope="module")
def colour_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 videos of 8 frames, each one flat colour of its own plus pixel noise: which video a
    frame comes from is plain to see, so a working transfer finds it within few steps."""
    pytest.importorskip("av", reason="PyAV is needed to write and decode the videos")
    root = tmp_path_factory.mktemp("colour_videos")
    rng = np.random.default_rng(0)
    for video in range(VIDEOS):
        colour = rng.integers(20, 236, 3)
        frames = colour + rng.normal(0, 6, (8, 32, 32, 3))
        synthetic.write_video(root / f"video{video}.mp4", np.clip(frames, 0, 255).astype(np.uint8))
    return root


class _ShuffledLabels(PairDataset):
    """Training pairs whose label is a coin flip (from the item's seeded stream), whatever the
    pair: nothing to learn."""

    def __getitem__(self, index: int):
        item = super().__getitem__(index)
        if self.mode != "train":
            return item
        frames, clip, _ = item
        return frames, clip, int(torch.randint(0, 2, (1,)))


def _train(videos: Path, teacher: Path, out: Path, monkeypatch, shuffled: bool):
    if shuffled:
        monkeypatch.setattr(transfer_task, "PairDataset", _ShuffledLabels)
    config = tiny_transfer_config(
        videos,
        teacher,
        out,
        model="resnet3d_10",
        val_fraction=0.0,  # every video trains; accuracy is measured on training pairs
        epochs=60,  # 16 pairs per epoch, one step each
        batch_size=16,
        micro_batch_size=16,
        optimizer="adamw",
        lr=1e-3,
        scheduler="none",
        # The Table 7 recipe's levers, scaled to this run.
        feature_norm="batchnorm",
        head_warmup_steps=10,
    )
    trainer = Trainer(config, TransferTask())
    trainer.setup()
    result = trainer.fit()
    monkeypatch.undo()
    return trainer, result


def _training_pair_accuracy(trainer: Trainer, videos: Path) -> float:
    """Accuracy on every training video's fixed pairs (true labels, centre positions), plus
    four epochs of randomly drawn training pairs: 80 pairs in all."""
    cfg = trainer.config
    source = read_video_folder(videos)

    def pairs(mode: str) -> PairDataset:
        return PairDataset(
            source, cfg.frames, cfg.stride, cfg.teacher_frames, mode, cfg.short_side, cfg.size
        )

    items = [pairs("val")[i] for i in range(2 * VIDEOS)]
    train_pairs = pairs("train")
    torch.manual_seed(123)
    items += [train_pairs[i] for _ in range(4) for i in range(2 * VIDEOS)]
    batch, skipped = collate_pairs(items)
    assert batch is not None and not skipped
    model = trainer.model.eval()
    with torch.no_grad():
        predicted = model(batch.frames, batch.clips).argmax(dim=1)
    return float((predicted == batch.labels).float().mean())


def test_the_transfer_learns_the_training_pairs(colour_videos, teacher_file, tmp_path, monkeypatch):
    trainer, result = _train(colour_videos, teacher_file, tmp_path / "run", monkeypatch, False)
    assert result.steps == 60 and trainer.model.phase == "joint"
    accuracy = _training_pair_accuracy(trainer, colour_videos)
    assert accuracy >= 0.8, f"training pair accuracy {accuracy:.3f} after 60 steps"
    # The trainer's own running figure agrees: the last epochs are well above chance.
    assert np.mean([row["train_top1"] for row in result.history[-10:]]) >= 0.75


def test_shuffled_pair_labels_stay_at_chance(colour_videos, teacher_file, tmp_path, monkeypatch):
    trainer, result = _train(colour_videos, teacher_file, tmp_path / "run", monkeypatch, True)
    assert result.steps == 60
    accuracy = _training_pair_accuracy(trainer, colour_videos)
    assert abs(accuracy - 0.5) <= 0.15, f"training pair accuracy {accuracy:.3f} on true labels"
