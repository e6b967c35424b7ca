"""Load checkpoints with PyTorch's safe unpickler.

PyTorch >= 2.6 unpickles with ``weights_only=True`` by default; MMEngine
0.10.7 does not say otherwise, so the checkpoints MMEngine itself writes
(they carry numpy scalars and the message hub's ``HistoryBuffer``) fail to
load, and ``--resume`` or testing a trained checkpoint break. Turning the
safe unpickler off would let a checkpoint run arbitrary code. Instead,
importing this module makes MMEngine's loader for local files use the safe
unpickler with exactly the extra types MMEngine's checkpoints need, and
turns a refusal into an error that names the file and the offending global.
"""
import os.path as osp
import pickle
import re
from typing import Any, Callable, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint asks the unpickler for something that could run code."""


class CorruptCheckpointError(ValueError):
    """A checkpoint file cannot be read as a PyTorch checkpoint."""


def _numpy_core():
    # numpy 2 moved numpy.core to numpy._core; pickles name either.
    try:
        from numpy._core import multiarray  # type: ignore[attr-defined]
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return multiarray


# The only attribute look-ups MMEngine's checkpoints make while being
# unpickled: the message hub's HistoryBuffer statistics methods (pickled as
# ``getattr(HistoryBuffer, 'min')`` and so on).
_HISTORY_STATISTICS = frozenset({'min', 'max', 'mean', 'current'})


_NUMERIC_DTYPES = ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8',
                   'uint16', 'uint32', 'uint64', 'float16', 'float32',
                   'float64', 'complex64', 'complex128')


def _restricted_getattr(obj: Any, name: str) -> Any:
    """``getattr`` limited to the look-ups MMEngine's checkpoints make."""
    allowed = _HISTORY_STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is not HistoryBuffer or name not in allowed:
        owner = obj.__name__ if isinstance(obj, type) else type(obj).__name__
        raise UnsafeCheckpointError(
            f'it calls getattr({owner}, {name!r}), a look-up MMEngine '
            'checkpoints never make')
    return getattr(obj, name)


def safe_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    """The globals MMEngine checkpoints need beyond PyTorch's defaults.

    Seen with ``pickletools`` in checkpoints MMEngine writes: numpy scalars,
    arrays and dtypes (under numpy 1's and numpy 2's module names),
    MMEngine's ``HistoryBuffer`` and ``getattr`` on it. ``OrderedDict`` and
    ``_codecs.encode`` are among PyTorch's own defaults.
    """
    multiarray = _numpy_core()
    names: List[Union[Callable, Tuple[Callable, str]]] = []
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        names.append((multiarray.scalar, f'{mod}.scalar'))
        names.append((multiarray._reconstruct, f'{mod}._reconstruct'))
    names += [np.ndarray, np.dtype, HistoryBuffer]
    # A dtype is rebuilt through its class (numpy.dtypes.Float64DType, ...):
    # allow those of the plain numeric types only.
    names += sorted({type(np.dtype(t)) for t in _NUMERIC_DTYPES}, key=str)
    names.append((_restricted_getattr, 'builtins.getattr'))
    return names


_GLOBAL_RE = re.compile(r'GLOBAL ([\w.]+)')
_BUILD_RE = re.compile(r"but got <class '([\w.]+)'>")


def load_checkpoint_file(filename: str,
                         map_location: Optional[Union[str, Callable]] = None
                         ) -> Any:
    """Load a local checkpoint with the safe unpickler.

    Args:
        filename (str): Path of the checkpoint.
        map_location (str | callable, optional): As in :func:`torch.load`.

    Returns:
        The unpickled checkpoint (usually a dict).

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: The file references a global that could run
            code when unpickled; nothing of it is executed.
        CorruptCheckpointError: The file is not a readable checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    try:
        with torch.serialization.safe_globals(safe_globals()):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {filename}: {exc}; loading it '
            'could run code') from None
    except pickle.UnpicklingError as exc:
        if not ('GLOBAL' in str(exc) or 'Can only build' in str(exc)):
            raise CorruptCheckpointError(
                f'cannot read checkpoint {filename}: it is corrupt, '
                f'truncated or not a PyTorch checkpoint ({exc})') from None
        found = _GLOBAL_RE.search(str(exc)) or _BUILD_RE.search(str(exc))
        what = found.group(1) if found else 'an object it does not know'
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {filename}: it asks the unpickler '
            f'for {what}, which is not a tensor, number or part of an '
            'MMEngine checkpoint, and loading it could run code. Only load '
            'checkpoints from sources you trust; this loader never runs '
            'code from a file.') from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CorruptCheckpointError(
            f'cannot read checkpoint {filename}: it is corrupt, truncated or '
            f'not a PyTorch checkpoint ({type(exc).__name__}: {exc})'
        ) from None


# Replace MMEngine's loader for local paths (prefix '') with the safe one.
CheckpointLoader.register_scheme(
    prefixes='', loader=load_checkpoint_file, force=True)
