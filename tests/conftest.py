"""Test set-up: the repository root on sys.path and the plugin imported."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmseg.utils import register_all_modules  # noqa: E402

import projects.hmsa  # noqa: E402,F401  (registers the plugin)

# Build with MMSeg's registries by default, as MMSeg's tools do.
register_all_modules(init_default_scope=True)


@pytest.fixture
def rng():
    import torch
    return torch.Generator().manual_seed(0)
