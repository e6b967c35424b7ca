"""Dataset checks and loading transforms that name what is wrong."""
from .checks import (
                     DatasetError,
                     check_dataloader,
                     check_split,
                     cityscapes_converter_hint,
                     leaf_datasets,
)
from .transforms import (
                     CheckedLoadAnnotations,
                     CheckedLoadImageFromFile,
                     use_checked_loaders,
)

__all__ = [
    'DatasetError', 'check_dataloader', 'check_split',
    'cityscapes_converter_hint', 'leaf_datasets', 'CheckedLoadAnnotations',
    'CheckedLoadImageFromFile', 'use_checked_loaders'
]
