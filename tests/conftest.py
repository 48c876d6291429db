"""pytest wiring: fixtures from tests_support, GPU tests skipped without a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests_support import git_commit, make_project, run, tiny_params, tiny_params_file  # noqa: F401


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def built_project(tmp_path_factory) -> Path:
    """A tiny project after one full `dvc repro`, committed. Tests must not change its files."""
    root = make_project(tmp_path_factory.mktemp("built"))
    run(["dvc", "repro"], root)
    git_commit(root, "repro")
    return root
