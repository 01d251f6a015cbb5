"""Two CPU processes with gloo: the ranks stay in sync, metrics are reduced, evaluation shards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch.distributed as dist
from run_helpers import become_rank, digest, run_ranks
from train_helpers import tiny_config

from stc_ext.train import EvalConfig, evaluate, train
from stc_ext.train.distributed import all_gather_objects
from stc_ext.train.lock import LOCK_NAME
from stc_ext.train.trainer import TIMING_FIELDS

pytestmark = [
    pytest.mark.slow,  # two spawned processes, each importing torch
    pytest.mark.skipif(
        not dist.is_available() or not dist.is_gloo_available(),
        reason="torch.distributed with gloo is needed",
    ),
]


def _worker(rank: int, world: int, port: int, data: str, out: str, results: str) -> None:
    become_rank(rank, world, port)
    digests: list[list[str]] = []
    lock: dict[str, object] = {}

    def check_sync(trainer, epoch, step):
        digests.append(all_gather_objects(digest(trainer.model.parameters())))
        lock_file = Path(out) / LOCK_NAME
        lock.update(held=trainer.lock is not None, holder=json.loads(lock_file.read_text()))

    # Batch 4 = 2 ranks x micro-batch 1 x 2 accumulation steps; 48 px so that BatchNorm sees
    # more than one value per channel in the last stage of a one-clip micro-batch.
    config = tiny_config(
        Path(data), Path(out), batch_size=4, micro_batch_size=1, epochs=2, size=48, short_side=48
    )
    result = train(config, on_step=check_sync)
    report = evaluate(EvalConfig(checkpoint=str(Path(out) / "best.pt"), workers=0, progress=False))
    Path(results, f"rank{rank}.json").write_text(
        json.dumps(
            {
                "digests": digests,
                "history": result.history,
                "steps": result.steps,
                "accumulation": result.accumulation,
                "world": result.world_size,
                "eval_videos": report.splits[0].num_videos,
                "eval_top1": report.splits[0].top1,
                "eval_clips": report.splits[0].num_clips,
                "pid": os.getpid(),
                "lock": lock,
            }
        )
    )


def test_two_gloo_ranks_stay_in_sync(tiny_data, tmp_path):
    ranks = run_ranks(_worker, tmp_path / "results", str(tiny_data), str(tmp_path / "run"))
    for r in ranks:
        # 12 videos: 6 per rank, 2 clips per rank and step -> 3 steps per epoch.
        assert (r["world"], r["accumulation"], r["steps"]) == (2, 2, 6)
        assert len(r["digests"]) == 6
        assert all(step[0] == step[1] for step in r["digests"]), "ranks diverged"
    assert len({d[0] for d in ranks[0]["digests"]}) == 6  # the weights did change each step

    # Epoch metrics are reduced over ranks: both report the same numbers (timings aside).
    def metrics(rank):
        return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in rank["history"]]

    assert metrics(ranks[0]) == metrics(ranks[1]) and len(metrics(ranks[0])) == 2
    # Evaluation shares the 3 test videos between the ranks and counts each once.
    assert ranks[0]["eval_videos"] == ranks[1]["eval_videos"] == 3
    assert ranks[0]["eval_clips"] == 6 and ranks[0]["eval_top1"] == ranks[1]["eval_top1"]
    assert (tmp_path / "run" / "last.pt").is_file()
    # Rank 0 held the run folder's lock for the run, and gave it back.
    assert ranks[0]["lock"]["held"] and not ranks[1]["lock"]["held"]
    assert ranks[0]["lock"]["holder"]["pid"] == ranks[1]["lock"]["holder"]["pid"] == ranks[0]["pid"]
    assert not (tmp_path / "run" / LOCK_NAME).exists()
