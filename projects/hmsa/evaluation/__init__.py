"""Evaluation of the HMSA plugin: category metric and per-scale tables."""
from .category_metric import (
    CITYSCAPES_CATEGORIES,
    CityscapesCategoryMetric,
    confusion_matrix,
    merge_confusion,
)
from .scale_evaluation import (
    RowResult,
    RowSpec,
    as_multiscale_model_cfg,
    build_multiscale_model,
    describe_model,
    evaluate_rows,
    predict_rows,
    row_specs,
)

__all__ = [
    'CITYSCAPES_CATEGORIES', 'CityscapesCategoryMetric', 'confusion_matrix',
    'merge_confusion', 'RowResult', 'RowSpec', 'as_multiscale_model_cfg',
    'build_multiscale_model',
    'describe_model', 'evaluate_rows', 'predict_rows', 'row_specs'
]
