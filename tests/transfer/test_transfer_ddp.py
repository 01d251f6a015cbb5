"""`stc transfer` under two gloo CPU ranks: the student and head stay in sync, the teacher
stays frozen, metrics are reduced."""

from __future__ import annotations

import faulthandler
import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from run_helpers import digest, free_port
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
    faulthandler.dump_traceback_later(240, exit=True)  # a deadlock fails with both stacks
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
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
    results = tmp_path / "results"
    results.mkdir()
    mp.start_processes(
        _worker,
        args=(
            2,
            free_port(),
            str(unlabeled_videos),
            str(teacher_file),
            str(tmp_path / "run"),
            str(results),
        ),
        nprocs=2,
        join=True,
        start_method="spawn",
    )
    ranks = [json.loads((results / f"rank{r}.json").read_text()) for r in range(2)]
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
