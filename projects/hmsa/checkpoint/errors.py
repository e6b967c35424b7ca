"""The two ways loading a checkpoint can fail, and how they are worded."""
import pickle


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint is refused: loading it could run code, crash the
    process or exhaust memory or time, or it holds a value this loader does
    not rebuild. Nothing of the file was run."""


class CorruptCheckpointError(ValueError):
    """A checkpoint file cannot be read: truncated, damaged or not a PyTorch
    checkpoint at all."""


class Refused(Exception):
    """Raised while reading a file: the file is refused for ``reason``.

    The loader turns it into :class:`UnsafeCheckpointError` with the file's
    name.
    """


class Unreadable(Exception):
    """Raised while reading a file: the file cannot be read (``reason``).

    The loader turns it into :class:`CorruptCheckpointError` with the file's
    name.
    """


def describe(value, limit: int = 80) -> str:
    """A short, safe description of a value read from a file.

    Only the type's name, and ``repr`` of plain strings, bytes and numbers,
    are ever formatted: formatting any other object a file produced could
    run into the very problems the loader guards against.
    """
    if isinstance(value, (str, bytes)) and type(value) in (str, bytes):
        text = repr(value[:limit])
        return text + ('...' if len(value) > limit else '')
    if type(value) in (int, float, bool) or value is None:
        text = repr(value)
        return text if len(text) <= limit else text[:limit] + '...'
    return f'a {type(value).__name__}'


def unsafe(filename: str, reason: str) -> UnsafeCheckpointError:
    """The error for a refused checkpoint."""
    return UnsafeCheckpointError(
        f'refusing to load checkpoint {filename}: {reason}. Nothing of the '
        'file was run; only load checkpoints from sources you trust.')


def corrupt(filename: str, reason: str) -> CorruptCheckpointError:
    """The error for a checkpoint that cannot be read."""
    return CorruptCheckpointError(
        f'cannot read checkpoint {filename}: {reason}')
