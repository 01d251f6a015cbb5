"""Fixtures for the STC op tests: the (backend, device) pairs to test, and poisoning."""

import os

import pytest
import torch

# Deterministic mode (used to poison outputs) makes cuBLAS, which the gate's matmuls use
# on GPU, demand a fixed workspace; it must be set before CUDA initialises.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import stc_ext  # noqa: E402  (after the environment set-up above)
from stc_ext.testing import poisoned_allocations  # noqa: E402


def kernel_backend_devices() -> list[tuple[str, str]]:
    """Every fused backend available here, with the device its tensors live on."""
    pairs = []
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for backend in stc_ext.available_backends(device):
            if backend != "reference":
                pairs.append((backend, device))
    return pairs


def pytest_generate_tests(metafunc):
    if "backend_device" in metafunc.fixturenames:
        pairs = kernel_backend_devices()
        metafunc.parametrize("backend_device", pairs, ids=[f"{b}-{d}" for b, d in pairs])


@pytest.fixture
def poisoned_outputs():
    """Every torch.empty inside the test is filled with NaN, so an output element a
    kernel forgets to write shows up as non-finite."""
    with poisoned_allocations():
        yield
