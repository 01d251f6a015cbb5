"""Human-readable tables of a training run and of an evaluation (returned as text)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .evaluate import EvalResult
from .trainer import TrainResult

__all__ = ["format_eval_table", "format_table", "format_train_summary"]


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with a rule under the header; numbers right-aligned."""
    cells = [[str(h) for h in header]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [
        all(_is_number(r[i]) for r in rows if r[i] not in (None, "")) for i in range(len(header))
    ]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric, strict=True)
        ).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _is_number(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    try:
        float(str(value).rstrip("%"))
    except ValueError:
        return False
    return True


def _pct(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _wait(row: dict) -> str:
    """The share of an epoch's training time spent waiting for data ("-" for old logs)."""
    if "data_wait_s" not in row:
        return "-"
    total = row["data_wait_s"] + row["compute_s"]
    return f"{100 * row['data_wait_s'] / total:.0f}%" if total > 0 else "-"


def format_train_summary(result: TrainResult, max_rows: int = 20) -> str:
    """Per-epoch table (the last ``max_rows`` epochs), the best epoch and where files went.

    Transfer runs (``result.task == "transfer"``) show pair accuracies and no top-5."""
    cfg = result.config
    history = result.history
    shown = history[-max_rows:]
    pairs = result.task == "transfer"
    rows = []
    for r in shown:
        row = [
            r["epoch"],
            _num(r["train_loss"]),
            _pct(r["train_top1"]),
            _num(r["val_loss"]),
            _pct(r["val_top1"]),
        ]
        if not pairs:
            row.append(_pct(r["val_top5"]))
        rows.append(
            row + [f"{r['lr']:.3g}", f"{r['seconds']:.0f}", f"{r['clips_per_s']:.1f}", _wait(r)]
        )
    parts = [
        f"{result.description}; batch {cfg.batch_size} = {result.world_size} rank(s) x "
        f"{result.micro_batch_size} x {result.accumulation} accumulation; amp {cfg.amp}",
    ]
    if len(history) > len(shown):
        parts.append(f"(last {len(shown)} of {len(history)} epochs)")
    if pairs:
        header = ["epoch", "train loss", "train pair acc", "held-out loss", "held-out pair acc"]
    else:
        header = ["epoch", "train loss", "train top-1", "val loss", "val top-1", "val top-5"]
    parts.append(format_table(header + ["lr", "time s", "clips/s", "data wait"], rows))
    if result.best is not None and math.isnan(result.best["val_top1"]):
        parts.append(f"no validation: best.pt is the last epoch ({result.best['epoch']})")
    elif result.best is not None:
        best = result.best
        what = "held-out pair accuracy" if pairs else "val top-1"
        where = "fixed held-out pairs" if pairs else "centre clip per video"
        parts.append(
            f"best epoch {best['epoch']}: {what} {_pct(best['val_top1'])}, "
            f"loss {_num(best['val_loss'])} ({where})"
        )
    skipped = {split: n for split, n in result.skipped.items() if n}
    if skipped:
        counts = " and ".join(
            f"{n} {'training' if split == 'train' else 'validation'}"
            for split, n in skipped.items()
        )
        parts.append(
            f"skipped as undecodable over the run: {counts} videos "
            f"(listed in {result.skipped_file})"
        )
    for entry in result.overrides:
        changes = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in entry["changes"].items())
        parts.append(f"resumed at step {entry['step']} with {changes}")
    status = "INTERRUPTED" if result.interrupted else "finished"
    parts.append(
        f"{status}: {result.epochs_done}/{cfg.epochs} epochs, {result.steps} steps, "
        f"{result.seconds:.0f} s"
    )
    files = [
        ("last", result.last_checkpoint),
        ("best", result.best_checkpoint),
        ("student init", result.exported),
        ("curves", result.curves_png),
    ]
    parts.append("  ".join(f"{name}: {path}" for name, path in files if path is not None))
    return "\n".join(parts)


def format_eval_table(result: EvalResult) -> str:
    """One row per split (and their average): top-1, top-5, mean class accuracy, counts."""
    rows = [
        [
            s.split,
            _pct(s.top1),
            _pct(s.top5),
            _pct(s.mean_class_accuracy),
            s.num_videos,
            s.num_clips,
            len(s.skipped),
        ]
        for s in result.splits
    ]
    if len(result.splits) > 1:
        avg = result.average
        rows.append(
            [
                "mean",
                _pct(avg["top1"]),
                _pct(avg["top5"]),
                _pct(avg["mean_class_accuracy"]),
                "",
                "",
                "",
            ]
        )
    chance = 1.0 / max(1, len(result.classes))
    p = result.protocol
    head = (
        f"{result.dataset} ({result.subset}), {len(result.classes)} classes (chance "
        f"{_pct(chance)}); {p['frames']} frames x stride {p['stride']}, non-overlapping "
        f"clips, {p['size']}px centre crop, softmax averaged per video"
    )
    table = format_table(
        ["split", "top-1", "top-5", "mean class", "videos", "clips", "skipped"], rows
    )
    chosen = []
    for s in result.splits:
        text = s.selection["summary"] if s.selection else "model selection not recorded"
        if s.selection and s.selection["reported_videos_that_selected"]:
            text += f", {s.selection['reported_videos_that_selected']} of them reported here"
        chosen.append(f"split {s.split}: {text}" if len(result.splits) > 1 else text)
    tail = f"report: {result.report_path}" if result.report_path else ""
    return "\n".join(x for x in (head, *chosen, table, tail) if x)
