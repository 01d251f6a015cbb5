"""stc_ext/train/inference.py: checkpoints to models, clip settings and clip times."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stc_ext import models
from stc_ext.data import non_overlapping_clip_indices
from stc_ext.train import ConfigError
from stc_ext.train.inference import (
    ClipSettings,
    build_model,
    clip_settings,
    clip_times,
    protocol_dataset,
    read_source,
)


@pytest.mark.parametrize(
    ("num_frames", "frames", "stride", "drop", "expected"),
    [
        (20, 4, 2, False, [(0, 8, False), (8, 16, False), (16, 20, True)]),
        (20, 4, 2, True, [(0, 8, False), (8, 16, False)]),
        (3, 4, 2, False, [(0, 3, True)]),  # shorter than one clip: one looped clip
        (16, 4, 1, False, [(0, 4, False), (4, 8, False), (8, 12, False), (12, 16, False)]),
        (17, 4, 3, False, [(0, 12, False), (12, 17, True)]),
    ],
)
def test_clip_times_tile_the_video(num_frames, frames, stride, drop, expected):
    indices = non_overlapping_clip_indices(num_frames, frames, stride, drop)
    times = clip_times(indices, num_frames, stride, fps=4.0)
    assert list(zip(times.start_frame, times.end_frame, times.padded, strict=True)) == expected
    assert times.seconds(times.end_frame[0]) == expected[0][1] / 4.0
    assert clip_times(indices, num_frames, stride, None).seconds(5) is None


def test_clip_settings_defaults_and_overrides():
    assert clip_settings({}) == ClipSettings(16, 2, 112, 122)
    assert clip_settings({}, size=160) == ClipSettings(16, 2, 160, 160)
    trained = {"frames": 8, "stride": 1, "size": 64, "short_side": 72}
    assert clip_settings(trained) == ClipSettings(8, 1, 64, 72)
    assert clip_settings(trained, stride=3, short_side=80) == ClipSettings(8, 3, 64, 80)
    with pytest.raises(ConfigError, match="frames: 16 does not match.*frames=8"):
        clip_settings(trained, frames=16)


def _tiny(name="stc_resnet3d_10", classes=3):
    return models.build(name, classes, frames=4, size=32, widths=(8, 8, 8, 8))


def test_read_source_kinds(tmp_path):
    net = _tiny()
    state = net.state_dict()
    torch.save(state, tmp_path / "bare.pth")
    with pytest.raises(ConfigError, match="model: .* does not record its architecture"):
        read_source(tmp_path / "bare.pth")
    source = read_source(tmp_path / "bare.pth", model="stc_resnet3d_10")
    assert source.num_classes == 3 and source.classes is None
    # A transfer run's checkpoint gives its student backbone, for features only.
    transfer = {
        "format": "stc_ext.train/1",
        "task": "transfer",
        "model": {"student.x": torch.zeros(1)},
        "init_model": {k: v for k, v in state.items() if not k.startswith("fc.")},
        "config": {"model": "stc_resnet3d_10", "frames": 4, "size": 32, "widths": [8] * 4},
    }
    torch.save(transfer, tmp_path / "transfer.pt")
    with pytest.raises(ConfigError, match="'transfer' checkpoint, not a classifier"):
        read_source(tmp_path / "transfer.pt")
    backbone = read_source(tmp_path / "transfer.pt", need_classifier=False)
    assert not backbone.has_classifier and backbone.num_classes is None
    model = build_model(backbone, clip_settings(backbone.config))
    torch.testing.assert_close(model.conv1.weight, net.conv1.weight)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="checkpoint: .*junk.pt: is not a PyTorch file"):
        read_source(tmp_path / "junk.pt")


def test_build_model_names_a_mismatch(tmp_path):
    torch.save(_tiny("resnet3d_10").state_dict(), tmp_path / "plain.pth")
    source = read_source(tmp_path / "plain.pth", model="resnet3d_18")
    with pytest.raises(ConfigError, match="weights do not fit resnet3d_18"):
        build_model(source, ClipSettings(4, 2, 32, 32))
    source = read_source(tmp_path / "plain.pth", model="nonet")
    with pytest.raises(ConfigError, match="unknown model 'nonet'"):
        build_model(source, ClipSettings(4, 2, 32, 32))


def test_sampled_frames_are_those_of_the_last_read(tmp_path):
    av = pytest.importorskip("av", reason="PyAV is needed to write videos")
    path = tmp_path / "v.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(11):
            frame = np.full((32, 32, 3), 20 * i, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    from stc_ext.data import VideoRecord

    dataset = protocol_dataset([VideoRecord(path)], ClipSettings(3, 2, 32, 32))
    assert dataset.sampled_frames(0) is None
    clips, _, _ = dataset[0]
    indices, num_frames = dataset.sampled_frames(0)
    assert num_frames == 11 and indices.tolist() == [[0, 2, 4], [6, 8, 10]]
    assert clips.shape == (2, 3, 3, 32, 32)
