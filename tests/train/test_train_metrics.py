"""Metrics and the test protocol's per-video averaging."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stc_ext.train import ClipMeter, confusion_matrix, predict_videos, topk_correct, video_metrics


def test_topk_counts_and_small_class_counts():
    scores = torch.tensor(
        [
            [0.1, 0.5, 0.2, 0.0, 0.3, 0.9],
            [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
            [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
        ]
    )
    labels = torch.tensor([5, 4, 0])
    top1, top5 = topk_correct(scores, labels)
    assert (top1.item(), top5.item()) == (1, 2)
    two = torch.tensor([[0.2, 0.8], [0.6, 0.4]])
    assert [c.item() for c in topk_correct(two, torch.tensor([0, 0]))] == [1, 2]  # k capped


def test_video_metrics_mean_class_accuracy_weighs_classes_equally():
    # Class 0: 3 videos, all right; class 1: 1 video, wrong; class 2 absent.
    labels = torch.tensor([0, 0, 0, 1])
    scores = torch.tensor([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.5, 0.2, 0.3]])
    m = video_metrics(scores, labels)
    assert m.top1 == pytest.approx(0.75)
    assert m.mean_class_accuracy == pytest.approx(0.5)
    assert m.per_class_accuracy == [1.0, 0.0, None]
    assert m.confusion == [[3, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert m.top5 == 1.0 and m.num_videos == 4
    with pytest.raises(ValueError, match="expected scores"):
        video_metrics(scores, labels[:2])


def test_confusion_matrix_rows_are_true_classes():
    cm = confusion_matrix(torch.tensor([2, 2, 1]), torch.tensor([0, 2, 1]), 3)
    assert cm.tolist() == [[0, 0, 0], [0, 1, 0], [1, 0, 1]]


def test_clip_meter_state_round_trip():
    meter = ClipMeter(torch.device("cpu"))
    meter.update(torch.tensor(2.0), torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([1, 1]))
    restored = ClipMeter(torch.device("cpu"))
    restored.load_state(meter.state())
    assert (
        restored.reduce() == meter.reduce() == {"loss": 2.0, "top1": 0.5, "top5": 1.0, "clips": 2}
    )


class _TestModeVideos(torch.utils.data.Dataset):
    """Test-mode items: video i has i + 1 clips of shape (3, 2, 4, 4) filled at random."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.videos = [torch.randn(i + 1, 3, 2, 4, 4, generator=g) for i in range(5)]

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i):
        return self.videos[i], i % 3, i


class _MeanModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        torch.nn.init.normal_(self.fc.weight, generator=torch.Generator().manual_seed(1))

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3, 4)))


@pytest.mark.parametrize("batch_size, clip_batch", [(1, 32), (2, 1), (4, 3)])
def test_predict_videos_averages_clip_softmax_per_video(batch_size, clip_batch):
    data, model = _TestModeVideos(), _MeanModel()
    scores, indices, clips, skipped = predict_videos(
        model, data, torch.device("cpu"), batch_size=batch_size, clip_batch=clip_batch, workers=0
    )
    expected = torch.stack([torch.softmax(model(v), 1).mean(0) for v in data.videos]).detach()
    torch.testing.assert_close(scores, expected)
    assert indices.tolist() == [0, 1, 2, 3, 4]
    assert clips.tolist() == [1, 2, 3, 4, 5] and skipped == []
