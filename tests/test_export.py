"""stc_ext/export.py, stc_ext/ops/decomposition.py and `stc export`: torch.export with the
STC op kept in the graph, and ONNX with it decomposed, checked with onnxruntime."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

import stc_ext
from stc_ext import STCBlock, cli, models
from stc_ext.export import check_onnx, export_checkpoint, export_onnx, export_program
from stc_ext.ops.decomposition import decompose_stc, stc_decomposition
from stc_ext.ops.registration import stc_op
from stc_ext.testing import random_feature_map, randomize_block
from stc_ext.train import ConfigError

KERNEL = next((b for b in stc_ext.available_backends("cpu") if b != "reference"), None)
needs_kernel = pytest.mark.skipif(KERNEL is None, reason="no fused STC backend on the CPU here")


def _stc_nodes(program) -> int:
    return sum(
        1
        for n in program.graph.nodes
        if n.op == "call_function" and n.target is torch.ops.stc_ext.stc.default
    )


@needs_kernel
@pytest.mark.parametrize("branches", ["stc", "tcb", "scb"])
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncthw", "cl3d"])
def test_decomposition_computes_what_the_op_does(branches, residual, dtype, channels_last):
    generator = torch.Generator().manual_seed(11)
    shape = (2, 12, 3, 5, 7)
    block = randomize_block(STCBlock(12, 3, branches=branches), generator=generator)
    block = block.double() if dtype == torch.float64 else block
    x = random_feature_map(shape, dtype, channels_last, generator=generator)
    identity = random_feature_map(shape, dtype, channels_last, generator) if residual else None
    flat = block.params().flat()
    with torch.no_grad():
        expected = stc_op(x, identity, *flat, KERNEL)
        got = stc_decomposition(x, identity, *flat, KERNEL)
    for name, a, b in zip(("y", "s", "state"), got, expected, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        # Same formula, same accumulation dtype: equal up to the order of the sums.
        tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 1e-2}[dtype]
        torch.testing.assert_close(a.double(), b.double(), rtol=tol, atol=tol, msg=name)


class _TwoBlocks(nn.Module):
    """A conv between two STC blocks, one plain, one residual: the op in a graph, cheaply."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = STCBlock(6, 4, backend=KERNEL or "reference"), STCBlock(6, 4)
        self.conv = nn.Conv3d(6, 6, 3, padding=1)

    def forward(self, x):
        return self.b(self.conv(self.a(x)), x)


@needs_kernel
def test_export_keeps_the_op_and_decomposition_removes_it():
    torch.manual_seed(0)
    model = _TwoBlocks().eval()
    x, other = torch.randn(2, 6, 4, 5, 5), torch.randn(5, 6, 4, 5, 5)
    program = export_program(model, x)
    assert _stc_nodes(program) == 2
    with torch.no_grad():
        expected = model(other)
        torch.testing.assert_close(program.module()(other), expected, rtol=0, atol=0)
        decomposed = decompose_stc(program)
        assert _stc_nodes(decomposed) == 0
        targets = {str(n.target) for n in decomposed.graph.nodes if n.op == "call_function"}
        assert not any("stc_ext" in t for t in targets)
        torch.testing.assert_close(decomposed.module()(other), expected, rtol=1e-5, atol=1e-6)


def test_a_dynamic_batch_needs_two_clips():
    with pytest.raises(ValueError, match="at least 2 clips"):
        export_program(_TwoBlocks(), torch.randn(1, 6, 4, 5, 5))


def _registry_cases() -> list[tuple[str, dict]]:
    cases = []
    for name in models.list_models():
        if "resnext" in name:
            kwargs = {"cardinality": 2}  # narrow grouped convs (ResNeXt widths are fixed)
        else:
            kwargs = {"widths": (8, 8, 8, 8)}
        cases.append((name, kwargs))
    return cases


@pytest.mark.slow
@pytest.mark.parametrize(("name", "kwargs"), _registry_cases(), ids=lambda c: str(c))
def test_every_registry_model_exports_with_the_op_in_the_graph(name, kwargs, one_torch_thread):
    torch.manual_seed(0)
    model = models.build(name, 5, frames=4, size=32, **kwargs).eval()
    program = export_program(model, torch.randn(2, 3, 4, 32, 32))
    blocks = sum(isinstance(m, STCBlock) for m in model.modules())
    fused = stc_ext.ops.resolve_backend("auto", torch.device("cpu")) != "reference"
    assert _stc_nodes(program) == (blocks if fused else 0)
    x = torch.randn(3, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from inference_helpers import tiny_run

    pytest.importorskip("av", reason="PyAV is needed for the tiny training run")
    return tiny_run().checkpoint


@pytest.mark.slow
def test_pt2_round_trip(tiny_checkpoint, tmp_path, capsys, one_torch_thread):
    out = tmp_path / "model.pt2"
    assert cli.main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 STC op node(s) kept" in printed or KERNEL is None
    assert "max |difference| from the model 0.00e+00" in printed
    program = torch.export.load(str(out))
    assert _stc_nodes(program) == (4 if KERNEL else 0)
    assert program.module()(torch.randn(7, 3, 4, 32, 32)).shape == (7, 3)


@pytest.mark.slow
def test_onnx_from_a_checkpoint_matches_onnxruntime(
    tiny_checkpoint, tmp_path, capsys, one_torch_thread
):
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    out = tmp_path / "model.onnx"
    assert cli.main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "decomposed into standard ops" in printed
    error = float(printed.rsplit("max |difference| from the model ", 1)[1].split()[0])
    assert error < 1e-4
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert inp.name == "clips" and outp.name == "logits"
    assert not isinstance(inp.shape[0], int)  # a dynamic batch axis
    import onnx

    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert not any("stc" in op.lower() for op in ops)


@pytest.mark.slow
def test_onnx_of_an_stc_video_resnet(tmp_path, one_torch_thread):
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    torch.manual_seed(0)
    model = models.build("stc_r2plus1d_18", 4, frames=4, size=32, widths=(8, 8, 8, 8)).eval()
    for m in model.modules():  # random BN statistics: eval-mode BN is part of the graph
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    example = torch.randn(2, 3, 4, 32, 32)
    path = export_onnx(model, example, tmp_path / "r21d.onnx", layer="pool")
    error = check_onnx(path, model, torch.randn(5, 3, 4, 32, 32), layer="pool")
    assert error is not None and error < 1e-4


def test_export_errors(tmp_path, monkeypatch, capsys):
    ckpt = tmp_path / "w.pth"
    torch.save(models.build("resnet3d_10", 3, widths=(8, 8, 8, 8)).state_dict(), ckpt)
    with pytest.raises(ConfigError, match="out: cannot tell the format from m.bin"):
        export_checkpoint(ckpt, tmp_path / "m.bin")
    with pytest.raises(ConfigError, match="out: a onnx file must end in .onnx"):
        export_checkpoint(ckpt, tmp_path / "m.pt2", "onnx")
    with pytest.raises(ConfigError, match="format: must be one of"):
        export_checkpoint(ckpt, tmp_path / "m.pt2", "tflite")
    with pytest.raises(ConfigError, match="does not record its architecture"):
        export_checkpoint(ckpt, tmp_path / "m.pt2")
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if the extra were missing
    assert cli.main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 1
    assert "pip install 'stc_ext[onnx]'" in capsys.readouterr().err
    backbone = tmp_path / "backbone.pt"
    state = {k: v for k, v in torch.load(ckpt, weights_only=True).items() if "fc." not in k}
    torch.save({"model": state, "config": {"model": "resnet3d_10", "widths": [8] * 4}}, backbone)
    with pytest.raises(ConfigError, match="backbone without classifier"):
        export_checkpoint(backbone, tmp_path / "b.pt2")
