"""Videos a run could not decode: counted per epoch and split, listed, and checked.

A lenient dataset (``strict_data`` off) turns an undecodable video into a
:class:`~stc_ext.data.SkippedVideo` that the collate function drops. :class:`SkipLog`
collects them: the current epoch's per split (``"train"``, ``"val"``) and every video
skipped over the run with the epochs it was skipped in. The trainer reports an epoch's
count in the log, its first names on the console, all of them in ``OUT_DIR/skipped.tsv``
(:meth:`SkipLog.write`), keeps the log in the checkpoint, and stops the run when a split
loses more than ``max_skipped_fraction`` of its videos (:meth:`SkipLog.check`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .errors import TrainingError

__all__ = ["SKIPPED_FILE", "SkipLog"]

#: The file in OUT_DIR listing every skipped video of the run.
SKIPPED_FILE = "skipped.tsv"
_SHOWN = 3  # names shown on the console per epoch and split


class SkipLog:
    """Skipped videos of a run (see the module docstring).

    Args:
        videos: how many videos each split holds (``{"train": 120, "val": 30}``).
        max_fraction: the share of a split's videos an epoch may skip (``max_skipped_fraction``).
    """

    def __init__(self, videos: Mapping[str, int], max_fraction: float) -> None:
        self.videos = dict(videos)
        self.max_fraction = max_fraction
        self.epoch: dict[str, dict[str, str]] = {split: {} for split in self.videos}
        self.run: dict[str, dict[str, dict[str, Any]]] = {split: {} for split in self.videos}

    # ------------------------------------------------------------------ collecting
    def add(self, split: str, skipped: Iterable[Any]) -> int:
        """Record this epoch's ``SkippedVideo`` s (``.path``, ``.reason``) of ``split``;
        returns how many were not recorded this epoch before."""
        seen = self.epoch[split]
        new = 0
        for item in skipped:
            if item.path not in seen:
                # Decoders often repeat the path in their message; it is shown beside it.
                seen[item.path] = item.reason.replace(f": {item.path!r}", "").strip()
                new += 1
        return new

    def merge(self, split: str, records: Iterable[Mapping[str, str]]) -> None:
        """Add other ranks' epoch records (``{path: reason}`` each) to this one's."""
        for record in records:
            for path, reason in record.items():
                self.epoch[split].setdefault(path, reason)

    def count(self, split: str) -> int:
        return len(self.epoch[split])

    def limit(self, split: str) -> int:
        """The most videos of ``split`` an epoch may skip."""
        return int(self.max_fraction * self.videos[split] + 1e-9)

    def check(self, split: str, count: int, where: str) -> None:
        """Raise :class:`~.errors.TrainingError` if ``count`` skipped videos of ``split`` exceed
        the allowed share. ``where``: e.g. "in epoch 3"."""
        if count <= self.limit(split):
            return
        names = self.first_names(split)
        shown = f": {names}" if names else ""
        raise TrainingError(
            f"{count} of the {self.videos[split]} {_SPLIT_NAMES[split]} videos could not be "
            f"decoded {where}, more than max_skipped_fraction "
            f"({self.max_fraction:g}, at most {self.limit(split)}) allows{shown}. Fix or "
            "remove them (strict_data raises at the first one, naming it), or raise "
            "max_skipped_fraction to train without them"
        )

    def end_epoch(self, epoch: int) -> dict[str, int]:
        """Close ``epoch`` (1-based): move its records into the run's; returns the counts."""
        counts = {}
        for split, records in self.epoch.items():
            counts[split] = len(records)
            for path, reason in records.items():
                entry = self.run[split].setdefault(path, {"reason": reason, "epochs": []})
                entry["reason"] = reason
                if epoch not in entry["epochs"]:
                    entry["epochs"].append(epoch)
            self.epoch[split] = {}
        return counts

    # ------------------------------------------------------------------ reporting
    def first_names(self, split: str, shown: int = _SHOWN) -> str:
        """This epoch's first skipped videos of ``split`` with their reasons, for messages."""
        items = list(self.epoch[split].items())
        text = "; ".join(f"{path} ({reason})" for path, reason in items[:shown])
        if len(items) > shown:
            text += f"; ... ({len(items) - shown} more)"
        return text

    def summary(self) -> dict[str, int]:
        """How many distinct videos of each split were skipped over the run."""
        return {split: len(records) for split, records in self.run.items()}

    def write(self, path: str | Path) -> None:
        """Write every skipped video of the run as TSV: split, path, epochs, reason."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
        writer.writerow(["split", "path", "epochs", "reason"])
        for split, records in self.run.items():
            for video, entry in sorted(records.items()):
                epochs = ",".join(map(str, entry["epochs"]))
                writer.writerow([split, video, epochs, " ".join(entry["reason"].split())])
        atomic_write_text(path, buffer.getvalue())

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "run": self.run}

    def load_state(self, state: Mapping[str, Any] | None, main: bool) -> None:
        """Restore a checkpoint's log; the unfinished epoch's records only on the ``main``
        rank (they were gathered from every rank when saved)."""
        if not state:
            return
        for split in self.videos:
            self.run[split] = {
                path: {"reason": entry["reason"], "epochs": list(entry["epochs"])}
                for path, entry in state.get("run", {}).get(split, {}).items()
            }
            self.epoch[split] = dict(state.get("epoch", {}).get(split, {})) if main else {}


_SPLIT_NAMES = {"train": "training", "val": "validation"}
