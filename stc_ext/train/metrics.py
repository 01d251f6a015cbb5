"""Classification metrics: top-k counts, running sums reduced over ranks, confusion matrices."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .distributed import all_reduce_

__all__ = ["ClipMeter", "VideoMetrics", "confusion_matrix", "topk_correct", "video_metrics"]


def topk_correct(
    scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> list[torch.Tensor]:
    """How many rows of ``scores`` (N, K) have their label among the top ``k`` (per k).

    ``k`` is capped at K. Returns 0-d int64 tensors on ``scores``' device (no host sync).
    """
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    hits = top == labels.view(-1, 1)
    return [hits[:, : min(k, scores.shape[1])].any(dim=1).sum() for k in ks]


class ClipMeter:
    """Running sums of loss, top-1/top-5 hits and clip count, kept on the device.

    ``reduce()`` sums them over ranks; ``state()``/``load_state()`` carry an unfinished
    epoch's sums through a checkpoint.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, n

    def update(self, loss: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor) -> None:
        """``loss``: the batch's mean loss (0-d); ``scores`` (N, K); ``labels`` (N,)."""
        top1, top5 = topk_correct(scores.detach(), labels)
        n = labels.shape[0]
        self.sums += torch.stack(
            [
                loss.detach().double() * n,
                top1.double(),
                top5.double(),
                torch.tensor(float(n), dtype=torch.float64, device=self.device),
            ]
        )

    def reduce(self) -> dict[str, float]:
        """Sums over ranks -> ``{"loss", "top1", "top5", "clips"}`` (accuracies in [0, 1])."""
        total = all_reduce_(self.sums.clone())
        loss, top1, top5, n = total.tolist()
        if n == 0:
            return {"loss": float("nan"), "top1": float("nan"), "top5": float("nan"), "clips": 0}
        return {"loss": loss / n, "top1": top1 / n, "top5": top5 / n, "clips": int(n)}

    def local(self) -> dict[str, float]:
        """This rank's running averages (no communication), for progress bars."""
        loss, top1, _, n = self.sums.tolist()
        return {"loss": loss / max(n, 1.0), "top1": top1 / max(n, 1.0)}

    def state(self) -> list[float]:
        return self.sums.tolist()

    def load_state(self, sums: list[float]) -> None:
        self.sums = torch.tensor(sums, dtype=torch.float64, device=self.device)


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(K, K)`` int64 counts: row = true class, column = predicted class."""
    flat = labels.to(torch.int64) * num_classes + preds.to(torch.int64)
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


@dataclass
class VideoMetrics:
    """Video-level results of one evaluation."""

    top1: float
    top5: float
    mean_class_accuracy: float
    per_class_accuracy: list[float | None]  # None for classes absent from the set
    confusion: list[list[int]]
    num_videos: int


def video_metrics(scores: torch.Tensor, labels: torch.Tensor) -> VideoMetrics:
    """Top-1, top-5 and mean class accuracy of per-video ``scores`` (V, K) against ``labels``.

    Mean class accuracy averages the per-class recall over the classes present in ``labels``.
    """
    if scores.dim() != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(
            f"video_metrics: expected scores (V, K) and labels (V,), got "
            f"{tuple(scores.shape)} and {tuple(labels.shape)}"
        )
    num_videos, num_classes = scores.shape
    if num_videos == 0:
        raise ValueError("video_metrics: no videos")
    top1, top5 = (c.item() for c in topk_correct(scores, labels))
    cm = confusion_matrix(labels, scores.argmax(dim=1), num_classes)
    support = cm.sum(dim=1)
    per_class = [
        (cm[c, c].item() / support[c].item()) if support[c] > 0 else None
        for c in range(num_classes)
    ]
    present = [a for a in per_class if a is not None]
    return VideoMetrics(
        top1=top1 / num_videos,
        top5=top5 / num_videos,
        mean_class_accuracy=sum(present) / len(present),
        per_class_accuracy=per_class,
        confusion=cm.tolist(),
        num_videos=num_videos,
    )
