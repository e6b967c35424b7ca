"""Test set-up: the plugin imported, one torch thread, shared fixtures."""
import os

import pytest
import torch
from mmengine.registry import DefaultScope
from mmseg.utils import register_all_modules

import projects.hmsa  # noqa: F401  (registers the plugin)
from projects.hmsa_tools.datasets.demo_data import make_demo_dataset

from .utils import HEIGHT, WIDTH

# Build with MMSeg's registries by default, as MMSeg's tools do.
register_all_modules(init_default_scope=True)

# One torch thread for the whole suite: the models are tiny, and on a loaded
# 2-core machine several threads contend and slow every test down by orders
# of magnitude. HMSA_TEST_THREADS changes it.
torch.set_num_threads(int(os.environ.get('HMSA_TEST_THREADS', '1')))


@pytest.fixture(autouse=True)
def mmseg_scope():
    """Every test starts in MMSeg's default scope, whatever an earlier test
    in the same process (a Runner, a registry call) left current."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory) -> str:
    """A Cityscapes-layout dataset of 4 train and 2 val 64x128 images."""
    root = str(tmp_path_factory.mktemp('tiny') / 'cityscapes')
    make_demo_dataset(
        root, num_train=4, num_val=2, height=HEIGHT, width=WIDTH,
        verbose=False)
    return root
