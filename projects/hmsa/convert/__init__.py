"""Converters of other projects' checkpoints into this project's models."""
from .nvidia import (
    ARCHS,
    ConversionError,
    ConversionReport,
    convert_checkpoint,
    convert_state_dict,
    target_state_dict,
)

__all__ = [
    'ARCHS', 'ConversionError', 'ConversionReport', 'convert_checkpoint',
    'convert_state_dict', 'target_state_dict'
]
