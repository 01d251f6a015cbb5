"""The model registry: ``build(name, num_classes, frames, size, **kw)``, ``list_models()``,
and ``build_from_config`` (the network a run config describes).

Names: ``resnet3d_<depth>`` (10, 18, 34, 50, 101, 152, 200), ``resnext3d_<depth>`` (50, 101,
152), torchvision's video ResNets ``r3d_18``, ``mc3_18``, ``r2plus1d_18``
(stc_ext/models/video_resnet.py, torchvision's state_dict keys), and the STC variants of all
of them: ``stc_resnet3d_<depth>``, ``stc_resnext3d_<depth>``, ``stc_r3d_18``, ...
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from .resnet3d import (
    RESNET_LAYERS,
    RESNEXT_LAYERS,
    ResNet3D,
    resnet3d,
    resnext3d,
    stc_resnet3d,
    stc_resnext3d,
)
from .video_resnet import ARCHITECTURES, stc_video_resnet, video_resnet

_FAMILIES: tuple[tuple[str, Callable[..., ResNet3D], tuple[int, ...]], ...] = (
    ("resnet3d", resnet3d, tuple(RESNET_LAYERS)),
    ("resnext3d", resnext3d, tuple(RESNEXT_LAYERS)),
    ("stc_resnet3d", stc_resnet3d, tuple(RESNET_LAYERS)),
    ("stc_resnext3d", stc_resnext3d, tuple(RESNEXT_LAYERS)),
)
_STC_KWARGS = ("branches", "reduction", "backend", "placement")

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    f"{family}_{depth}": functools.partial(factory, depth)
    for family, factory, depths in _FAMILIES
    for depth in depths
}
_REGISTRY.update({arch: functools.partial(video_resnet, arch) for arch in ARCHITECTURES})
_REGISTRY.update(
    {f"stc_{arch}": functools.partial(stc_video_resnet, arch) for arch in ARCHITECTURES}
)


def list_models() -> list[str]:
    """Names ``build`` accepts, by family then depth."""
    return list(_REGISTRY)


def check_model_name(name: str) -> None:
    """Raise ``ValueError`` (suggesting close names) when ``name`` is not registered."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown model {name!r}{hint} (stc_ext.models.list_models() has "
            f"{', '.join(list_models())})"
        )


def build(name: str, num_classes: int, frames: int = 16, size: int = 112, **kwargs) -> nn.Module:
    """Build a registered model for clips of shape (N, 3, frames, size, size).

    Args:
        name: one of ``list_models()``, e.g. ``"stc_resnext3d_101"``.
        num_classes: width of the classifier.
        frames: clip length (16, 32, 64 in the paper); STC blocks are sized for it.
        size: spatial side of the input (112 in the paper).
        **kwargs: ``shortcut_type`` ("A"/"B"), ``dropout``, ``widths``, ``in_channels``,
            ``temporal_padding`` (3D ResNets); for ``stc_*`` models also ``branches``
            ("stc"/"tcb"/"scb"), ``reduction``, ``backend`` and ``placement`` ("block": an
            STC block in every residual block, the default; "stage": in the last one of each
            stage); for ResNeXt models ``cardinality``. torchvision's video ResNets take
            ``widths``, ``dropout``, ``in_channels`` and only shortcut "B".

    Raises:
        ValueError: unknown name, or STC options given to a model without STC blocks.
    """
    check_model_name(name)
    stray = [key for key in _STC_KWARGS if key in kwargs]
    if stray and not name.startswith("stc_"):
        raise ValueError(
            f"stc_ext.models.build: {name} has no STC blocks, so {', '.join(stray)} do not "
            f"apply; use stc_{name}"
        )
    return _REGISTRY[name](num_classes, frames, size, **kwargs)


def build_from_config(
    config: Mapping[str, Any], num_classes: int, backend: str | None = None
) -> nn.Module:
    """Build the network a run config describes, for ``num_classes`` classes.

    ``config``: a run config as a dict (``stc_ext.train.config_to_dict``, a checkpoint's
    ``config``): ``model``, ``frames`` and ``size``, and optionally ``widths``,
    ``shortcut_type``, ``dropout`` and, for ``stc_*`` models, ``branches``, ``reduction``,
    ``placement`` (absent: "block", what configs saved before it existed mean) and ``backend``
    (the ``backend`` argument overrides the config's).

    Raises:
        ValueError: as ``build``.
    """
    name = config["model"]
    kwargs: dict[str, Any] = {"dropout": config.get("dropout", 0.0)}
    if config.get("widths"):
        kwargs["widths"] = tuple(config["widths"])
    if config.get("shortcut_type"):
        kwargs["shortcut_type"] = config["shortcut_type"]
    if config.get("placement") not in (None, "block"):
        kwargs["placement"] = config["placement"]  # ``build`` refuses it for a plain model
    if name.startswith("stc_"):
        kwargs.update(
            branches=config.get("branches", "stc"),
            reduction=config.get("reduction", 4),
            placement=config.get("placement") or "block",
            backend=backend or config.get("backend", "auto"),
        )
    return build(name, num_classes, frames=config["frames"], size=config["size"], **kwargs)
