"""Every scale and fusion rule of one checkpoint, evaluated and tabulated."""
from .checkpoint_evaluation import CheckpointEvaluation, build_test_dataloader
from .results_table import markdown_table, to_records, write_results
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
    'CheckpointEvaluation', 'build_test_dataloader', 'markdown_table',
    'to_records', 'write_results', 'RowResult', 'RowSpec',
    'as_multiscale_model_cfg', 'build_multiscale_model', 'describe_model',
    'evaluate_rows', 'predict_rows', 'row_specs'
]
