"""Checkpoints are data: torch's ``weights_only`` loading, plus the checks
and values it lacks (see ``docs/checkpoints.md``).

:func:`load_checkpoint_file` reads a checkpoint with
``torch.load(weights_only=True)``, after :mod:`.scan` checked the file;
the numpy and MMEngine values in MMEngine checkpoints are built by the
validating readers of :mod:`.values`, given to torch through
``torch.serialization.safe_globals``. Importing the package makes MMEngine's
own checkpoint loaders load this way (:mod:`.schemes`).
"""
from .schemes import (
                      CheckpointError,
                      CorruptCheckpointError,
                      UnsafeCheckpointError,
                      load_checkpoint_file,
                      load_stream,
                      model_zoo_url,
                      register,
)

register()

__all__ = [
    'CheckpointError', 'CorruptCheckpointError', 'UnsafeCheckpointError',
    'load_checkpoint_file', 'load_stream', 'model_zoo_url', 'register'
]
