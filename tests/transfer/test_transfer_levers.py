"""The small-scale levers of CorrespondenceNet: feature normalisation and the head warm-up on
the teacher side (stc_ext/transfer/model.py)."""

from __future__ import annotations

import pytest
import torch
from run_helpers import stop_at
from transfer_helpers import TEACHER_WIDTHS, tiny_transfer_config

from stc_ext import models
from stc_ext.models.resnet2d import resnet2d
from stc_ext.train import ConfigError, config_from_dict, load_checkpoint
from stc_ext.transfer import (
    FEATURE_NORMS,
    CorrespondenceNet,
    TransferConfig,
    build_teacher,
    resolve_transfer_config,
    transfer,
)

EMBED = 16


def _net(seed: int = 0, **levers) -> CorrespondenceNet:
    torch.manual_seed(seed)
    teacher = build_teacher(
        "resnet18", resnet2d(18, widths=TEACHER_WIDTHS).state_dict(), TEACHER_WIDTHS
    )
    student = models.build("resnet3d_10", EMBED, frames=4, size=32, widths=(8, 8, 8, 8))
    return CorrespondenceNet(student, teacher, EMBED, world_size=1, **levers)


def _batch(n: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(n, 3, 4, 32, 32, generator=g)
    clips = torch.randn(n, 3, 4, 32, 32, generator=g)
    labels = torch.arange(n) % 2
    return frames, clips, labels


def _grads(net: CorrespondenceNet) -> dict[str, float]:
    """Largest |gradient| per part after one backward (None grads count as missing)."""
    out = {}
    for part in ("student", "teacher_proj", "head"):
        grads = [p.grad for p in getattr(net, part).parameters()]
        assert all(g is not None for g in grads), f"{part}: a parameter got no gradient"
        out[part] = max(float(g.abs().max()) for g in grads)
    return out


def _step(net: CorrespondenceNet, seed: int = 1) -> dict[str, float]:
    frames, clips, labels = _batch(seed=seed)
    net.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(net(frames, clips), labels).backward()
    return _grads(net)


def test_the_defaults_are_the_papers_network():
    net = _net()
    assert net.phase == "joint" and net.feature_norm == "none"
    grads = _step(net)
    assert all(v > 0 for v in grads.values()), grads


def test_the_warm_up_trains_the_head_then_everything_trains():
    net = _net(head_warmup_pairs=8).train()
    before = {k: v.clone() for k, v in net.student.state_dict().items()}
    phases, grads = [], []
    for i in range(3):  # batches of 4 pairs: warm-up, warm-up, joint
        phases.append(net.phase)
        grads.append(_step(net, seed=i))
        if i == 1:  # the student has not run: its BatchNorm statistics are untouched
            after = net.student.state_dict()
            assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert phases == ["head_warmup", "head_warmup", "joint"]
    assert int(net.pairs_seen) == 12
    # Warm-up: the student gets zero gradients, the head and the projection learn.
    assert grads[0]["student"] == 0 and grads[0]["head"] > 0 and grads[0]["teacher_proj"] > 0
    assert all(v > 0 for v in grads[2].values())


def test_the_warm_up_compares_the_teacher_with_itself_on_the_clip():
    """In the warm-up the video side is the image side computed on the clip's frames."""
    net = _net(head_warmup_pairs=100).train()
    frames, clips, _ = _batch()
    expected = net.head(torch.cat([net.image_features(frames), net.image_features(clips)], 1))
    net.pairs_seen.zero_()
    torch.testing.assert_close(net(frames, clips), expected)


def test_evaluation_runs_the_student_and_counts_nothing():
    net = _net(head_warmup_pairs=100)
    frames, clips, _ = _batch()
    joint = _net()
    joint.load_state_dict(net.state_dict())
    net.eval(), joint.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(frames, clips), joint(frames, clips))
    net.train()
    with torch.no_grad():  # e.g. statistics taken in training mode: not a training step
        net(frames, clips)
    assert int(net.pairs_seen) == 0 and net.phase == "head_warmup"


def test_pairs_seen_counts_global_pairs_and_is_saved():
    net = _net(head_warmup_pairs=10)
    net.world_size = 3
    _step(net)
    assert int(net.pairs_seen) == 12 and net.phase == "joint"
    assert int(net.trainable_state_dict()["pairs_seen"]) == 12


@pytest.mark.parametrize("norm", FEATURE_NORMS)
def test_feature_norm(norm):
    net = _net(feature_norm=norm).train()
    frames, clips, _ = _batch(n=6)
    image, video = net.image_features(frames), net.video_features(clips)
    assert image.shape == video.shape == (6, EMBED)
    if norm == "layernorm":  # per sample: zero mean, unit variance
        torch.testing.assert_close(video.mean(1), torch.zeros(6), atol=1e-5, rtol=0)
        torch.testing.assert_close(video.var(1, unbiased=False), torch.ones(6), atol=1e-3, rtol=0)
    if norm == "batchnorm":  # per feature over the batch
        torch.testing.assert_close(image.mean(0), torch.zeros(EMBED), atol=1e-5, rtol=0)
    assert all(v > 0 for v in _step(net).values())


def test_bad_levers_are_named(unlabeled_videos, teacher_file, tmp_path):
    with pytest.raises(ValueError, match="feature_norm must be one of"):
        _net(feature_norm="l2")
    with pytest.raises(ValueError, match="head_warmup_pairs must be >= 0"):
        _net(head_warmup_pairs=-1)
    config = tiny_transfer_config(unlabeled_videos, teacher_file, tmp_path, head_warmup_steps=-2)
    with pytest.raises(ConfigError, match="head_warmup_steps: must not be negative, got -2"):
        config.validate()
    with pytest.raises(ConfigError, match="feature_norm: must be one of none, layernorm, "):
        config_from_dict(TransferConfig, {"feature_norm": "l2"})
    config = tiny_transfer_config(unlabeled_videos, teacher_file, tmp_path, head_warmup_steps=3)
    assert config.correspondence_options() == {
        "feature_norm": "none",
        "head_warmup_pairs": 3 * config.batch_size,
    }


@pytest.mark.slow  # three tiny runs: about 9 s
def test_a_run_stopped_in_the_warm_up_resumes_exactly(unlabeled_videos, teacher_file, tmp_path):
    """pairs_seen travels in the checkpoint: the resumed run switches phase at the same step."""
    levers = dict(feature_norm="batchnorm", head_warmup_steps=3, model="resnet3d_10")
    reference = transfer(
        tiny_transfer_config(unlabeled_videos, teacher_file, tmp_path / "a", **levers)
    )
    first = transfer(
        tiny_transfer_config(unlabeled_videos, teacher_file, tmp_path / "b", **levers),
        on_step=stop_at(epoch=0, step=1),
    )
    assert (
        first.interrupted
        and int(load_checkpoint(tmp_path / "b" / "last.pt")["model"]["pairs_seen"]) == 8
    )
    # The normalisation is part of the network: resuming with another one is refused.
    with pytest.raises(ConfigError, match="feature_norm: checkpoint 'batchnorm' vs now 'none'"):
        transfer(
            resolve_transfer_config(
                {"resume": str(tmp_path / "b" / "last.pt"), "feature_norm": "none"}
            )
        )
    resumed = transfer(resolve_transfer_config({"resume": str(tmp_path / "b" / "last.pt")}))
    assert resumed.steps == reference.steps == 8
    a = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert int(a["pairs_seen"]) == 32
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
