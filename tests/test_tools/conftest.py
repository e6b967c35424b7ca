"""Fixtures of the tool tests."""
import pytest

from .helpers import HEIGHT, WIDTH


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory) -> str:
    """A Cityscapes-layout dataset of 4 train and 2 val 64x128 images."""
    from make_demo_data import make_demo_dataset
    root = str(tmp_path_factory.mktemp('tiny') / 'cityscapes')
    make_demo_dataset(
        root, num_train=4, num_val=2, height=HEIGHT, width=WIDTH,
        verbose=False)
    return root
