"""Parameter counts of the STC models under both placements (the README's table).

    python python/param_table.py                       # the README's table (Markdown)
    python python/param_table.py --frames 16 --models stc_resnext3d_101

builds every model on the ``meta`` device (shapes only, no memory, a few seconds) and prints,
per model and clip length, the parameters of the plain network and of the STC network with an
STC block in every residual block (``--placement block``, the paper's §1 wording) or in the
last residual block of each of the four stages (``--placement stage``, its §3.2 wording), for
400 classes (Kinetics). The SCB's first FC is (T*C) x (T*C/r): its size grows with the square
of the clip length, which is why the placement matters most at 32 and 64 frames.
"""

from __future__ import annotations

import argparse
import sys

import torch

from stc_ext.models import PLACEMENTS, build

MODELS = ("stc_resnet3d_18", "stc_resnet3d_50", "stc_resnet3d_101", "stc_resnext3d_101")
FRAMES = (16, 32, 64)


def count(name: str, frames: int, num_classes: int, placement: str | None) -> int:
    """Parameters of ``name`` (its plain counterpart when ``placement`` is None)."""
    with torch.device("meta"):
        if placement is None:
            model = build(name.removeprefix("stc_"), num_classes, frames=frames)
        else:
            model = build(name, num_classes, frames=frames, placement=placement)
    return sum(p.numel() for p in model.parameters())


def table_rows(
    models: tuple[str, ...], frames: tuple[int, ...], num_classes: int
) -> list[tuple[str, ...]]:
    """One row per (model, frames): plain, then each placement (with its extra over plain)."""
    rows = []
    for name in models:
        for t in frames:
            plain = count(name, t, num_classes, None)
            cells = [name, str(t), f"{plain / 1e6:.1f}M"]
            for placement in PLACEMENTS:
                total = count(name, t, num_classes, placement)
                cells.append(f"{total / 1e6:.1f}M (+{(total - plain) / 1e6:.1f}M)")
            rows.append(tuple(cells))
    return rows


def markdown(rows: list[tuple[str, ...]]) -> str:
    header = ("model", "frames", "plain", *(f'STC, placement "{p}"' for p in PLACEMENTS))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated ({','.join(MODELS)})"
    )
    parser.add_argument(
        "--frames",
        type=lambda s: tuple(int(x) for x in s.split(",")),
        default=FRAMES,
        help="comma-separated clip lengths (16,32,64)",
    )
    parser.add_argument("--classes", type=int, default=400, help="classifier width (400)")
    args = parser.parse_args(argv)
    models = tuple(m for m in args.models.split(",") if m)
    bad = [m for m in models if not m.startswith("stc_")]
    if bad:
        parser.error(f"--models: give STC models (stc_...), got {', '.join(bad)}")
    print(markdown(table_rows(models, args.frames, args.classes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
