"""The training loop's outputs and options, and the errors a bad configuration gets."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
import time

import pytest
import torch
from train_helpers import copy_dataset, tiny_config

from stc_ext.train import (
    ClassifyTask,
    ConfigError,
    Trainer,
    config_from_dict,
    format_train_summary,
    load_checkpoint,
    resolve_train_config,
    train,
)
from stc_ext.train.config import TrainConfig
from stc_ext.train.records import tensorboard_available


def _never(trainer, epoch, step):
    raise AssertionError("a training step ran despite the bad configuration")


def test_a_run_writes_its_files(finished_run):
    out, result = finished_run
    assert not result.interrupted and result.epochs_done == 1 and result.steps == 3
    assert (result.world_size, result.micro_batch_size, result.accumulation) == (1, 2, 2)
    for name in ("last.pt", "best.pt", "config.json", "metrics.csv", "metrics.jsonl", "curves.png"):
        assert (out / name).is_file(), name
    saved = config_from_dict(TrainConfig, json.loads((out / "config.json").read_text()))
    assert saved == result.config
    row = json.loads((out / "metrics.jsonl").read_text())
    assert row["epoch"] == 1 and row["step"] == 3 and 0 <= row["val_top1"] <= 1
    assert row["lr"] == 0.05 and row["train_loss"] > 0
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["classes"] == result.classes and ckpt["config"]["frames"] == 4
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in ckpt["model"])
    text = format_train_summary(result)
    assert "val top-1" in text and "finished: 1/1 epochs, 3 steps" in text
    if tensorboard_available():
        assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def _bad_configs(data, run_dir, tmp_path):
    def base(**changes):
        return tiny_config(data, changes.pop("out_dir", tmp_path / "new"), **changes)

    last = str(run_dir / "last.pt")
    return [
        (base(model="stc_resnet3d_11"), "model: unknown model 'stc_resnet3d_11'; did you mean"),
        (base(root=str(tmp_path / "nowhere")), "root: synthetic videos not found"),
        (base(root=str(tmp_path)), "annotations: synthetic split folder not found"),
        (base(dataset="ucf101"), "annotations: is required (ucf101 split folder)"),
        (base(micro_batch_size=3), "micro_batch_size: 3 does not divide the per-rank batch 4"),
        (base(batch_size=64, micro_batch_size=4), "larger than the training set (12 videos)"),
        (base(size=48), "size: must not exceed short_side, got 48 > 32"),
        (base(sync_bn=True), "sync_bn: needs CUDA devices"),
        (base(backend="cuda"), "backend: stc_ext: backend 'cuda' cannot run on cpu"),
        (base(model="resnet3d_10", branches="tcb"), "branches: resnet3d_10 has no STC blocks"),
        (base(dataset="kinetics"), "validates on val_annotations"),
        (base(init=str(tmp_path / "missing.pt")), f"init: {tmp_path / 'missing.pt'}: not found"),
        (
            base(out_dir=str(run_dir)),
            f"out_dir: {run_dir} already holds a run (last.pt); set resume",
        ),
        (
            base(resume=str(tmp_path / "missing.pt")),
            f"resume: {tmp_path / 'missing.pt'}: not found",
        ),
        (
            base(resume=last, frames=8),
            "the checkpoint was made for another model or optimiser "
            "(frames: checkpoint 4 vs now 8)",
        ),
        (base(resume=last, epochs=2, widths=[4, 4, 4, 4]), "widths: checkpoint [8, 8, 8, 8]"),
        (base(resume=last, optimizer="adamw"), "optimizer: checkpoint 'sgd' vs now 'adamw'"),
        (base(lr=0.0), "lr: must be positive, got 0.0"),
    ]


def test_bad_configurations_fail_before_training(tiny_data, finished_run, tmp_path):
    run_dir, _ = finished_run
    for config, message in _bad_configs(tiny_data, run_dir, tmp_path):
        with pytest.raises(ConfigError, match=re.escape(message)):
            train(config, on_step=_never)
    assert not (tmp_path / "new" / "last.pt").exists()


def test_batch_must_divide_among_ranks(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")  # as torchrun --nproc_per_node=3 would
    with pytest.raises(ConfigError, match="batch_size: 4 is not divisible by the world size 3"):
        train(tiny_config(tiny_data, tmp_path), on_step=_never)


def test_mid_epoch_resume_refuses_another_batch(tiny_data, tmp_path):
    def stop(trainer, epoch, step):
        trainer.request_stop()

    train(tiny_config(tiny_data, tmp_path), on_step=stop)
    config = resolve_train_config({"resume": str(tmp_path / "last.pt"), "micro_batch_size": 1})
    with pytest.raises(ConfigError, match="taken mid-epoch; it can only continue with the same"):
        train(config, on_step=_never)


def test_fine_tune_on_another_label_set(finished_run, tiny_data_2cls, tmp_path):
    run_dir, _ = finished_run
    source = load_checkpoint(run_dir / "best.pt")["model"]
    seen = {}

    def check(trainer, epoch, step):
        seen["classes"] = trainer.model.fc.out_features

    result = train(
        tiny_config(
            tiny_data_2cls, tmp_path, init=str(run_dir / "best.pt"), epochs=1, batch_size=2
        ),
        on_step=check,
    )
    assert seen["classes"] == 2 and result.classes == ["MoveUp", "MoveDown"]
    assert result.init_report["reinitialised"] == ["fc.weight", "fc.bias"]
    assert "conv1.weight" in result.init_report["loaded"]
    assert source["fc.weight"].shape[0] == 3


@pytest.mark.slow  # > 1 s idle; make test runs it
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision(tiny_data, tmp_path, amp):
    # bf16 needs 8 frames: oneDNN's bf16 Conv3d backward corrupts the heap for 4-frame clips
    # (7x7x7 stem, torch 2.13 CPU). fp16 convolutions are slow on the CPU: keep them small.
    frames, size = (8, 32) if amp == "bf16" else (4, 16)
    result = train(
        tiny_config(
            tiny_data,
            tmp_path,
            amp=amp,
            frames=frames,
            stride=1,
            epochs=1,
            size=size,
            short_side=size,
        )
    )
    assert torch.isfinite(torch.tensor(result.history[0]["train_loss"]))
    scaler = load_checkpoint(tmp_path / "last.pt")["scaler"]
    assert (scaler is not None) == (amp == "fp16")


@pytest.mark.slow  # dynamo traces the training step
def test_channels_last_and_compile(tiny_data, tmp_path, monkeypatch):
    calls = []
    compile_ = torch.compile

    def eager_compile(model, **kwargs):
        calls.append(type(model).__name__)
        # The eager backend traces with dynamo but skips code generation (seconds, not minutes).
        return compile_(model, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", eager_compile)
    config = dataclasses.replace(
        tiny_config(tiny_data, tmp_path, epochs=1), channels_last=True, compile=True, grad_clip=1.0
    )
    result = train(config)
    assert calls == ["ResNet3D"] and result.steps == 3
    state = load_checkpoint(tmp_path / "last.pt")["model"]
    assert "conv1.weight" in state  # saved from the unwrapped model


def test_adamw_with_a_cosine_schedule(tiny_data, tmp_path):
    result = train(
        tiny_config(tiny_data, tmp_path, optimizer="adamw", lr=1e-3, scheduler="cosine", epochs=2)
    )
    assert [row["lr"] for row in result.history] == pytest.approx([1e-3, 5e-4])
    state = load_checkpoint(tmp_path / "last.pt")["optimizer"]["state"]
    assert "exp_avg" in state[0]


def test_overwrite_replaces_the_previous_run(tiny_data, tmp_path):
    train(tiny_config(tiny_data, tmp_path, epochs=1, val_every=0))
    (tmp_path / "tensorboard").mkdir()

    def check(trainer, epoch, step):
        assert not (tmp_path / "best.pt").exists() and not (tmp_path / "tensorboard").exists()
        trainer.request_stop()

    result = train(tiny_config(tiny_data, tmp_path, epochs=1, overwrite=True), on_step=check)
    assert result.interrupted and result.best is None


def test_list_files_with_class_names(tiny_data, tmp_path):
    splits = tiny_data / "splits"
    train_lines = [
        line.split()[0] for line in (splits / "trainlist01.txt").read_text().split("\n") if line
    ]
    test_lines = (splits / "testlist01.txt").read_text().split()
    for name, lines in (("train.txt", train_lines), ("val.txt", test_lines)):
        (tmp_path / name).write_text("".join(f"{p} {p.split('/')[0]}\n" for p in lines))
    result = train(
        tiny_config(
            tiny_data,
            tmp_path / "run",
            dataset="list",
            root=str(tiny_data / "videos"),
            annotations=str(tmp_path / "train.txt"),
            val_annotations=str(tmp_path / "val.txt"),
            epochs=1,
        )
    )
    assert result.classes == sorted(result.classes) and len(result.classes) == 3
    assert result.history[0]["val_top1"] >= 0


def test_fp16_on_a_cpu_is_warned_about(tiny_data, tmp_path, caplog):
    trainer = Trainer(tiny_config(tiny_data, tmp_path, amp="fp16", device="cpu"), ClassifyTask())
    with caplog.at_level(logging.WARNING, logger="stc_ext"):
        trainer.setup()
    trainer.close()
    assert any("amp fp16 on a CPU" in r.getMessage() for r in caplog.records)


def test_a_class_without_training_videos_is_an_error(tiny_data, tmp_path):
    data = copy_dataset(tiny_data, tmp_path / "data")
    shutil.rmtree(data / "videos" / "Grow")  # its folder is missing; classInd.txt lists it
    with pytest.raises(
        ConfigError, match=r"1 of 3 classes have no training video \(4 listed videos are missing"
    ) as info:
        train(tiny_config(data, tmp_path / "run"), on_step=_never)
    assert str(info.value).endswith(
        ": Grow. Restore their videos, or remove the classes from the class list"
    )


@pytest.mark.slow  # > 1 s idle; make test runs it
def test_data_wait_is_measured_and_a_slow_loader_is_named(tiny_data, tmp_path, monkeypatch, caplog):
    from stc_ext.data import VideoClipDataset

    read = VideoClipDataset.__getitem__

    def slow_read(self, index):
        time.sleep(0.15)  # a decoder far slower than this tiny network
        return read(self, index)

    monkeypatch.setattr(VideoClipDataset, "__getitem__", slow_read)
    with caplog.at_level(logging.INFO, logger="stc_ext.train"):
        result = train(tiny_config(tiny_data, tmp_path / "run", epochs=1, val_every=0))
    row = result.history[0]
    # 3 steps x 4 clips, each read sleeping 0.15 s: at least 1.8 s of the epoch is data wait.
    assert row["data_wait_s"] >= 1.8 and row["compute_s"] >= 0
    assert row["data_wait_s"] / (row["data_wait_s"] + row["compute_s"]) > 0.5
    assert "waiting for the data loader" in caplog.text and "stc prepare" in caplog.text
    assert "data wait" in format_train_summary(result)
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert logged["data_wait_s"] == row["data_wait_s"]
