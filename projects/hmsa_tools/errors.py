"""The errors the tools report in one line, without a traceback."""
import sys

from projects.hmsa.datasets import DatasetError


class ToolError(Exception):
    """A problem the user can fix; the tools print it without a traceback."""


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` to stderr and exit with ``code``."""
    print(f'error: {message}', file=sys.stderr, flush=True)
    raise SystemExit(code)


def is_dataset_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a :class:`DatasetError`, also one that a data
    loader worker raised (PyTorch re-raises it wrapped)."""
    text = str(exc)
    return isinstance(exc, DatasetError) or (
        'Original Traceback' in text
        and f'{DatasetError.__name__}: ' in text)


def dataset_error_message(exc: BaseException) -> str:
    """The message of a :class:`DatasetError`, also when a data loader
    worker raised it (PyTorch then wraps the worker's traceback)."""
    text = str(exc).strip()
    marker = f'{DatasetError.__name__}: '
    if 'Original Traceback' in text and marker in text:
        text = text[text.rindex(marker) + len(marker):]
    return text
