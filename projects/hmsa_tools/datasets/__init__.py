"""Checks of the data a config points to, and the demo dataset."""
from projects.hmsa.datasets import DatasetError

from .checks import (
    check_dataloader,
    check_split,
    cityscapes_converter_hint,
    leaf_datasets,
)

__all__ = [
    'DatasetError', 'check_dataloader', 'check_split',
    'cityscapes_converter_hint', 'leaf_datasets'
]
