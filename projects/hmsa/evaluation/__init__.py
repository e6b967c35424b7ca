"""The Cityscapes category metric (flat, human, vehicle, ...)."""
from .category_metric import (
    CITYSCAPES_CATEGORIES,
    CityscapesCategoryMetric,
    confusion_matrix,
    merge_confusion,
)

__all__ = [
    'CITYSCAPES_CATEGORIES', 'CityscapesCategoryMetric', 'confusion_matrix',
    'merge_confusion'
]
