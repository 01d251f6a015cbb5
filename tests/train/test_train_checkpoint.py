"""Atomic checkpoints, RNG state capture, --init, and the resumable sampler."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from stc_ext import models
from stc_ext.train import (
    ConfigError,
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    load_init_weights,
    restore_rng_state,
)
from stc_ext.train.data import ResumableSampler, SeededDataset, sample_seed


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle this")


def test_atomic_save_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "last.pt"
    atomic_save({"value": torch.arange(3)}, path)
    with pytest.raises(RuntimeError, match="cannot pickle"):
        atomic_save({"value": _Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["value"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_load_checkpoint_rejects_foreign_files(tmp_path):
    atomic_save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ConfigError, match="not a stc_ext training checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(ConfigError, match="missing.pt: not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_round_trip_through_a_file(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    atomic_save({"rng": capture_rng_state()}, tmp_path / "rng.pt")
    first = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    second = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1]) and first[2] == second[2]


def _tiny(name: str, classes: int, frames: int = 4) -> torch.nn.Module:
    return models.build(name, classes, frames=frames, size=32, widths=(8, 8, 8, 8))


def test_init_reinitialises_the_classifier_for_another_class_count(tmp_path):
    torch.manual_seed(0)
    source = _tiny("stc_resnet3d_10", 5)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "src.pth")
    target = _tiny("stc_resnet3d_10", 3)
    fresh_fc = target.fc.weight.detach().clone()
    report = load_init_weights(target, tmp_path / "src.pth", frames=4)
    assert report["reinitialised"] == ["fc.weight", "fc.bias"]
    assert torch.equal(target.fc.weight, fresh_fc)
    assert torch.equal(target.conv1.weight, source.conv1.weight)
    assert torch.equal(target.layer2[0].stc.scb.fc1.weight, source.layer2[0].stc.scb.fc1.weight)


def test_init_from_a_plain_network_keeps_stc_blocks_fresh(tmp_path):
    torch.manual_seed(0)
    torch.save(_tiny("resnet3d_10", 3).state_dict(), tmp_path / "plain.pt")
    report = load_init_weights(_tiny("stc_resnet3d_10", 3), tmp_path / "plain.pt", frames=4)
    assert report["kept_fresh"] and all(".stc." in k for k in report["kept_fresh"])


def test_init_with_other_frames_names_the_frame_count(tmp_path):
    source = _tiny("stc_resnet3d_10", 3, frames=8)
    torch.save({"model": source.state_dict(), "config": {"frames": 8}}, tmp_path / "f8.pt")
    with pytest.raises(ConfigError, match="trained with frames=8 but this run uses frames=4"):
        load_init_weights(_tiny("stc_resnet3d_10", 3, frames=4), tmp_path / "f8.pt", frames=4)


def test_sampler_resumes_mid_epoch_and_cuts_to_whole_steps():
    data = list(range(11))
    sampler = ResumableSampler(data, num_replicas=1, rank=0, seed=5, samples_per_step=4)
    assert sampler.steps_per_epoch == 2 and len(sampler) == 8
    sampler.set_epoch(3)
    full = list(sampler)
    assert len(full) == 8 and len({i for i, _ in full}) == 8
    assert all(seed == sample_seed(5, 3, i) for i, seed in full)
    sampler.set_position(4)
    assert list(sampler) == full[4:] and len(sampler) == 4
    sampler.set_epoch(4)
    sampler.set_position(0)
    assert [i for i, _ in sampler] != [i for i, _ in full]  # another epoch, another order


def test_sampler_ranks_are_disjoint():
    data = list(range(16))
    shards = [[i for i, _ in ResumableSampler(data, 2, r, 0, 2)] for r in range(2)]
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) == len(shards[1]) == 8


def test_seeded_dataset_is_reproducible_and_leaves_the_global_rng_alone():
    class Noise(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.rand(2) + i

    data = SeededDataset(Noise())
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a, b = data[(1, 99)], data[(1, 99)]
    assert torch.equal(a, b) and not torch.equal(a, data[(1, 98)])
    assert torch.equal(torch.get_rng_state(), before)
