"""The small 2D teacher: the shape-image task, its training run, and the file it writes."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from stc_ext.data import EvalTransform
from stc_ext.data.synthetic import SHAPE_CLASSES, shape_images
from stc_ext.models.resnet2d import load_torchvision_weights, resnet2d
from stc_ext.transfer.teacher import TEACHER_FORMAT, read_teacher_arch, train_shape_teacher

# Measured on 2 cores, one thread: ~12 s, held-out accuracy 0.48 for seed 0 and 0.47-0.73
# over seeds 0-4 (chance 0.25; 160 test images, so chance's std is 0.034). The defaults
# (1000 steps, widths 16..128) reach ~99% but take a minute.
LEARNING_RUN = dict(
    depth=18,
    widths=(8, 16, 32, 64),
    images=800,
    test_images=160,
    image_size=64,
    short_side=64,
    crop=56,
    steps=300,
    batch_size=32,
    lr=0.1,
    seed=0,
)
SHORT_RUN = dict(
    depth=18,
    widths=(8, 8, 16, 16),
    images=64,
    test_images=16,
    image_size=32,
    short_side=32,
    crop=28,
    steps=6,
    batch_size=8,
)


def test_shape_classes():
    assert SHAPE_CLASSES == ("ellipse", "rectangle", "triangle", "cross")


def test_shape_images_shapes_balance_and_determinism():
    images, labels = shape_images(14, size=40, seed=5)
    assert images.shape == (14, 40, 40, 3) and images.dtype == np.uint8
    assert labels.shape == (14,) and labels.dtype == np.int64
    assert np.bincount(labels, minlength=4).tolist() == [4, 4, 3, 3]  # cycled, then shuffled
    assert labels[:4].tolist() != [0, 1, 2, 3] or labels[4:8].tolist() != [0, 1, 2, 3]
    again_images, again_labels = shape_images(14, size=40, seed=5)
    np.testing.assert_array_equal(again_images, images)
    np.testing.assert_array_equal(again_labels, labels)
    other_images, _ = shape_images(14, size=40, seed=6)
    assert not np.array_equal(other_images, images)
    flat = images.reshape(14, -1).astype(np.int16)
    for i in range(14):
        for j in range(i + 1, 14):
            assert np.abs(flat[i] - flat[j]).mean() > 5, (i, j)
    assert images.std() > 20  # not a flat canvas


def test_shape_images_streams_are_per_image():
    """Image i comes from its own stream: the same for another count when its label is."""
    few_images, few_labels = shape_images(6, size=32, seed=2)
    many_images, many_labels = shape_images(11, size=32, seed=2)
    same = few_labels == many_labels[:6]
    assert same.any()
    np.testing.assert_array_equal(few_images[same], many_images[:6][same])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(count=-1), "count"),
        (dict(count=2.0), "count"),
        (dict(count=4, size=24), "size"),
        (dict(count=4, seed=-1), "seed"),
    ],
)
def test_shape_images_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"shape_images: {name}"):
        shape_images(**kwargs)


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    return out, train_shape_teacher(out, **LEARNING_RUN)


@pytest.mark.slow  # trains the teacher for real (its fixture)
def test_teacher_learns_and_loads(learned):
    out, result = learned
    assert result.path == out and out.is_file()
    assert (result.depth, result.widths, result.steps) == (18, (8, 16, 32, 64), 300)
    assert result.seconds > 0
    assert result.test_accuracy > 0.35 and result.train_accuracy > 0.35

    saved = torch.load(out, map_location="cpu", weights_only=True)
    assert saved["format"] == TEACHER_FORMAT
    assert saved["arch"] == {"depth": 18, "widths": [8, 16, 32, 64], "num_classes": 4}
    assert saved["classes"] == list(SHAPE_CLASSES)
    assert saved["image"] == {"short_side": 64, "crop": 56}
    assert saved["train_accuracy"] == result.train_accuracy
    assert saved["test_accuracy"] == result.test_accuracy
    assert "shape_images" in saved["task"]
    assert all(v.is_contiguous() for v in saved["state_dict"].values())
    assert read_teacher_arch(out) == saved["arch"]

    # as a backbone (fc dropped), the way the transfer task uses it
    arch = read_teacher_arch(out)
    backbone = resnet2d(arch["depth"], widths=arch["widths"])
    report = load_torchvision_weights(backbone, out, ignore=("fc.",))
    assert report.ok and report.ignored == ["fc.weight", "fc.bias"]
    for key, value in backbone.state_dict().items():
        if not key.startswith("fc."):
            torch.testing.assert_close(value, saved["state_dict"][key], rtol=0, atol=0)

    # whole, it reproduces the recorded held-out accuracy on the recorded held-out images
    recipe = saved["recipe"]
    assert recipe["seed"] == 0 and recipe["test_seed"] != 0 and recipe["steps"] == 300
    model = resnet2d(18, num_classes=4, widths=arch["widths"])
    assert load_torchvision_weights(model, out).ok
    images, labels = shape_images(
        recipe["test_images"], recipe["image_size"], seed=recipe["test_seed"]
    )
    with torch.inference_mode():
        x = EvalTransform(64, 56)(torch.from_numpy(images)[:, None]).squeeze(2)
        predicted = model.eval()(x).argmax(1)
    accuracy = (predicted == torch.from_numpy(labels)).float().mean().item()
    assert accuracy == pytest.approx(result.test_accuracy, abs=1.5 / len(labels))


def test_teacher_is_deterministic(tmp_path, caplog):
    before = torch.get_rng_state()
    with caplog.at_level(logging.INFO, logger="stc_ext.transfer"):
        first = train_shape_teacher(tmp_path / "a.pt", seed=3, progress=True, **SHORT_RUN)
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is left alone
    assert any("test accuracy" in r.getMessage() for r in caplog.records)
    second = train_shape_teacher(tmp_path / "b.pt", seed=3, **SHORT_RUN)
    other = train_shape_teacher(tmp_path / "c.pt", seed=4, **SHORT_RUN)
    a, b, c = (torch.load(r.path, weights_only=True)["state_dict"] for r in (first, second, other))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert first.test_accuracy == second.test_accuracy
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


def test_read_teacher_arch_of_other_files(tmp_path):
    state = resnet2d(18, widths=(8, 8, 16, 16)).state_dict()
    torch.save(state, tmp_path / "plain.pt")
    assert read_teacher_arch(tmp_path / "plain.pt") is None
    torch.save({"arch": "resnet-18", "state_dict": state}, tmp_path / "3d_resnets.pth")
    assert read_teacher_arch(tmp_path / "3d_resnets.pth") is None
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert read_teacher_arch(tmp_path / "legacy.pt") is None


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(depth=19), "depth"),
        (dict(depth=18.0), "depth"),
        (dict(widths=(8, 8, 16)), "widths"),
        (dict(widths=(8, 0, 16, 16)), "widths"),
        (dict(widths=8), "widths"),
        (dict(images=0), "images"),
        (dict(test_images=0), "test_images"),
        (dict(image_size=16), "image_size"),
        (dict(short_side=0), "short_side"),
        (dict(crop=0), "crop"),
        (dict(crop=40), "crop"),  # > short_side 32
        (dict(steps=0), "steps"),
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=100), "batch_size"),  # > images 64
        (dict(lr=0.0), "lr"),
        (dict(lr=math.nan), "lr"),
        (dict(seed=-1), "seed"),
    ],
)
def test_teacher_bad_arguments(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=f"train_shape_teacher: {name}"):
        train_shape_teacher(tmp_path / "t.pt", **{**SHORT_RUN, **kwargs})
    assert not (tmp_path / "t.pt").exists()


def test_teacher_out_folder_must_exist(tmp_path):
    with pytest.raises(ValueError, match="train_shape_teacher: out"):
        train_shape_teacher(tmp_path / "missing" / "t.pt", **SHORT_RUN)
