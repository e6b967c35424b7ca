"""Checkpoints are data: load them without running, crashing or flooding.

A checkpoint is untrusted input (model zoos, papers, colleagues). Importing
this package makes MMEngine's ``CheckpointLoader`` read every checkpoint,
whatever its prefix, with a pickle reader of our own that rebuilds only
tensors, plain Python data, numpy numbers, strings, datetimes and arrays,
and MMEngine's ``HistoryBuffer``, each by a validating constructor, within
bounds on memory and time; and it keeps the config text MMEngine stores in
checkpoints from being run unless the user opts in. So ``load_from``,
``resume``, ``init_cfg=dict(type='Pretrained')``, ``init_model``,
``MMSegInferencer`` and the tools are covered once a config's
``custom_imports`` (or the user) imports ``projects.hmsa``.
"""
from .errors import CorruptCheckpointError, UnsafeCheckpointError
from .limits import DEFAULT_LIMITS, Limits
from .schemes import load_checkpoint_file, register
from .stored_config import TRUST_ENV, WITHHELD_CONFIG

register()

__all__ = [
    'CorruptCheckpointError', 'UnsafeCheckpointError', 'DEFAULT_LIMITS',
    'Limits', 'load_checkpoint_file', 'TRUST_ENV', 'WITHHELD_CONFIG'
]
