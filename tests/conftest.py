"""Test set-up: the repository root on sys.path and the plugin imported."""
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmseg.utils import register_all_modules  # noqa: E402

import projects.hmsa  # noqa: E402,F401  (registers the plugin)

# Build with MMSeg's registries by default, as MMSeg's tools do.
register_all_modules(init_default_scope=True)

# One torch thread: the models are tiny, and on a loaded 2-core machine
# several threads contend and slow every test down by orders of magnitude.
torch.set_num_threads(int(os.environ.get('HMSA_TEST_THREADS', '1')))


@pytest.fixture
def rng():
    import torch
    return torch.Generator().manual_seed(0)
