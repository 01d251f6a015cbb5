"""The memory a configuration needs is estimated before training and compared with what the
machine has."""

from __future__ import annotations

import logging

import pytest
import torch
from train_helpers import tiny_config

from stc_ext.models import build_from_config
from stc_ext.train import ClassifyTask, ConfigError, Trainer
from stc_ext.train import trainer as trainer_module
from stc_ext.train.memory import available_memory, estimate_training_memory


def _tiny_model():
    config = {"model": "stc_resnet3d_10", "widths": [8, 8, 8, 8], "frames": 4, "size": 32}
    torch.manual_seed(0)
    return build_from_config(config, num_classes=3).train()


def _clips(batch):
    return [torch.empty(batch, 3, 4, 32, 32, device="meta")]


def _saved_bytes_of_a_real_pass(model, batch):
    """What autograd saves in a real forward pass (the fake pass must count the same)."""
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    own = {p.untyped_storage().data_ptr() for p in (*model.parameters(), *model.buffers())}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.randn(batch, 3, 4, 32, 32))
    return sum(n for ptr, n in saved.items() if ptr not in own)


def test_the_estimate_counts_what_a_real_step_holds():
    model = _tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    estimate = estimate_training_memory(model, _clips(4), optimizer="sgd")
    # The fake pass leaves the model alone (BatchNorm statistics included).
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert estimate.activations == _saved_bytes_of_a_real_pass(model, 4)
    params = sum(p.numel() * 4 for p in model.parameters())
    assert estimate.gradients == params and estimate.optimizer == params
    adamw = estimate_training_memory(model, _clips(4), optimizer="adamw", ddp=True)
    assert adamw.optimizer == 2 * params and adamw.gradients == 2 * params
    # Activations grow with the micro-batch.
    assert estimate_training_memory(model, _clips(8)).activations > 1.8 * estimate.activations


def test_a_configuration_too_big_for_the_machine_is_warned_about(
    tiny_data, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(trainer_module, "available_memory", lambda device: 2**20)
    trainer = Trainer(tiny_config(tiny_data, tmp_path), ClassifyTask())
    with caplog.at_level(logging.INFO, logger="stc_ext"):
        trainer.setup()
    trainer.close()
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "this configuration needs about" in warning and "1.0 MiB available" in warning
    for flag in ("--micro-batch-size", "--frames", "--size", "--model"):
        assert flag in warning
    assert trainer.memory_estimate.total > 2**20


def test_a_micro_batch_batchnorm_cannot_train_on_is_refused_up_front(tiny_data, tmp_path):
    # At 32 px and 4 frames the last stage's maps are 1x1x1: one clip is one value.
    with pytest.raises(ConfigError) as info:
        Trainer(
            tiny_config(tiny_data, tmp_path, batch_size=2, micro_batch_size=1), ClassifyTask()
        ).setup()
    assert info.value.field == "micro_batch_size"
    assert "one value per channel" in str(info.value) and "at least 2" in str(info.value)


def test_available_memory_of_this_machine():
    free = available_memory(torch.device("cpu"))
    assert free is None or free > 0


@pytest.mark.slow  # builds STC-ResNet-101
def test_the_papers_defaults_need_more_than_a_laptop_has():
    # STC-ResNet-101, 16 x 112 x 112 clips, batch 128 in one pass: the configuration that
    # was killed at 22 GB on a laptop-class machine.
    model = build_from_config({"model": "stc_resnet3d_101", "frames": 16, "size": 112}, 101)
    estimate = estimate_training_memory(
        model.train(), [torch.empty(128, 3, 16, 112, 112, device="meta")]
    )
    assert 16 * 2**30 < estimate.total < 64 * 2**30
