"""Config files, flag generation and resolution order."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re

import pytest

from stc_ext.train import (
    ConfigError,
    EvalConfig,
    TrainConfig,
    add_config_flags,
    config_from_dict,
    config_to_dict,
    given_options,
    load_config_file,
    resolve_eval_config,
    resolve_train_config,
    save_config,
)


def _non_default_config() -> TrainConfig:
    return TrainConfig(
        dataset="hmdb51",
        root="/videos",
        annotations="/splits",
        split=3,
        frames=32,
        stride=4,
        model="stc_resnext3d_101",
        branches="tcb",
        placement="stage",
        widths=[8, 16, 32, 64],
        shortcut_type="A",
        epochs=7,
        batch_size=64,
        micro_batch_size=8,
        lr=0.01,
        nesterov=False,
        scheduler="cosine",
        grad_clip=1.5,
        amp="bf16",
        compile=True,
        channels_last=True,
        threads=3,
        out_dir="runs/x",
        seed=11,
    )


def test_defaults_follow_the_paper():
    cfg = TrainConfig()
    assert (cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay) == (0.1, 0.9, True, 1e-4)
    assert (cfg.batch_size, cfg.scheduler, cfg.lr_factor) == (128, "plateau", 0.1)
    assert (cfg.frames, cfg.stride, cfg.size, cfg.short_side) == (16, 2, 112, 122)
    assert cfg.reduction == 4


def test_json_round_trip(tmp_path):
    cfg = _non_default_config()
    path = save_config(cfg, tmp_path / "config.json")
    assert config_from_dict(TrainConfig, load_config_file(path)) == cfg


def test_yaml_file_with_dashes_and_strings(tmp_path):
    pytest.importorskip("yaml", reason="PyYAML reads YAML config files")
    path = tmp_path / "run.yaml"
    path.write_text(
        "model: resnet3d_18\nbatch-size: 32\nwidths: 16,32,64,128\n"
        "nesterov: no\nlr: 0.05\ngrad_clip: null\n"
    )
    cfg = config_from_dict(TrainConfig, load_config_file(path))
    assert (cfg.model, cfg.batch_size, cfg.widths) == ("resnet3d_18", 32, [16, 32, 64, 128])
    assert cfg.nesterov is False and cfg.lr == 0.05 and cfg.grad_clip is None


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epoch": 3}, "unknown option 'epoch' (did you mean 'epochs'?)"),
        ({"frames": "sixteen"}, "frames: must be an integer"),
        ({"lr": True}, "lr: must be a number"),
        ({"amp": "fp8"}, "amp: must be one of none, bf16, fp16"),
        ({"widths": "8,x"}, "widths: must be a list of integers"),
        ({"model": None}, "model: must not be empty"),
        ({"compile": "maybe"}, "compile: must be true or false"),
        ({"placement": "layer"}, "placement: must be one of block, stage"),
    ],
)
def test_bad_values_are_named(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict(TrainConfig, values)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config_file(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config_file(tmp_path / "list.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config_file(tmp_path / "broken.json")


def test_flags_hold_only_what_was_given():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, TrainConfig)
    args = parser.parse_args(
        [
            "--epochs",
            "3",
            "--no-nesterov",
            "--widths",
            "8,8,8,8",
            "--micro-batch-size",
            "2",
            "--amp",
            "fp16",
        ]
    )
    given = given_options(args, TrainConfig)
    assert given == {
        "epochs": 3,
        "nesterov": False,
        "widths": "8,8,8,8",
        "micro_batch_size": 2,
        "amp": "fp16",
    }
    assert config_from_dict(TrainConfig, given).widths == [8, 8, 8, 8]
    with pytest.raises(SystemExit):
        parser.parse_args(["--scheduler", "linear"])
    # Every field has a flag.
    flags = {a.dest for a in parser._actions}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= flags


def test_resolution_order(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 5, "lr": 0.02, "model": "resnet3d_18"}))
    cfg = resolve_train_config({"lr": 0.03}, path)
    assert (cfg.epochs, cfg.lr, cfg.model, cfg.batch_size) == (5, 0.03, "resnet3d_18", 128)
    ev = resolve_eval_config({"splits": "1,2,3"}, None)
    assert ev.splits == [1, 2, 3] and ev.subset == "test"
    assert config_to_dict(EvalConfig())["splits"] == [1]


def test_saved_configs_with_old_field_names_still_load(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model": "resnet3d_18", "shortcut": "B"}))  # an older config.json
    assert resolve_train_config({}, path).shortcut_type == "B"
    assert config_from_dict(TrainConfig, {"shortcut": "A"}).shortcut_type == "A"
    both = {"shortcut": "A", "shortcut-type": "B"}  # the current name wins
    assert config_from_dict(TrainConfig, both).shortcut_type == "B"


def test_library_errors_name_the_config_field():
    with pytest.raises(ConfigError) as caught:
        TrainConfig(lr=-1.0).validate()
    assert (caught.value.field, caught.value.detail) == ("lr", "must be positive, got -1.0")
    assert str(caught.value) == "lr: must be positive, got -1.0"
    with pytest.raises(ConfigError, match="^label_smoothing: must be in"):
        TrainConfig(label_smoothing=1.0).validate()
    with pytest.raises(ConfigError, match="^val_annotations: dataset kinetics validates on"):
        TrainConfig(dataset="kinetics").validate()
    with pytest.raises(ConfigError, match="^placement: resnet3d_18 has no STC blocks"):
        TrainConfig(model="resnet3d_18", placement="stage").validate()
    TrainConfig().validate()  # the defaults are valid
    assert TrainConfig().placement == "block"  # what checkpoints before the option hold
