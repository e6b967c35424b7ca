"""Read a checkpoint file: its container first, then its pickle, in bounds.

``torch.load`` does the parts that are torch's own (the zip reader, storage
allocation and byte order, ``map_location``); every pickle in the file is
read by :class:`.unpickler.SafeUnpickler` instead of Python's unpickler.
Before torch reads anything, the container is checked here:

- a zip checkpoint (``torch.save`` since PyTorch 1.6) may hold only the
  records ``torch.save`` writes, under one top-level folder, with plain
  names (no ``..``, absolute paths, backslashes, NUL bytes or duplicates),
  stored or deflated, not encrypted; a TorchScript archive (it holds code)
  is refused; deflated records count, decompressed, against the budget;
  every tensor storage the pickle references must be a record of exactly
  the size its tensor type needs;
- a legacy file (``_use_new_zipfile_serialization=False``) may claim no
  more storage bytes than the file holds (torch allocates them before
  reading them);
- PyTorch's pre-0.4 tar format and anything else are refused.
"""
import io
import re
import zipfile
from typing import Any, Callable, Optional, Union

import torch
from torch.serialization import StorageType

from .errors import Refused, Unreadable, corrupt, describe, unsafe
from .limits import DEFAULT_LIMITS, Budget, Limits
from .unpickler import pickle_module

MapLocation = Optional[Union[str, torch.device, dict, Callable]]

_ZIP_MAGIC = b'PK\x03\x04'
# Records torch.save writes besides data.pkl and data/<key>.
_BOOKKEEPING = frozenset({
    'version', '.data/version', '.data/serialization_id', 'byteorder',
    '.format_version', '.storage_alignment'
})
_STORAGE_KEY_RE = re.compile(r'[0-9A-Za-z_]{1,64}$')


class _Stream(io.BufferedReader):
    """A file that torch reads through its Python methods.

    Without a ``fileno`` torch never tries its pre-0.4 tar reader (which
    extracts members to disk), and the zip reader reads the very file that
    was checked, not the path again.
    """

    def fileno(self) -> int:
        raise io.UnsupportedOperation('fileno')


def _storage_reference(pid: Any, length: int) -> tuple:
    """The fields of a storage reference, with their types checked."""
    if type(pid) is not tuple or len(pid) != length:
        raise Refused(f'it references {describe(pid)} outside the pickle, '
                      'not a tensor storage')
    kind, storage_type, key, location = pid[:4]
    if kind not in ('storage', b'storage'):
        raise Refused(f'it references a {describe(kind)} outside the pickle'
                      ', not a tensor storage')
    if type(storage_type) is not StorageType:
        raise Refused(f'a storage has the type {describe(storage_type)}')
    if type(key) is not str or type(location) not in (str, bytes) \
            or len(location) > 64:
        raise Refused('a storage reference has a malformed key or device')
    numel = pid[4]
    if type(numel) is not int or numel < 0:
        raise Refused(f'a storage has {describe(numel)} elements')
    return storage_type.dtype, key, numel


class _ZipCheckpoint:
    """A zip checkpoint whose records were checked before torch reads any.

    Args:
        stream: The file.
        budget (Budget): Charged for the pickle and deflated records.
    """

    def __init__(self, stream, budget: Budget):
        try:
            with zipfile.ZipFile(stream) as archive:
                infos = archive.infolist()
        except (zipfile.BadZipFile, EOFError, ValueError) as exc:
            raise Unreadable(f'it is not a readable zip archive ({exc})')
        if not infos or '/' not in infos[0].filename:
            raise Unreadable('its zip archive has no top-level folder')
        self._prefix = infos[0].filename.split('/', 1)[0]
        self.storage_sizes = {}
        has_pickle = False
        seen = set()
        for info in infos:
            record = self._check_name(info, seen)
            self._check_compression(info, budget)
            if record.startswith('data/') and \
                    _STORAGE_KEY_RE.match(record[5:]):
                self.storage_sizes[record[5:]] = info.file_size
            elif record in _BOOKKEEPING:
                if info.file_size > budget.limits.small_record_bytes:
                    raise Refused(f'its record {record} has '
                                  f'{info.file_size} bytes')
            elif record == 'data.pkl':
                has_pickle = True
                budget.charge(info.file_size)
            elif record == 'constants.pkl' or record.startswith('code/'):
                raise Refused('it is a TorchScript archive, which holds '
                              'code, not a checkpoint')
            else:
                raise Refused(f'it holds the zip member '
                              f'{describe(info.filename)}, which torch.save '
                              'does not write')
        if not has_pickle:
            raise Unreadable('its zip archive has no data.pkl')

    def _check_name(self, info: zipfile.ZipInfo, seen: set) -> str:
        name = info.filename
        parts = name.split('/')
        if info.orig_filename != name or '\\' in name or \
                parts[0] != self._prefix or \
                any(part in ('', '.', '..') for part in parts):
            raise Refused(f'it has a zip member named '
                          f'{describe(info.orig_filename)}: not a plain name '
                          f'under {describe(self._prefix)}/')
        if name in seen:
            raise Refused(f'it has two zip members named {describe(name)}')
        seen.add(name)
        return name[len(self._prefix) + 1:]

    @staticmethod
    def _check_compression(info: zipfile.ZipInfo, budget: Budget) -> None:
        if info.flag_bits & 0x1:
            raise Refused(f'its zip member {describe(info.filename)} is '
                          'encrypted')
        if info.compress_type == zipfile.ZIP_DEFLATED:
            # Decompressed in memory: it counts against the budget.
            budget.charge(info.file_size)
        elif info.compress_type != zipfile.ZIP_STORED:
            raise Refused(f'its zip member {describe(info.filename)} is '
                          f'compressed with method {info.compress_type}')
        elif info.compress_size != info.file_size:
            raise Unreadable(f'its zip member {describe(info.filename)} '
                             'has inconsistent sizes')

    def check_persistent_id(self, pid: Any) -> None:
        """A storage reference must name a record of exactly its size."""
        dtype, key, numel = _storage_reference(pid, 5)
        if key not in self.storage_sizes:
            raise Unreadable(f'a tensor refers to the storage {describe(key)}'
                             ', which the archive does not hold')
        nbytes = numel * dtype.itemsize
        if nbytes != self.storage_sizes[key]:
            raise Unreadable(f'the storage {key} holds '
                             f'{self.storage_sizes[key]} bytes, its tensors '
                             f'expect {nbytes}')


class _LegacyCheckpoint:
    """A checkpoint in torch's legacy format (pickles, then raw storages).

    Torch allocates each storage when the pickle first references it, then
    fills it from the rest of the file: together they may not claim more
    bytes than the file holds.

    Args:
        file_size (int): Size of the file in bytes.
    """

    def __init__(self, file_size: int):
        self._file_size = file_size
        self._left = file_size
        self._roots = {}

    def check_persistent_id(self, pid: Any) -> None:
        dtype, key, numel = _storage_reference(pid, 6)
        view = pid[5]
        if key not in self._roots:
            # each storage is stored as an 8-byte size, then its bytes
            self._left -= 8 + numel * dtype.itemsize
            if self._left < 0:
                raise Unreadable(
                    'its tensors claim more bytes than the file holds '
                    f'({self._file_size})')
            self._roots[key] = numel * dtype.itemsize
        if view is not None:
            if type(view) is not tuple or len(view) != 3 or \
                    type(view[0]) is not str or \
                    any(type(v) is not int or v < 0 for v in view[1:]):
                raise Refused('a storage view is malformed')
            if (view[1] + view[2]) * dtype.itemsize > self._roots[key]:
                raise Unreadable('a storage view reaches past its storage')


def _printable(text: str, limit: int = 300) -> str:
    text = text[:limit]
    return ''.join(c if c.isprintable() else '?' for c in text)


def load_stream(stream,
                name: str,
                map_location: MapLocation = None,
                limits: Limits = DEFAULT_LIMITS) -> Any:
    """Load a checkpoint from a seekable binary file.

    Args:
        stream: The file, positioned anywhere (it is read from its start).
        name (str): What error messages call the file.
        map_location: As in :func:`torch.load`.
        limits (Limits): Bounds on memory and key collisions.

    Returns:
        The unpickled checkpoint, with its stored config text as in the
        file (see :mod:`.stored_config`).

    Raises:
        UnsafeCheckpointError: The file is refused.
        CorruptCheckpointError: The file cannot be read.
    """
    try:
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
        budget = Budget(limits, size)
        head = stream.read(512)
        stream.seek(0)
        if head[:4] == _ZIP_MAGIC:
            container = _ZipCheckpoint(stream, budget)
            stream.seek(0)
        elif head[:1] == b'\x80':
            container = _LegacyCheckpoint(size)
        elif head[257:262] == b'ustar':
            raise Unreadable('it is in the tar format of PyTorch < 0.4, '
                             'which this loader does not read; re-save it '
                             'with a current PyTorch')
        else:
            raise Unreadable('it is not a PyTorch checkpoint (it starts with '
                             f'{describe(head[:8])})')
        module = pickle_module(budget, container.check_persistent_id)
        return torch.load(
            stream,
            map_location=map_location,
            pickle_module=module,
            weights_only=False,  # our pickle_module is the safe reader
            mmap=False)
    except Refused as exc:
        raise unsafe(name, str(exc)) from None
    except Unreadable as exc:
        raise corrupt(name, str(exc)) from None
    except MemoryError:
        raise corrupt(name, 'the machine ran out of memory reading it') \
            from None
    except Exception as exc:  # torch's own checks and everything else
        raise corrupt(name, f'{type(exc).__name__}: '
                      f'{_printable(str(exc))}') from None


def load_path(path: str,
              name: str,
              map_location: MapLocation = None,
              limits: Limits = DEFAULT_LIMITS) -> Any:
    """:func:`load_stream` on a local file; ``name`` names it in errors."""
    with _Stream(io.FileIO(path, 'rb')) as stream:
        return load_stream(stream, name, map_location, limits)
