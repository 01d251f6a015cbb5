"""The correspondence network: shapes, the frozen teacher, the head, learning on real pairs."""

from __future__ import annotations

import pytest
import torch
from transfer_helpers import TEACHER_WIDTHS

from stc_ext import models
from stc_ext.data import read_video_folder
from stc_ext.models.resnet2d import resnet2d
from stc_ext.transfer import (
    HEAD_WIDTHS,
    CorrespondenceNet,
    PairDataset,
    build_teacher,
    collate_pairs,
    student_init_state,
)


def _net(teacher_file, embed_dim: int = 32, seed: int = 0) -> CorrespondenceNet:
    torch.manual_seed(seed)
    student = models.build("stc_resnet3d_10", embed_dim, frames=4, size=32, widths=(8, 8, 8, 8))
    return CorrespondenceNet(
        student, build_teacher("resnet18", teacher_file, TEACHER_WIDTHS), embed_dim
    )


def test_head_has_the_papers_layers(teacher_file):
    net = _net(teacher_file, embed_dim=1024)
    linears = [m for m in net.head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (2048, HEAD_WIDTHS[0]),
        (2048, 512),
        (512, 128),
        (128, 2),
    ]
    assert net.student.fc.out_features == 1024 and net.teacher_proj.out_features == 1024
    assert net.teacher_proj.in_features == net.teacher.feature_dim == 16


def test_forward_shapes_and_teacher_feature_average(teacher_file):
    net = _net(teacher_file).eval()
    frames, clip = torch.randn(3, 3, 5, 32, 32), torch.randn(3, 3, 4, 32, 32)
    assert net(frames, clip).shape == (3, 2)
    per_frame = torch.stack([net.teacher.forward_features(frames[:, :, t]) for t in range(5)], 1)
    torch.testing.assert_close(net.teacher_features(frames), per_frame.mean(1))
    with pytest.raises(ValueError, match="paired"):
        net(frames[:2], clip)


def test_teacher_is_frozen_and_stays_in_eval_mode(teacher_file):
    net = _net(teacher_file).train()
    assert not net.teacher.training and net.student.training
    assert not any(p.requires_grad for p in net.teacher.parameters())
    before = {k: v.clone() for k, v in net.teacher.state_dict().items()}
    loss = net(torch.randn(2, 3, 4, 32, 32), torch.randn(2, 3, 4, 32, 32)).sum()
    loss.backward()
    assert all(p.grad is None for p in net.teacher.parameters())
    assert all(p.grad is not None for p in net.student.parameters())
    after = net.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics too


def test_trainable_state_round_trip_excludes_the_teacher(teacher_file):
    net, other = _net(teacher_file, seed=0), _net(teacher_file, seed=1)
    state = net.trainable_state_dict()
    assert state and not any(k.startswith("teacher.") for k in state)
    other.load_trainable_state_dict(state)
    for key, value in other.trainable_state_dict().items():
        assert torch.equal(value, state[key]), key
    with pytest.raises(ValueError, match="missing"):
        other.load_trainable_state_dict({k: v for k, v in state.items() if "head" not in k})


def test_student_init_state_drops_the_fc_and_the_prefix(teacher_file):
    net = _net(teacher_file)
    init = student_init_state(net.trainable_state_dict())
    assert set(init) == set(net.student.state_dict()) - {"fc.weight", "fc.bias"}


def test_teacher_weights_are_checked(teacher_file, tmp_path):
    with pytest.raises(ValueError, match="teacher must be one of"):
        build_teacher("vgg16", teacher_file)
    with pytest.raises(ValueError, match="shape"):  # a narrow file into an ImageNet-wide net
        build_teacher("resnet18", teacher_file)
    torch.save(resnet2d(34, widths=TEACHER_WIDTHS).state_dict(), tmp_path / "r34.pt")
    with pytest.raises(ValueError, match="unexpected"):
        build_teacher("resnet18", tmp_path / "r34.pt", TEACHER_WIDTHS)


@pytest.mark.slow  # > 1 s idle; make test runs it
def test_training_steps_on_real_pairs_lower_the_loss(teacher_file, unlabeled_videos):
    """A fixed batch of 8 real pairs (4 positive, 4 negative) is learnt within 30 steps."""
    dataset = PairDataset(
        read_video_folder(unlabeled_videos),
        frames=4,
        stride=2,
        teacher_frames=4,
        mode="val",
        short_side=32,
        crop=32,
    )
    batch, skipped = collate_pairs([dataset[i] for i in range(8)])
    assert batch is not None and not skipped and batch.labels.tolist() == [1, 0] * 4
    net = _net(teacher_file).train()
    teacher_before = {k: v.clone() for k, v in net.teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in net.student.state_dict().items()}
    optimizer = torch.optim.SGD(
        [p for p in net.parameters() if p.requires_grad],
        lr=0.02,
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-4,
    )
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(net(batch.frames, batch.clips), batch.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    teacher_after = net.teacher.state_dict()
    assert all(torch.equal(teacher_before[k], teacher_after[k]) for k in teacher_before)
    student_after = net.student.state_dict()
    changed = [k for k in student_before if not torch.equal(student_before[k], student_after[k])]
    assert len(changed) > len(student_before) // 2
