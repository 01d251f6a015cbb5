"""The head warm-up under two gloo CPU ranks: DDP accepts the phase that leaves the student
out, the ranks count the same pairs and switch phase at the same step, and stay in sync."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch.distributed as dist
from run_helpers import become_rank, digest, run_ranks
from transfer_helpers import tiny_transfer_config

from stc_ext.train.distributed import all_gather_objects
from stc_ext.transfer import transfer

pytestmark = [
    pytest.mark.skipif(
        not dist.is_available() or not dist.is_gloo_available(),
        reason="torch.distributed with gloo is needed",
    ),
    pytest.mark.slow,  # two spawned ranks: about 15 s
]


def _worker(
    rank: int, world: int, port: int, videos: str, teacher: str, out: str, results: str
) -> None:
    become_rank(rank, world, port)
    seen: list[dict] = []

    def record(trainer, epoch, step):
        seen.append(
            {
                "phase": trainer.model.phase,
                "pairs_seen": int(trainer.model.pairs_seen),
                "digests": all_gather_objects(
                    digest(p for p in trainer.model.parameters() if p.requires_grad)
                ),
            }
        )

    # Batch 4 = 2 ranks x 2 pairs; 18 training pairs -> 4 steps, the first 2 a warm-up.
    config = tiny_transfer_config(
        Path(videos),
        Path(teacher),
        Path(out),
        batch_size=4,
        micro_batch_size=2,
        epochs=1,
        feature_norm="layernorm",
        head_warmup_steps=2,
    )
    result = transfer(config, on_step=record)
    Path(results, f"rank{rank}.json").write_text(json.dumps({"steps": result.steps, "seen": seen}))


def test_the_warm_up_runs_under_two_gloo_ranks(unlabeled_videos, teacher_file, tmp_path):
    ranks = run_ranks(
        _worker,
        tmp_path / "results",
        str(unlabeled_videos),
        str(teacher_file),
        str(tmp_path / "run"),
    )
    for r in ranks:
        assert r["steps"] == 4
        # After each step: global pairs counted (4 a step), the phase of the next step.
        assert [s["pairs_seen"] for s in r["seen"]] == [4, 8, 12, 16]
        assert [s["phase"] for s in r["seen"]] == ["head_warmup", "joint", "joint", "joint"]
        assert all(s["digests"][0] == s["digests"][1] for s in r["seen"]), "ranks diverged"
    assert len({s["digests"][0] for s in ranks[0]["seen"]}) == 4  # every step changed weights
