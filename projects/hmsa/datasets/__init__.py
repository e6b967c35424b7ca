"""Loading transforms that name the file they cannot use."""
from .transforms import (
    CheckedLoadAnnotations,
    CheckedLoadImageFromFile,
    DatasetError,
    use_checked_loaders,
)

__all__ = [
    'CheckedLoadAnnotations', 'CheckedLoadImageFromFile', 'DatasetError',
    'use_checked_loaders'
]
