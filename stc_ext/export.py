"""Exporting networks: ``torch.export`` programs (``.pt2``) and ONNX files.

* ``export_program(model, example)``: ``torch.export.export`` with a dynamic batch axis.
  The STC blocks stay one ``torch.ops.stc_ext.stc`` node each (their fused kernels run the
  program; load it with ``torch.export.load`` after ``import stc_ext``). The node records
  the backend chosen for the example's device; "cpu" and "cuda" are the same compiled ops,
  which dispatch on the tensors' device. Where no fused kernel exists ("reference"), the
  blocks are traced into plain ATen ops instead.
* ``export_onnx(model, example, path)``: the program with the STC op decomposed into
  standard ops (:mod:`stc_ext.ops.decomposition`), translated by ``torch.onnx.export``
  (needs ``onnx`` and ``onnxscript``: ``pip install 'stc_ext[onnx]'``) and, when
  ``onnxruntime`` is installed, run on the CPU against the eager model.
* ``export_checkpoint(checkpoint, out, format)``: both from a checkpoint (``stc export``).

Inputs are clips ``float32 (N, 3, frames, size, size)``, normalised as for training;
outputs the logits ``(N, classes)`` or, with ``layer="pool"``, the pooled features.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .train.config import ConfigError
from .train.inference import LAYERS, build_model, clip_settings, read_source

__all__ = [
    "FORMATS",
    "ExportResult",
    "check_onnx",
    "export_checkpoint",
    "export_onnx",
    "export_program",
]

logger = logging.getLogger("stc_ext.export")

FORMATS = {"pt2": ".pt2", "onnx": ".onnx"}


class _Features(nn.Module):
    """A network's ``forward_features`` as its forward (to export the pooled features)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, clips: Tensor) -> Tensor:
        return self.model.forward_features(clips)


def _exportable(model: nn.Module, layer: str) -> nn.Module:
    if layer not in LAYERS:
        raise ValueError(f"export: layer must be one of {LAYERS}, got {layer!r}")
    if layer == "pool":
        if not hasattr(model, "forward_features"):
            raise ValueError(f"export: {type(model).__name__} has no forward_features")
        model = _Features(model)
    return model.eval()


def export_program(
    model: nn.Module, example: Tensor, layer: str = "logits", dynamic_batch: bool = True
) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` (eval mode) on clips like ``example``.

    ``dynamic_batch``: the batch size is symbolic (the program takes any N >= 1; give an
    example with N >= 2, which export needs to keep the axis dynamic).

    Raises:
        RuntimeError: torch.export could not trace the model (its message, first line).
    """
    model = _exportable(model, layer)
    shapes = None
    if dynamic_batch:
        if example.shape[0] < 2:
            raise ValueError(
                f"export: a dynamic batch needs an example with at least 2 clips, got "
                f"shape {tuple(example.shape)}"
            )
        shapes = ({0: torch.export.Dim("batch")},)  # for the one positional input
    try:
        return torch.export.export(model, (example,), dynamic_shapes=shapes)
    except Exception as exc:  # torch raises many types when tracing fails
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise RuntimeError(
            f"export: torch.export could not trace {type(model).__name__}: {first}"
        ) from exc


def _onnx_modules():
    try:
        import onnx  # noqa: F401  (torch.onnx's exporter needs both)
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"ONNX export needs the onnx and onnxscript packages ({exc}): "
            "pip install 'stc_ext[onnx]'"
        ) from exc


def export_onnx(
    model: nn.Module | torch.export.ExportedProgram,
    example: Tensor,
    path: str | os.PathLike,
    layer: str = "logits",
    opset: int | None = None,
) -> Path:
    """Write ``model`` (or its ``export_program``) as an ONNX file with a dynamic batch
    axis; the STC op is decomposed into standard ops first. Input ``clips``, output
    ``logits`` (or ``features`` for ``layer="pool"``).

    Raises:
        ImportError: onnx/onnxscript are not installed.
        RuntimeError: tracing or the ONNX translation failed.
    """
    from .ops.decomposition import decompose_stc

    _onnx_modules()
    if not isinstance(model, torch.export.ExportedProgram):
        model = export_program(model, example, layer)
    program = decompose_stc(model)
    output = "features" if layer == "pool" else "logits"
    try:
        onnx_program = torch.onnx.export(
            program,
            (example,),
            dynamo=True,
            input_names=["clips"],
            output_names=[output],
            opset_version=opset,
            verbose=False,
        )
    except Exception as exc:  # the exporter raises its own error types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise RuntimeError(f"export: the ONNX translation failed: {first}") from exc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        onnx_program.save(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_onnx(
    path: str | os.PathLike, model: nn.Module, clips: Tensor, layer: str = "logits"
) -> float | None:
    """Run the ONNX file with onnxruntime on the CPU and the eager model on ``clips``;
    return the max absolute difference (None when onnxruntime is not installed).

    Raises:
        ValueError: the difference exceeds 1e-4 * (1 + max |eager output|).
    """
    try:
        import onnxruntime
    except ImportError:
        return None
    model = _exportable(model, layer)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    got = torch.from_numpy(session.run(None, {name: clips.cpu().numpy()})[0])
    with torch.no_grad():
        expected = model(clips).float().cpu()
    error = (got.double() - expected.double()).abs().max().item()
    bound = 1e-4 * (1.0 + expected.abs().max().item())
    if not error <= bound:
        raise ValueError(
            f"export: onnxruntime's output differs from the model's by {error:.3e} "
            f"(bound {bound:.3e}) on clips of shape {tuple(clips.shape)}"
        )
    return error


@dataclass
class ExportResult:
    """What ``export_checkpoint`` wrote and how its output compares with the eager model."""

    path: str
    format: str
    model: str
    input_shape: tuple[int, ...]  # the example's; the batch axis is dynamic
    layer: str
    max_error: float | None  # None: not checked (onnxruntime missing, or check=False)
    custom_op_nodes: int  # torch.ops.stc_ext.stc nodes in the exported program


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    format: str | None = None,
    *,
    model: str | None = None,
    placement: str | None = None,
    frames: int | None = None,
    size: int | None = None,
    layer: str = "logits",
    backend: str | None = None,
    opset: int | None = None,
    check: bool = True,
) -> ExportResult:
    """Export the network in ``checkpoint`` (as ``stc predict`` loads it) to ``out``.

    ``format``: "pt2" or "onnx" (default: from ``out``'s extension, which must match it).
    The program takes clips of the checkpoint's ``frames`` and ``size`` (overridable like
    ``stc predict``'s) and any batch size. ``check``: run the exported program on a fresh
    random batch of another size and compare it with the eager model.

    Raises:
        ConfigError: a bad format, path or checkpoint (naming the field).
        ImportError: ONNX export without the onnx packages.
        RuntimeError: the export failed; ValueError: the check failed.
    """
    out = Path(out)
    if format is None:
        format = next((f for f, suffix in FORMATS.items() if out.suffix == suffix), None)
        if format is None:
            raise ConfigError(
                f"cannot tell the format from {out.name}: end it in .pt2 or .onnx, or give "
                "the format",
                field="out",
            )
    if format not in FORMATS:
        raise ConfigError(f"must be one of {tuple(FORMATS)}, got {format!r}", field="format")
    if out.suffix != FORMATS[format]:
        raise ConfigError(
            f"a {format} file must end in {FORMATS[format]}, got {out.name}", field="out"
        )
    if layer not in LAYERS:
        raise ConfigError(f"must be one of {LAYERS}, got {layer!r}", field="layer")
    if format == "onnx":
        _onnx_modules()  # fail before the (slow) tracing
    source = read_source(checkpoint, model, layer == "logits", placement)
    clip = clip_settings(source.config, frames, size=size)
    net = build_model(source, clip, backend=backend)
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(2, 3, clip.frames, clip.size, clip.size, generator=generator)
    probe = torch.randn(3, 3, clip.frames, clip.size, clip.size, generator=generator)
    program = export_program(net, example, layer)
    nodes = sum(
        1
        for node in program.graph.nodes
        if node.op == "call_function" and node.target is torch.ops.stc_ext.stc.default
    )
    error = None
    if format == "pt2":
        tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")  # torch wants the .pt2 ending
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.export.save(program, str(tmp))
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        if check:
            reloaded = torch.export.load(str(out)).module()
            with torch.no_grad():
                got, expected = reloaded(probe), _exportable(net, layer)(probe)
            error = (got - expected).abs().max().item()
            bound = 1e-5 * (1.0 + expected.abs().max().item())
            if not error <= bound:
                raise ValueError(
                    f"export: the reloaded program differs from the model by {error:.3e}"
                )
    else:
        export_onnx(program, example, out, layer, opset)
        if check:
            error = check_onnx(out, net, probe, layer)
            if error is None:
                logger.warning("onnxruntime is not installed: %s was not checked", out)
    return ExportResult(
        str(out),
        format,
        source.config["model"],
        tuple(example.shape),
        layer,
        error,
        nodes,
    )
