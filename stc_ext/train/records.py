"""Per-epoch metric records: ``metrics.csv``, ``metrics.jsonl`` and TensorBoard scalars.

The CSV and JSONL files are rewritten from the run's whole history at each epoch (the history
travels in the checkpoint), so after a resume they hold exactly one row per finished epoch.
TensorBoard is optional: without the ``tensorboard`` package only the files are written.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text

__all__ = ["MetricLog", "progress_bar", "tensorboard_available"]

logger = logging.getLogger("stc_ext.train")


def progress_bar(enabled: bool, **kwargs: Any) -> Any:
    """A tqdm bar (rate and ETA; ``kwargs`` go to tqdm), or a null context yielding None."""
    if not enabled:
        return contextlib.nullcontext(None)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        logger.info("tqdm is not installed: no progress bars")
        return contextlib.nullcontext(None)
    return tqdm(dynamic_ncols=True, mininterval=1.0, **kwargs)


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` can be used (the ``tensorboard`` package is there)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


class MetricLog:
    """Writes the history of a run under ``out_dir`` (call on rank 0 only).

    Args:
        out_dir: the run folder.
        tensorboard: write scalars to ``out_dir/tensorboard`` if tensorboard is installed.
        first_epoch: the first epoch this process will log (TensorBoard events from a previous
            process at or after it are purged, so a resumed run has no duplicates).
    """

    def __init__(self, out_dir: str | Path, tensorboard: bool = True, first_epoch: int = 1) -> None:
        self.out_dir = Path(out_dir)
        self.csv_path = self.out_dir / "metrics.csv"
        self.jsonl_path = self.out_dir / "metrics.jsonl"
        self.writer = None
        if tensorboard:
            if tensorboard_available():
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(
                    str(self.out_dir / "tensorboard"), purge_step=first_epoch
                )
            else:
                logger.info(
                    "tensorboard is not installed: metrics go to %s and %s only",
                    self.csv_path.name,
                    self.jsonl_path.name,
                )

    def write(self, history: Sequence[Mapping[str, Any]]) -> None:
        """Rewrite the CSV and JSONL files from ``history`` and log its last row to TensorBoard."""
        if not history:
            return
        columns: list[str] = []
        for row in history:
            columns.extend(k for k in row if k not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in history:
            writer.writerow({k: ("" if _clean(v) is None else v) for k, v in row.items()})
        atomic_write_text(self.csv_path, buffer.getvalue())
        atomic_write_text(
            self.jsonl_path,
            "".join(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n" for row in history),
        )
        if self.writer is not None:
            last = history[-1]
            epoch = int(last["epoch"])
            for key, value in last.items():
                if key != "epoch" and isinstance(value, (int, float)) and _clean(value) is not None:
                    group = key.split("_", 1)
                    tag = f"{group[0]}/{group[1]}" if len(group) == 2 else key
                    self.writer.add_scalar(tag, value, epoch)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
