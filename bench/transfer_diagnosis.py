"""Why does (or doesn't) the 2D->3D correspondence task learn? Measurements, not a benchmark.

    python bench/transfer_diagnosis.py --videos DIR --teacher-weights FILE --out diag.json

runs the transfer the way ``stc transfer`` does (same pairs, held-out split, model, optimiser
and per-epoch schedule, built from the library's pieces) in a plain loop, so that it can record
what the trainer does not:

- feature statistics at initialisation: the teacher's averaged features, the two 1024-D sides
  (``teacher_proj`` output and the student's fc output), how much each side varies from pair to
  pair relative to its common part, and the scale of each half's contribution to the head's
  first layer;
- per step: loss, accuracy, gradient norms per part (student body, student fc, teacher_proj,
  head) and the learning rate;
- per epoch: pair accuracy on the training pairs (as trained, and on fixed centre-crop pairs of
  the training videos) and on the held-out pairs.

``--oracle`` replaces the student by the teacher itself on the clip's frames (through a second
trainable projection): the best a student could do, to separate "the signal is there" from "the
student does not find it". ``--shuffle-labels`` trains on permuted labels (a sanity floor).
Single-threaded by default (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Subset

from stc_ext.data import read_video_folder
from stc_ext.models import build_from_config
from stc_ext.train.data import ResumableSampler, SeededDataset, make_loader
from stc_ext.transfer import CorrespondenceNet, PairDataset, build_teacher, collate_pairs
from stc_ext.transfer.model import FEATURE_NORMS
from stc_ext.transfer.task import held_out_split


class OracleStudent(nn.Module):
    """The frozen teacher on the clip's frames, averaged, then a trainable fc to ``embed_dim``."""

    def __init__(self, teacher: nn.Module, embed_dim: int, frames: int, teacher_frames: int):
        super().__init__()
        self.teacher = teacher
        self.fc = nn.Linear(teacher.feature_dim, embed_dim)
        self.positions = torch.linspace(0, frames - 1, teacher_frames).round().long()

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            feats = self.teacher.frame_features(clip[:, :, self.positions]).mean(dim=1)
        return self.fc(feats)


def parts(model: CorrespondenceNet) -> dict[str, list[nn.Parameter]]:
    groups: dict[str, list[nn.Parameter]] = {"student": [], "student.fc": [], "other": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("student.fc."):
            groups["student.fc"].append(p)
        elif name.startswith("student."):
            groups["student"].append(p)
        else:
            groups.setdefault(name.split(".")[0], []).append(p)
    return {k: v for k, v in groups.items() if v}


def grad_norms(groups: dict[str, list[nn.Parameter]]) -> dict[str, float]:
    out = {}
    for name, params in groups.items():
        sq = sum(float(p.grad.pow(2).sum()) for p in params if p.grad is not None)
        out[name] = math.sqrt(sq)
    return out


def side_stats(x: torch.Tensor) -> dict[str, float]:
    """Scale of (N, D) features and how much they vary across the N samples."""
    mean = x.mean(dim=0, keepdim=True)
    spread = (x - mean).pow(2).sum(dim=1).mean().sqrt()  # per-sample deviation from the mean
    cos = nn.functional.normalize(x, dim=1)
    sim = cos @ cos.T
    off = sim[~torch.eye(len(x), dtype=torch.bool)]
    return {
        "norm": float(x.norm(dim=1).mean()),
        "abs_mean": float(x.abs().mean()),
        "common_norm": float(mean.norm()),
        "spread_norm": float(spread),
        "spread_ratio": float(spread / (mean.norm() + 1e-12)),
        "mean_cos_between_samples": float(off.mean()),
        "frac_positive": float((x > 0).float().mean()),
    }


@torch.no_grad()
def init_stats(model: CorrespondenceNet, batch: Any) -> dict[str, Any]:
    frames, clips, labels = batch
    teacher_avg = model.teacher_features(frames)
    image = model.image_features(frames)
    video = model.video_features(clips)
    first = model.head_input_layer()
    d = image.shape[1]
    contrib_image = nn.functional.relu(image) @ first.weight[:, :d].T
    contrib_video = nn.functional.relu(video) @ first.weight[:, d:].T
    stats = {
        "teacher_avg": side_stats(teacher_avg),
        "image_1024": side_stats(image),
        "video_1024": side_stats(video),
        "head_fc2048_from_image_std": float(contrib_image.std()),
        "head_fc2048_from_video_std": float(contrib_video.std()),
        "head_fc2048_from_video_spread_std": float((contrib_video - contrib_video.mean(0)).std()),
        "head_fc2048_from_image_spread_std": float((contrib_image - contrib_image.mean(0)).std()),
        "logit_std": float(model(frames, clips).std(dim=0).mean()),
    }
    # Through the head: per Linear layer, the spread of its output across the batch (what
    # depends on the pair), the size of its bias, and the share of units the next ReLU passes.
    x = torch.cat([image, video], dim=1)
    layers = []
    for module in model.head:
        x = module(x)
        if isinstance(module, nn.Linear):
            layers.append(
                {
                    "out_features": module.out_features,
                    "spread_std": float((x - x.mean(0)).std()),
                    "mean_abs": float(x.abs().mean()),
                    "bias_abs": float(module.bias.abs().mean()),
                    "frac_active": float((x > 0).float().mean()),
                }
            )
    stats["head_layers"] = layers
    # Does the raw signal exist at init? Cosine of the two sides (only meaningful for oracle).
    pos = labels == 1
    cos = nn.functional.cosine_similarity(image, video, dim=1)
    stats["cos_image_video_pos_minus_neg"] = float(cos[pos].mean() - cos[~pos].mean())
    return stats


@torch.no_grad()
def evaluate(model: nn.Module, loader: Any, criterion: nn.Module) -> dict[str, float]:
    model.eval()
    loss = correct = count = 0.0
    for batch, _ in loader:
        logits = model(batch.frames, batch.clips)
        loss += float(criterion(logits, batch.labels)) * len(batch.labels)
        correct += float((logits.argmax(1) == batch.labels).sum())
        count += len(batch.labels)
    model.train()
    return {"loss": loss / count, "acc": correct / count, "pairs": int(count)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", required=True)
    p.add_argument("--teacher-weights", required=True)
    p.add_argument("--teacher", default="resnet18")
    p.add_argument("--model", default="resnet3d_18")
    p.add_argument("--widths", default="16,32,64,128")
    p.add_argument("--shortcut", default="B")
    p.add_argument("--embed-dim", type=int, default=1024)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--teacher-frames", type=int, default=16)
    p.add_argument("--stride", type=int, default=2)
    p.add_argument("--short-side", type=int, default=36)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-epochs", type=float, default=0.0, help="linear LR warm-up")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--eval-every", type=int, default=1, help="epochs between evaluations")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--feature-norm", default="none", choices=FEATURE_NORMS)
    p.add_argument("--head-warmup-steps", type=int, default=0)
    p.add_argument("--oracle", action="store_true")
    p.add_argument("--shuffle-labels", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="JSON file for the measurements")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    videos = read_video_folder(args.videos)
    train_videos, val_videos = held_out_split(videos, args.videos, args.val_fraction)

    def pairs(source: Any, mode: str) -> PairDataset:
        return PairDataset(
            source,
            args.frames,
            args.stride,
            args.teacher_frames,
            mode,
            args.short_side,
            args.size,
        )

    train_ds = pairs(train_videos, "train")
    sampler = ResumableSampler(train_ds, 1, 0, args.seed, args.batch_size)
    train_loader = make_loader(
        SeededDataset(train_ds), args.batch_size, sampler, 0, False, args.seed, collate_pairs
    )
    val_loader = make_loader(pairs(val_videos, "val"), 32, None, 0, False, 0, collate_pairs)
    # Fixed (centre-crop) pairs of at most 96 training videos: what the net fits, un-augmented.
    fixed_train = pairs(train_videos, "val")
    fixed_train_loader = make_loader(
        Subset(fixed_train, range(min(len(fixed_train), 192))), 32, None, 0, False, 0, collate_pairs
    )

    torch.manual_seed(args.seed)
    teacher = build_teacher(
        args.teacher, args.teacher_weights, [int(w) for w in args.widths.split(",")]
    )
    config = {
        "model": args.model,
        "widths": [int(w) for w in args.widths.split(",")],
        "shortcut_type": args.shortcut,
        "frames": args.frames,
        "size": args.size,
    }
    student = (
        OracleStudent(teacher, args.embed_dim, args.frames, args.teacher_frames)
        if args.oracle
        else build_from_config(config, args.embed_dim)
    )
    model = CorrespondenceNet(
        student,
        teacher,
        args.embed_dim,
        feature_norm=args.feature_norm,
        head_warmup_pairs=args.head_warmup_steps * args.batch_size,
    )
    model.train()
    params = [q for q in model.parameters() if q.requires_grad]
    if args.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(
            params, lr=args.lr, weight_decay=args.weight_decay
        )
    else:
        opt = torch.optim.SGD(
            params, lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay
        )
    steps_per_epoch = sampler.steps_per_epoch
    total = steps_per_epoch * args.epochs
    warm = int(args.warmup_epochs * steps_per_epoch)

    def lr_at(step: int) -> float:  # linear warm-up, then cosine over the rest (per step)
        if step < warm:
            return args.lr * (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return args.lr * 0.5 * (1 + math.cos(math.pi * t))

    criterion = nn.CrossEntropyLoss()
    groups = parts(model)
    sampler.set_epoch(0)
    first_batch, _ = next(iter(train_loader))
    record: dict[str, Any] = {
        "args": vars(args),
        "torch": str(torch.__version__),
        "train_videos": len(train_videos.records),
        "held_out_videos": len(val_videos.records),
        "steps_per_epoch": steps_per_epoch,
        "init": init_stats(model, first_batch),
        "init_held_out": evaluate(model, val_loader, criterion),
        "steps": [],
        "epochs": [],
    }
    print(json.dumps(record["init"], indent=1), flush=True)
    gen = torch.Generator().manual_seed(args.seed + 99)
    step = 0
    start = time.perf_counter()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        run_loss = run_correct = run_count = 0.0
        for batch, _ in train_loader:
            labels = batch.labels
            if args.shuffle_labels:
                labels = labels[torch.randperm(len(labels), generator=gen)]
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            phase = model.phase
            logits = model(batch.frames, batch.clips)
            loss = criterion(logits, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norms = grad_norms(groups)
            opt.step()
            step += 1
            acc = float((logits.argmax(1) == labels).float().mean())
            record["steps"].append(
                {
                    "step": step,
                    "phase": phase,
                    "loss": float(loss.detach()),
                    "acc": acc,
                    "lr": lr_at(step - 1),
                    **norms,
                }
            )
            run_loss += float(loss) * len(labels)
            run_correct += acc * len(labels)
            run_count += len(labels)
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": step,
            "phase": record["steps"][-1]["phase"],
            "train_running_loss": run_loss / run_count,
            "train_running_acc": run_correct / run_count,
        }
        recent = record["steps"][-steps_per_epoch:]
        row["grad_norms_mean"] = {k: sum(s[k] for s in recent) / len(recent) for k in groups}
        text = ""
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs:
            row["train_fixed"] = evaluate(model, fixed_train_loader, criterion)
            row["held_out"] = evaluate(model, val_loader, criterion)
            text = (
                f" | fixed train acc {row['train_fixed']['acc']:.3f} | held-out loss "
                f"{row['held_out']['loss']:.4f} acc {row['held_out']['acc']:.3f}"
            )
        row["seconds"] = round(time.perf_counter() - start, 1)
        record["epochs"].append(row)
        print(
            f"epoch {epoch + 1} ({row['phase']}): train loss {row['train_running_loss']:.4f} "
            f"acc {row['train_running_acc']:.3f}{text} | grads "
            + " ".join(f"{k} {v:.3g}" for k, v in row["grad_norms_mean"].items())
            + f" | {row['seconds']:.0f} s",
            flush=True,
        )
        Path(args.out).write_text(json.dumps(record, indent=1))
    record["final_stats"] = init_stats(model, first_batch)
    Path(args.out).write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
