"""STCBlock: parameters, backend choice and input validation."""

import warnings

import pytest
import torch

import stc_ext
from stc_ext import STCBlock
from stc_ext.ops import dispatch


def test_state_dict_keys_and_shapes():
    block = STCBlock(channels=256, frames=8, reduction=4)
    shapes = {k: tuple(v.shape) for k, v in block.state_dict().items()}
    assert shapes == {
        "tcb.fc1.weight": (64, 256),
        "tcb.fc1.bias": (64,),
        "tcb.fc2.weight": (256, 64),
        "tcb.fc2.bias": (256,),
        "scb.fc1.weight": (512, 2048),
        "scb.fc1.bias": (512,),
        "scb.fc2.weight": (256, 512),
        "scb.fc2.bias": (256,),
    }
    assert set(STCBlock(16, 2, branches="tcb").state_dict()) == {
        "tcb.fc1.weight",
        "tcb.fc1.bias",
        "tcb.fc2.weight",
        "tcb.fc2.bias",
    }
    assert set(STCBlock(16, 2, branches="scb").state_dict()) == {
        "scb.fc1.weight",
        "scb.fc1.bias",
        "scb.fc2.weight",
        "scb.fc2.bias",
    }


def test_output_is_the_average_of_the_branch_rescalings():
    """stc(x) = (x*g_tcb + x*g_scb)/2 with each branch computed by its own block."""
    torch.manual_seed(0)
    both = STCBlock(8, 3, backend="reference").double()
    tcb = STCBlock(8, 3, branches="tcb", backend="reference").double()
    scb = STCBlock(8, 3, branches="scb", backend="reference").double()
    tcb.tcb.load_state_dict(both.tcb.state_dict())
    scb.scb.load_state_dict(both.scb.state_dict())
    x = torch.randn(2, 8, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(both(x), (tcb(x) + scb(x)) / 2)
    identity = torch.randn_like(x)
    torch.testing.assert_close(both(x, identity), torch.relu(both(x) + identity))


@pytest.mark.parametrize("backend", stc_ext.available_backends("cpu"))
def test_scb_flattens_channel_major(backend):
    """SCB's input feature c*T + t is the spatial mean of channel c at frame t: wire
    output channel j to one chosen feature and read the gate back from y / x."""
    c, t = 3, 2
    block = STCBlock(c, t, branches="scb", reduction=1, backend=backend).double()
    chosen = {0: (2, 1), 1: (0, 1), 2: (1, 0)}  # output channel -> (channel, frame)
    with torch.no_grad():
        block.scb.fc1.weight.copy_(torch.eye(c * t))
        block.scb.fc1.bias.zero_()
        block.scb.fc2.weight.zero_()
        block.scb.fc2.bias.zero_()
        for j, (ci, ti) in chosen.items():
            block.scb.fc2.weight[j, ci * t + ti] = 1.0
    x = torch.rand(1, c, t, 4, 4, dtype=torch.float64) + 0.5
    gate = (block(x) / x)[0, :, 0, 0, 0]
    for j, (ci, ti) in chosen.items():
        torch.testing.assert_close(gate[j], torch.sigmoid(x[0, ci, ti].mean()))


def test_available_backends_here():
    names = stc_ext.available_backends()
    assert names[0] == "reference"
    assert set(names) <= {"reference", "cpu", "cuda", "triton"}


def test_auto_picks_the_cpu_kernel_when_built():
    if "cpu" not in stc_ext.available_backends("cpu"):
        pytest.skip("the C++ extension is not built")
    assert dispatch.resolve_backend("auto", torch.device("cpu")) == "cpu"


def test_auto_falls_back_to_reference_with_one_warning(monkeypatch):
    monkeypatch.setattr(dispatch, "_REGISTRY", {})
    monkeypatch.setattr(dispatch, "_fallback_warned", set())
    block = STCBlock(4, 2)
    x = torch.randn(1, 4, 2, 3, 3)
    with pytest.warns(RuntimeWarning, match="reference"):
        y = block(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        block(x)  # warned once only
    torch.testing.assert_close(y, stc_ext.stc_reference(x, block.params()))


def test_explicit_backend_that_cannot_run_is_an_error():
    block = STCBlock(4, 2, backend="cuda")
    with pytest.raises(ValueError, match="backend 'cuda' cannot run on cpu tensors"):
        block(torch.randn(1, 4, 2, 3, 3))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(channels=0, frames=2), "channels must be a positive int"),
        (dict(channels=4, frames=2, reduction=0), "reduction must be a positive int"),
        (dict(channels=4, frames=2, branches="both"), "branches must be one of"),
        (dict(channels=4, frames=2, backend="gpu"), "backend must be one of"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        STCBlock(**kwargs)


GOOD = (2, 8, 4, 5, 5)


@pytest.mark.parametrize(
    "x, identity, error, message",
    [
        (
            torch.randn(2, 8, 4, 5),
            None,
            ValueError,
            r"STCBlock: x must be 5-D \(N, C, T, H, W\), got shape \(2, 8, 4, 5\)",
        ),
        (torch.randn(0, 8, 4, 5, 5), None, ValueError, "x must not be empty"),
        (torch.randn(2, 6, 4, 5, 5), None, ValueError, "x must have 8 channels"),
        (torch.randn(2, 8, 3, 5, 5), None, ValueError, "T\\*C = 32"),
        (torch.ones(GOOD, dtype=torch.int64), None, ValueError, "x must be float16"),
        (torch.randn(GOOD), torch.randn(2, 8, 4, 5, 4), ValueError, "identity must have x's shape"),
        (
            torch.randn(GOOD),
            torch.randn(GOOD, dtype=torch.float64),
            ValueError,
            "identity must have x's dtype",
        ),
        (
            torch.randn(GOOD),
            torch.randn(GOOD, device="meta"),
            ValueError,
            "identity must be on x's device",
        ),
        ([1.0], None, TypeError, "x must be a torch.Tensor"),
    ],
)
@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_bad_inputs(x, identity, error, message, backend):
    block = STCBlock(8, 4, backend=backend)
    with pytest.raises(error, match=message):
        block(x, identity)


def test_frames_mismatch_names_frames_for_scb_only_block():
    block = STCBlock(8, 4, branches="scb")
    with pytest.raises(ValueError, match=r"T = 4 frames \(dim 2\)"):
        block(torch.randn(1, 8, 2, 3, 3))


def test_weights_on_another_device_are_an_error():
    block = STCBlock(8, 4).to("meta")
    with pytest.raises(ValueError, match="tcb.fc1.weight must be on x's device"):
        block(torch.randn(GOOD))


@pytest.mark.skipif("cpu" not in stc_ext.available_backends("cpu"), reason="extension not built")
def test_kernel_ops_check_their_arguments():
    x = torch.randn(GOOD)
    with pytest.raises(RuntimeError, match="g must have shape"):
        torch.ops.stc_ext.rescale(x, torch.rand(2, 7), None)
    with pytest.raises(RuntimeError, match="g must have dtype Float for BFloat16 inputs"):
        torch.ops.stc_ext.rescale(x.bfloat16(), torch.rand(2, 8, dtype=torch.bfloat16), None)
    with pytest.raises(RuntimeError, match="x must be 5-D"):
        torch.ops.stc_ext.pool(torch.randn(2, 8, 4))
    with pytest.raises(RuntimeError, match="identity must have shape"):
        torch.ops.stc_ext.rescale(x, torch.rand(2, 8), torch.randn(2, 8, 4, 5, 4))
