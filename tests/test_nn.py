"""stc_ext/nn.py: STCBlock's parameters, its branches and its constructor's checks."""

import pytest
import torch

import stc_ext
from stc_ext import STCBlock
from stc_ext.nn import BRANCHES, BranchMLP


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


def test_branch_modules_hold_the_weights_the_op_takes():
    block = STCBlock(8, 3, reduction=2)
    assert isinstance(block.tcb, BranchMLP) and isinstance(block.scb, BranchMLP)
    params = block.params()
    tcb, scb = block.tcb, block.scb
    assert params.tcb == (tcb.fc1.weight, tcb.fc1.bias, tcb.fc2.weight, tcb.fc2.bias)
    assert params.scb == (scb.fc1.weight, scb.fc1.bias, scb.fc2.weight, scb.fc2.bias)
    assert STCBlock(8, 3, branches="tcb").params().scb is None
    assert STCBlock(8, 3, branches="scb").params().tcb is None


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


@pytest.mark.parametrize("branches", BRANCHES)
def test_every_branch_choice_builds(branches):
    assert STCBlock(4, 2, branches=branches).branches == branches


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(channels=0, frames=2), "channels must be a positive int"),
        # bool is an int subclass: STCBlock(True, 2) must not build a 1-channel block.
        (dict(channels=True, frames=2), "STCBlock: channels must be a positive int, got True"),
        (dict(channels=4, frames=2.0), "STCBlock: frames must be a positive int, got 2.0"),
        (dict(channels=4, frames=2, reduction=0), "reduction must be a positive int"),
        (dict(channels=4, frames=2, branches="both"), "branches must be one of"),
        (dict(channels=4, frames=2, backend="gpu"), "backend must be one of"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        STCBlock(**kwargs)
