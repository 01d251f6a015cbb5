"""Writing the synthetic dataset to disk in the UCF101 layout: :func:`generate`.

Everything is deterministic from ``seed``: each video has its own random stream derived from
``(seed, class, video)``, so the output does not depend on the number of workers.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...validation import check_int
from .action_classes import CLASS_NAMES
from .encoding import write_video
from .rendering import render
from .scene import sample_scene

__all__ = ["GENERATOR_VERSION", "SyntheticDataset", "generate"]

GENERATOR_VERSION = 1


@dataclass(frozen=True)
class SyntheticDataset:
    """Where :func:`generate` wrote the dataset and what it holds."""

    root: Path
    video_root: Path
    split_dir: Path
    classes: tuple[str, ...]
    num_train: int
    num_test: int


def _video_name(cls: str, index: int) -> str:
    # UCF101-style: 4 clips per group.
    return f"v_{cls}_g{index // 4 + 1:02d}_c{index % 4 + 1:02d}.mp4"


def _make_video(job: tuple[int, int, int, str, int, int, bool, str]) -> None:
    seed, class_index, video_index, name, frames, size, varied, path = job
    rng = np.random.default_rng([seed, class_index, video_index])
    write_video(path, render(name, sample_scene(rng, frames, size, varied)))


def generate(
    out_dir: str | Path,
    classes: int = 10,
    videos_per_class: int = 40,
    seed: int = 0,
    frames: int = 48,
    size: int = 128,
    test_fraction: float = 0.25,
    varied: bool = False,
    workers: int = 1,
    overwrite: bool = False,
) -> SyntheticDataset:
    """Write the synthetic action dataset (see :mod:`stc_ext.data.synthetic`) under ``out_dir``.

    Args:
        out_dir: created if needed; gets ``videos/``, ``splits/`` and ``synthetic.json``.
        classes: how many of :data:`CLASS_NAMES` to use (2..12, the first ones).
        videos_per_class: videos per class (at least 2: one train, one test).
        seed: everything is a function of it (and of the other arguments).
        frames: frames per video.
        size: frame height and width (a multiple of 16, >= 32).
        test_fraction: share of each class's videos in ``testlist01.txt`` (the last ones).
        varied: vary the actor's and background's look per video too (harder; see
            :func:`sample_scene`).
        workers: processes to render and encode with (the output does not depend on it).
        overwrite: replace an existing ``videos/`` and ``splits/`` instead of refusing.

    Returns:
        A :class:`SyntheticDataset` with the paths to hand to ``read_ucf101``.
    """
    classes = check_int("generate", "classes", classes, minimum=2, maximum=len(CLASS_NAMES))
    videos_per_class = check_int("generate", "videos_per_class", videos_per_class, minimum=2)
    seed = check_int("generate", "seed", seed, minimum=0)
    frames = check_int("generate", "frames", frames)
    size = check_int("generate", "size", size, minimum=32)
    if size % 16:
        raise ValueError(f"generate: size must be a multiple of 16, >= 32, got {size}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"generate: test_fraction must be in (0, 1), got {test_fraction}")
    workers = check_int("generate", "workers", workers)
    root = Path(out_dir)
    video_root, split_dir = root / "videos", root / "splits"
    for folder in (video_root, split_dir):
        if folder.exists():
            if not overwrite:
                raise FileExistsError(
                    f"generate: {folder} exists; pass overwrite=True (stc synth --force) to "
                    "replace it"
                )
            shutil.rmtree(folder)
    names = CLASS_NAMES[:classes]
    num_test = min(videos_per_class - 1, max(1, round(videos_per_class * test_fraction)))
    jobs, train_lines, test_lines = [], [], []
    for c, cls in enumerate(names):
        (video_root / cls).mkdir(parents=True)
        for v in range(videos_per_class):
            rel = f"{cls}/{_video_name(cls, v)}"
            jobs.append((seed, c, v, cls, frames, size, varied, str(video_root / rel)))
            if v < videos_per_class - num_test:
                train_lines.append(f"{rel} {c + 1}")
            else:
                test_lines.append(rel)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_make_video, jobs, chunksize=4))
    else:
        for job in jobs:
            _make_video(job)
    split_dir.mkdir(parents=True)
    (split_dir / "classInd.txt").write_text(
        "".join(f"{c + 1} {cls}\n" for c, cls in enumerate(names))
    )
    (split_dir / "trainlist01.txt").write_text("".join(line + "\n" for line in train_lines))
    (split_dir / "testlist01.txt").write_text("".join(line + "\n" for line in test_lines))
    params = dict(
        generator_version=GENERATOR_VERSION,
        classes=list(names),
        videos_per_class=videos_per_class,
        seed=seed,
        frames=frames,
        size=size,
        fps=25,
        test_fraction=test_fraction,
        varied=varied,
        codec="h264 (libx264, crf 20, yuv420p, no B-frames)",
    )
    (root / "synthetic.json").write_text(json.dumps(params, indent=2) + "\n")
    return SyntheticDataset(
        root, video_root, split_dir, tuple(names), len(train_lines), len(test_lines)
    )
