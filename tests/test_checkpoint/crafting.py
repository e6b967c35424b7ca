"""Checkpoint files written by hand: pickles, zip archives, comparisons."""
import io
import pickle
import struct
import sys
import zipfile
import zlib
from collections import OrderedDict

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

# ------------------------------------------------------------ opcodes
MARK, STOP, TUPLE, REDUCE, BUILD = b'(', b'.', b't', b'R', b'b'
EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE = b'}', b']', b')'
SETITEM, APPEND, APPENDS = b's', b'a', b'e'
NONE, TRUE, FALSE, NEWOBJ = b'N', b'\x88', b'\x89', b'\x81'


def proto(n: int = 2) -> bytes:
    return b'\x80' + bytes([n])


def global_(module: str, name: str) -> bytes:
    return b'c' + f'{module}\n{name}\n'.encode()


def text(value: str) -> bytes:
    data = value.encode('utf-8')
    return b'X' + struct.pack('<I', len(data)) + data


def binbytes(value: bytes) -> bytes:
    return b'B' + struct.pack('<I', len(value)) + value


def integer(value: int) -> bytes:
    data = value.to_bytes((value.bit_length() + 8) // 8, 'little',
                          signed=True)
    return b'\x8a' + bytes([len(data)]) + data  # LONG1


def tuple_(*items: bytes) -> bytes:
    return MARK + b''.join(items) + TUPLE


def call(module: str, name: str, *args: bytes) -> bytes:
    """``module.name(*args)`` as a pickle writes it."""
    return global_(module, name) + tuple_(*args) + REDUCE


def dtype(typestr: str, state: bytes) -> bytes:
    """A numpy dtype, rebuilt with ``state`` (a pickled tuple)."""
    return call('numpy', 'dtype', text(typestr), FALSE, TRUE) + state + BUILD


def f8_state() -> bytes:
    """The state numpy writes for ``float64``."""
    return tuple_(integer(3), text('<'), NONE, NONE, NONE, integer(-1),
                  integer(-1), integer(0))


def array(dtype_pickle: bytes, shape: tuple, data: bytes) -> bytes:
    """A numpy array as numpy pickles it: ``_reconstruct`` then state."""
    return (call('numpy.core.multiarray', '_reconstruct',
                 global_('numpy', 'ndarray'), tuple_(integer(0)),
                 binbytes(b'b')) +
            tuple_(integer(1), tuple_(*map(integer, shape)), dtype_pickle,
                   FALSE, binbytes(data)) + BUILD)


def body(obj, protocol: int = 2) -> bytes:
    """``obj`` pickled without its PROTO and STOP, to embed in another."""
    data = pickle.dumps(obj, protocol=protocol)
    assert data[:1] == b'\x80' and data[-1:] == STOP
    return data[2:-1]


def meta(value: bytes) -> bytes:
    """A whole pickle of ``{'meta': value}``."""
    return proto() + EMPTY_DICT + text('meta') + value + SETITEM + STOP


# ------------------------------------------------------------- tensors
class Storage:
    """Stands for a tensor storage: pickled as a persistent id."""

    def __init__(self, *pid):
        self.pid = pid


class Tensor:
    """Pickles as ``_rebuild_tensor_v2(storage, offset, size, stride)``."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


class _Pickler(pickle.Pickler):

    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, Storage) else None


def dumps_with_storages(obj, protocol: int = 2) -> bytes:
    """Pickle ``obj``; :class:`Storage` objects become persistent ids."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=protocol).dump(obj)
    return buffer.getvalue()


def legacy_file(path, obj, storages=b'') -> None:
    """A file in torch's legacy format around the pickle of ``obj``."""
    with open(path, 'wb') as f:
        for header in (torch.serialization.MAGIC_NUMBER,
                       torch.serialization.PROTOCOL_VERSION,
                       dict(protocol_version=1001, little_endian=True,
                            type_sizes=dict(short=2, int=4, long=4))):
            pickle.dump(header, f, protocol=2)
        f.write(dumps_with_storages(obj))
        f.write(storages)


# ----------------------------------------------------------------- zips
def save(obj, path, **kwargs) -> None:
    """``torch.save`` through a file object: the zip's folder is then
    always ``archive``, whatever the file is called."""
    with open(path, 'wb') as f:
        torch.save(obj, f, **kwargs)


def rezip(source, path, data_pkl: bytes = None, extra=(), drop=()) -> None:
    """Copy the zip checkpoint ``source`` to ``path``, replacing its
    ``data.pkl``, adding ``extra`` (name, bytes) members and leaving out
    the members whose name ends with one of ``drop``."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(path, 'w') as zout:
        for info in zin.infolist():
            if info.filename.endswith(tuple(drop)) and drop:
                continue
            data = zin.read(info)
            if data_pkl is not None and info.filename.endswith('/data.pkl'):
                data = data_pkl
            zout.writestr(info, data)
        for name, data in extra:
            zout.writestr(name, data)


def zip_with_pickle(tmp_path, name: str, data_pkl: bytes, **kwargs) -> str:
    """A zip checkpoint of torch's layout holding ``data_pkl``."""
    source = tmp_path / f'{name}.source'
    save({}, source)
    path = tmp_path / name
    rezip(source, path, data_pkl, **kwargs)
    return str(path)


def deflate_bomb(path, nbytes: int) -> None:
    """A zip checkpoint with one uint8 tensor of ``nbytes`` zeros, its
    storage record deflated to about a thousandth of that size.

    Written by hand: a deflate stream of zeros, flushed in full after each
    block, repeats itself, so it takes no time to make.
    """
    block = 1 << 24
    assert nbytes % block == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = compressor.compress(bytes(block)) + compressor.flush(
        zlib.Z_FULL_FLUSH)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    crc = 0
    zeros = bytes(block)
    for _ in range(nbytes // block):
        crc = zlib.crc32(zeros, crc)
    count = nbytes // block
    data_pkl = dumps_with_storages({
        'weight':
        Tensor(Storage('storage', torch.ByteStorage, '0', 'cpu', nbytes), 0,
               (nbytes, ), (1, ))
    })
    members = [('archive/data.pkl', [data_pkl], zlib.crc32(data_pkl),
                len(data_pkl), len(data_pkl), 0),
               ('archive/version', [b'3\n'], zlib.crc32(b'3\n'), 2, 2, 0),
               ('archive/data/0', [chunk] * count + [tail], crc,
                len(chunk) * count + len(tail), nbytes, 8)]
    with open(path, 'wb') as f:
        central = b''
        for name, chunks, crc, csize, usize, method in members:
            offset = f.tell()
            raw = name.encode()
            fields = struct.pack('<HHHHHIIIHH', 20, 0, method, 0, 0x21, crc,
                                 csize, usize, len(raw), 0)
            f.write(b'PK\x03\x04' + fields + raw)
            for part in chunks:
                f.write(part)
            central += (b'PK\x01\x02' + struct.pack('<H', 20) + fields +
                        struct.pack('<HHHII', 0, 0, 0, 0, offset) + raw)
        start = f.tell()
        f.write(central)
        f.write(b'PK\x05\x06' + struct.pack('<HHHHIIH', 0, 0, len(members),
                                            len(members), len(central),
                                            start, 0))


# --------------------------------------------------------- comparisons
def assert_same(got, want, where: str = 'checkpoint') -> None:
    """``got`` equals ``want`` in type, value, dtype and layout."""
    assert type(got) is type(want), (where, type(got), type(want))
    if isinstance(want, torch.Tensor):
        assert (got.dtype, got.shape, got.stride(), got.requires_grad) == \
            (want.dtype, want.shape, want.stride(), want.requires_grad), where
        assert torch.equal(got, want), where
    elif isinstance(want, np.ndarray):
        assert (got.dtype, got.shape, got.flags.c_contiguous,
                got.flags.f_contiguous, got.flags.writeable) == \
            (want.dtype, want.shape, want.flags.c_contiguous,
             want.flags.f_contiguous, want.flags.writeable), where
        assert np.array_equal(
            got, want, equal_nan=want.dtype.kind in 'fcmM'), where
    elif isinstance(want, np.generic):
        assert got.dtype == want.dtype, where
        assert np.array_equal(
            np.array(got), np.array(want),
            equal_nan=want.dtype.kind in 'fcmM'), where
    elif isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            assert_same(got[key], want[key], f'{where}[{key!r}]')
        if isinstance(want, OrderedDict):
            assert_same(vars(got), vars(want), f'{where}.__dict__')
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want)):
            assert_same(a, b, f'{where}[{i}]')
    elif isinstance(want, HistoryBuffer):
        assert_same(vars(got), vars(want), f'{where}.__dict__')
    else:
        assert isinstance(want, (
            str, bytes, bytearray, int, float, complex, set, frozenset,
            type(None), torch.device, torch.dtype, np.dtype)), (where, want)
        assert got == want, where


def run_isolated(code: str):
    """Run ``code`` in a fresh Python with the repository importable."""
    import os
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    return subprocess.run([sys.executable, '-c', code],
                          cwd=root,
                          capture_output=True,
                          text=True,
                          timeout=300)
