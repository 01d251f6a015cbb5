"""Fixtures for the recipe tests: python/ importable, one torch thread, tiny data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[2] / "python"


@pytest.fixture(scope="session", autouse=True)
def _recipes_importable():
    sys.path.insert(0, str(RECIPES))
    yield
    sys.path.remove(str(RECIPES))


@pytest.fixture(scope="session")
def recipe_data(tmp_path_factory: pytest.TempPathFactory, one_torch_thread) -> dict[str, Path]:
    """make_recipe_data's tiny datasets (UCF101, HMDB51 and Kinetics layouts) and teachers."""
    pytest.importorskip("av", reason="PyAV is needed to write and decode the videos")
    from recipe_helpers import make_recipe_data

    return make_recipe_data(tmp_path_factory.mktemp("recipe_data"))


@pytest.fixture
def in_process(monkeypatch):
    """The recipes' commands run in this process (recipe_helpers.run_in_process)."""
    import recipe_common
    from recipe_helpers import run_in_process

    monkeypatch.setattr(recipe_common, "run_command", run_in_process)
