"""I3D-style inflation (Carreira & Zisserman, CVPR 2017): a 3D ResNet's weights from a 2D one's.

The paper's Table 7 baseline. Every 3D tensor whose 2D counterpart (same key) has the same
shape apart from the temporal kernel size is inflated: the (O, I, kh, kw) kernel is repeated
kt times along a new temporal axis and divided by kt, so that on a static video the 3D
convolution computes what the 2D one computes on the frame. BatchNorm parameters and
statistics (and ``fc``, when the class count agrees) are copied. Everything else keeps the
3D model's own initialisation and is listed in the report with the reason.

On a static video the inflated net reproduces the 2D net's pooled features exactly only if
temporal padding repeats frames (``temporal_padding="replicate"``); with zero padding,
frames near the clip's ends differ (their temporal taps reach into zeros).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .checkpoint import Checkpoint, format_key_list, read_state_dict

NO_COUNTERPART = "no 2D counterpart"


@dataclass
class InflationReport:
    """What ``inflate_from_2d`` did, by 3D-model key (2D keys for ``unused``)."""

    inflated: list[str] = field(default_factory=list)  # kernels repeated over time, / kt
    copied: list[str] = field(default_factory=list)  # same shape: BN, fc, biases
    not_inflated: dict[str, str] = field(default_factory=dict)  # key -> why (kept as it was)
    unused: list[str] = field(default_factory=list)  # 2D tensors with no 3D counterpart

    def __str__(self) -> str:
        lines = [
            f"inflated {len(self.inflated)}, copied {len(self.copied)}, "
            f"not inflated {len(self.not_inflated)}, unused 2D tensors {len(self.unused)}"
        ]
        absent = [k for k, why in self.not_inflated.items() if why == NO_COUNTERPART]
        differ = [f"{k} ({why})" for k, why in self.not_inflated.items() if why != NO_COUNTERPART]
        if differ:
            lines.append(f"not inflated, shapes differ: {format_key_list(differ)}")
        if absent:
            lines.append(
                f"not inflated, {NO_COUNTERPART} ({len(absent)}): {format_key_list(absent)}"
            )
        if self.unused:
            lines.append(f"unused 2D tensors: {format_key_list(self.unused)}")
        return "\n".join(lines)


def inflate_tensor(weight_2d: Tensor, temporal_size: int) -> Tensor:
    """(O, I, kh, kw) -> (O, I, temporal_size, kh, kw): repeated along time, divided by its size."""
    return weight_2d.unsqueeze(2).repeat(1, 1, temporal_size, 1, 1) / temporal_size


def inflate_from_2d(model3d: nn.Module, source: nn.Module | Checkpoint) -> InflationReport:
    """Initialise ``model3d`` (in place) from a 2D network with the same module names.

    Args:
        model3d: e.g. ``resnet3d(50)`` or ``stc_resnet3d(50)`` (STC blocks have no 2D
            counterpart and keep their initialisation).
        source: a 2D ``nn.Module`` (e.g. ``resnet2d.resnet50()``), its state_dict, or the
            path of a torchvision/timm checkpoint.

    Returns:
        An ``InflationReport``; nothing is raised for tensors that cannot be inflated.

    Raises:
        CheckpointFileError: ``source`` is a file that cannot be read.
        ValueError: ``source`` holds 3D (5-D) weights.
    """
    if isinstance(source, nn.Module):
        state_2d: Mapping[str, Tensor] = source.state_dict()
    else:
        state_2d, _ = read_state_dict(source)
    volumetric = [key for key, tensor in state_2d.items() if tensor.dim() == 5]
    if volumetric:
        where = f"{source}: " if isinstance(source, (str, os.PathLike)) else ""
        raise ValueError(
            f"{where}holds 3D weights ({volumetric[0]} is 5-D): a 3D network's checkpoint, not "
            "the 2D network inflation starts from (a torchvision/timm ResNet state dict or a "
            "`stc teacher` file)"
        )
    report = InflationReport()
    own = model3d.state_dict()
    with torch.no_grad():
        for key, target in own.items():
            if key not in state_2d:
                report.not_inflated[key] = NO_COUNTERPART
                continue
            weight = state_2d[key]
            if weight.shape == target.shape:
                target.copy_(weight)
                report.copied.append(key)
            elif (
                target.dim() == 5
                and weight.dim() == 4
                and target.shape[:2] == weight.shape[:2]
                and target.shape[3:] == weight.shape[2:]
            ):
                target.copy_(inflate_tensor(weight.to(target.dtype), target.shape[2]))
                report.inflated.append(key)
            else:
                report.not_inflated[key] = (
                    f"shape {tuple(target.shape)} vs 2D {tuple(weight.shape)}"
                )
    report.unused = [key for key in state_2d if key not in own]
    return report


def inflated_backbone(
    model3d: nn.Module, source: nn.Module | Checkpoint
) -> tuple[dict[str, Tensor], InflationReport]:
    """Inflate ``source`` into ``model3d`` and return its weights without ``fc`` (an ``--init``
    state for fine-tuning) and the report.

    Strict: every 2D tensor must be used and every 3D tensor with a 2D counterpart filled
    (only ``fc`` may differ, STC blocks have no counterpart).

    Raises:
        ValueError: the structures differ (the message holds the report).
    """
    report = inflate_from_2d(model3d, source)
    differ = [
        k
        for k, why in report.not_inflated.items()
        if why != NO_COUNTERPART and not k.startswith("fc.")
    ]
    if differ or report.unused or not report.inflated:
        raise ValueError(
            f"the 2D network does not fit the 3D model (the same structure, widths "
            f"and convolutional shortcuts are needed)\n{report}"
        )
    state = {k: v for k, v in model3d.state_dict().items() if not k.startswith("fc.")}
    return state, report
