"""`stc transfer` under two gloo CPU ranks: the student and head stay in sync, the teacher
stays frozen, metrics are reduced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch.distributed as dist
from run_helpers import become_rank, digest, run_ranks
from transfer_helpers import tiny_transfer_config

from stc_ext.train.distributed import all_gather_objects
from stc_ext.train.trainer import TIMING_FIELDS
from stc_ext.transfer import transfer

pytestmark = [
    pytest.mark.slow,  # two spawned processes, each importing torch
    pytest.mark.skipif(
        not dist.is_available() or not dist.is_gloo_available(),
        reason="torch.distributed with gloo is needed",
    ),
]


def _worker(
    rank: int, world: int, port: int, videos: str, teacher: str, out: str, results: str
) -> None:
    become_rank(rank, world, port)
    digests: list[list[str]] = []
    teacher_digests: list[str] = []

    def check_sync(trainer, epoch, step):
        # Parameters, not buffers: each rank's BatchNorm statistics follow its own data.
        digests.append(
            all_gather_objects(digest(p for p in trainer.model.parameters() if p.requires_grad))
        )
        teacher_digests.append(digest(trainer.model.teacher.state_dict().values()))

    # Batch 4 = 2 ranks x micro-batch 1 x 2 accumulation; 48 px so the student's last stage
    # has more than one value per channel for BatchNorm in a one-pair micro-batch.
    config = tiny_transfer_config(
        Path(videos),
        Path(teacher),
        Path(out),
        batch_size=4,
        micro_batch_size=1,
        epochs=1,
        size=48,
        short_side=48,
    )
    result = transfer(config, on_step=check_sync)
    Path(results, f"rank{rank}.json").write_text(
        json.dumps(
            {
                "digests": digests,
                "teacher": teacher_digests,
                "history": result.history,
                "steps": result.steps,
                "world": result.world_size,
            }
        )
    )


def test_two_gloo_ranks_stay_in_sync(unlabeled_videos, teacher_file, tmp_path):
    ranks = run_ranks(
        _worker,
        tmp_path / "results",
        str(unlabeled_videos),
        str(teacher_file),
        str(tmp_path / "run"),
    )
    for r in ranks:
        # 18 training pairs: 9 per rank, 2 per rank and step -> 4 steps.
        assert (r["world"], r["steps"], len(r["digests"])) == (2, 4, 4)
        assert all(step[0] == step[1] for step in r["digests"]), "ranks diverged"
        assert len(set(r["teacher"])) == 1, "the teacher changed"
    assert ranks[0]["teacher"] == ranks[1]["teacher"]
    assert len({d[0] for d in ranks[0]["digests"]}) == 4  # the weights changed every step

    def metrics(rank):
        return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in rank["history"]]

    assert metrics(ranks[0]) == metrics(ranks[1])
    assert (tmp_path / "run" / "student.pt").is_file()
