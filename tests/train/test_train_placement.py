"""The STC placement through training: recorded in checkpoints, a mismatch refused on
resume, ``init`` and ``evaluate``, old checkpoints read as "block"."""

from __future__ import annotations

import pytest
import torch
from train_helpers import tiny_config

from stc_ext.train import (
    ConfigError,
    EvalConfig,
    evaluate,
    load_checkpoint,
    resolve_train_config,
    train,
)


@pytest.fixture(scope="module")
def stage_run(tiny_data, tmp_path_factory):
    """One epoch of an STC-ResNet-18 (two residual blocks per stage) with placement stage."""
    out = tmp_path_factory.mktemp("stage")
    train(tiny_config(tiny_data, out, model="stc_resnet3d_18", placement="stage", epochs=1))
    return out


def test_the_checkpoint_records_the_placement(stage_run):
    saved = load_checkpoint(stage_run / "last.pt")
    assert saved["config"]["placement"] == "stage"
    with_stc = sorted({k.split(".stc.")[0] for k in saved["model"] if ".stc." in k})
    assert with_stc == ["layer1.1", "layer2.1", "layer3.1", "layer4.1"]


def test_a_placement_mismatch_is_refused_on_resume_init_and_evaluate(
    stage_run, tiny_data, tmp_path
):
    last = str(stage_run / "last.pt")
    with pytest.raises(ConfigError, match="placement: checkpoint 'stage' vs now 'block'"):
        train(resolve_train_config({"resume": last, "placement": "block", "epochs": 2}))
    block = tiny_config(tiny_data, tmp_path / "init", model="stc_resnet3d_18", init=last)
    with pytest.raises(ConfigError, match="placed per 'stage', this model's per 'block'"):
        train(block)
    with pytest.raises(ConfigError, match="placement: block does not match.*placement=stage"):
        evaluate(EvalConfig(checkpoint=last, placement="block", workers=0, progress=False))
    report = evaluate(
        EvalConfig(checkpoint=last, workers=0, progress=False, out=str(tmp_path / "e.json"))
    )
    assert report.splits[0].num_videos == 3


def test_foreign_weights_name_the_placement_they_need(stage_run, tiny_data, tmp_path):
    weights = tmp_path / "weights.pt"
    torch.save(load_checkpoint(stage_run / "last.pt")["model"], weights)
    common = dict(
        checkpoint=str(weights),
        dataset="synthetic",
        root=str(tiny_data),
        model="stc_resnet3d_18",
        frames=4,
        size=32,
        workers=0,
        progress=False,
        out=str(tmp_path / "e.json"),
    )
    # widths are not an eval option: the full-width model misfits anyway, but the hint
    # names the placement the weights were trained with.
    with pytest.raises(ConfigError, match="placed per 'stage': give placement stage"):
        evaluate(EvalConfig(**common))


@pytest.mark.slow  # > 1 s idle; make test runs it
def test_a_checkpoint_without_a_placement_resumes_as_block(tiny_data, tmp_path):
    out = tmp_path / "run"
    train(tiny_config(tiny_data, out, model="stc_resnet3d_18", epochs=1))
    old = torch.load(out / "last.pt", weights_only=True)
    del old["config"]["placement"]  # as checkpoints before the option
    torch.save(old, out / "last.pt")
    config = resolve_train_config({"resume": str(out / "last.pt"), "epochs": 2})
    assert config.placement == "block"
    assert train(config).epochs_done == 2
