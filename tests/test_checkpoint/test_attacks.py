"""Crafted checkpoints are refused by the check made for them, naming the
file, without running code, crashing or exhausting memory or time."""
import io
import os
import random
import tarfile
import time
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer

from projects.hmsa.checkpoint import (
    CorruptCheckpointError,
    Limits,
    UnsafeCheckpointError,
    load_checkpoint_file,
)
from tests.test_checkpoint import crafting as c


def _refused(path, match, limits=None):
    kwargs = {} if limits is None else dict(limits=limits)
    name = os.path.basename(path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint_file(str(path), **kwargs)
    assert name in str(info.value)
    assert match in str(info.value), str(info.value)
    return str(info.value)


def _write(tmp_path, name, data: bytes):
    """A zip checkpoint whose data.pkl is ``data``."""
    return c.zip_with_pickle(tmp_path, name, data)


# --------------------------------------------------- code through reduce
class _RunsCode:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


@pytest.mark.parametrize('zipped', [True, False], ids=['zip', 'legacy'])
def test_code_through_reduce_is_refused(tmp_path, zipped):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _RunsCode(marker)}, path,
               _use_new_zipfile_serialization=zipped)
    _refused(path, "it asks the unpickler for 'posix.system'")
    assert not marker.exists()


def test_a_whole_module_is_refused_naming_its_class(tmp_path):
    path = tmp_path / 'module.pth'
    torch.save(nn.Linear(2, 2), path)
    _refused(path, 'torch.nn.modules.linear.Linear')


def test_opcodes_checkpoints_do_not_need_are_refused(tmp_path):
    # INST builds an object from a module and name on its own line: the
    # opcode is refused before the name is read.
    data = c.proto() + c.MARK + c.text('id') + b'ios\nsystem\n' + c.STOP
    _refused(_write(tmp_path, 'inst.pth', data), 'pickle opcode INST')


# ------------------------------------------------------- getattr escapes
class _Getattr:

    def __init__(self, owner, name):
        self.args = (owner, name)

    def __reduce__(self):
        return getattr, self.args


@pytest.mark.parametrize('owner,name', [
    (HistoryBuffer, 'register_statistics'),
    (HistoryBuffer, '_statistics_methods'),
    (HistoryBuffer, '__init__'),
    (np.ndarray, 'tofile'),
])
def test_getattr_escapes_are_refused_by_the_restricted_getattr(
        tmp_path, owner, name):
    # builtins.getattr and the owner both resolve: the restricted getattr
    # itself refuses the look-up.
    path = tmp_path / 'getattr.pth'
    torch.save({'meta': _Getattr(owner, name)}, path)
    _refused(path, f'getattr({owner.__name__}, {name!r}), a look-up '
             'MMEngine checkpoints never make')


# ------------------------------------------------ numpy and dtype state
def _dtype_state(endian, subarray=c.NONE, elsize=-1, alignment=-1, flags=0):
    return c.tuple_(c.integer(3), c.text(endian), subarray, c.NONE, c.NONE,
                    c.integer(elsize), c.integer(alignment), c.integer(flags))


# An object dtype (flag 1: holds references) whose data numpy copies from
# the file: under the full unpickler, numpy reads b'AAAAAAAA' as an object
# pointer and the process dies of SIGSEGV.
_OBJECT = c.dtype('O8', _dtype_state('|', flags=1))
_MEMORY_PAYLOADS = {
    'object_array.pth':
    (c.array(_OBJECT, (1, ), b'A' * 8), "numpy dtype 'O8'"),
    'object_scalar.pth': (c.call('numpy.core.multiarray', 'scalar', _OBJECT,
                                 c.binbytes(b'A' * 8)), "numpy dtype 'O8'"),
    'object_subarray.pth': (c.array(
        c.dtype('f8', _dtype_state('<', c.tuple_(_OBJECT, c.tuple_(
            c.integer(1))), 8, 8, 63)), (1, ), b'A' * 8), "numpy dtype 'O8'"),
    # The same through allowed dtypes: the state check refuses them.
    'object_flag.pth':
    (c.array(c.dtype('f8', _dtype_state('<', flags=1)), (1, ), b'A' * 8),
     'state numpy does not write'),
    'subarray.pth': (c.array(
        c.dtype('f8', _dtype_state('<', c.tuple_(
            c.dtype('f8', c.f8_state()), c.tuple_(c.integer(2))), 16, 8)),
        (1, ), b'A' * 16), 'state numpy does not write'),
}


def test_numpy_payloads_that_crash_numpy_are_refused_in_a_subprocess(
        tmp_path):
    paths = []
    for name, (value, _) in _MEMORY_PAYLOADS.items():
        paths.append(_write(tmp_path, name, c.meta(value)))
    code = ('from projects.hmsa.checkpoint import load_checkpoint_file\n'
            f'for path in {paths!r}:\n'
            '    try:\n'
            '        load_checkpoint_file(path)\n'
            '    except Exception as exc:\n'
            '        print(type(exc).__name__, exc)\n')
    done = c.run_isolated(code)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [x for x in done.stdout.splitlines() if x.strip()]
    assert len(lines) == len(paths)
    for line, (name, (_, match)) in zip(lines, _MEMORY_PAYLOADS.items()):
        assert line.startswith('UnsafeCheckpointError'), line
        assert name in line and match in line, line


def test_numpy_buffers_must_match_dtype_and_shape(tmp_path):
    f8 = c.dtype('f8', c.f8_state())
    path = _write(tmp_path, 'short.pth', c.meta(c.array(f8, (1 << 28, ),
                                                        b'\0' * 8)))
    _refused(path, 'array of shape (268435456,) comes with 8 bytes')
    scalar = c.call('numpy.core.multiarray', 'scalar', f8,
                    c.binbytes(b'\0' * 4))
    _refused(_write(tmp_path, 'scalar.pth', c.meta(scalar)),
             'float64 scalar comes with 4 bytes')
    bools = c.dtype('b1', _dtype_state('|'))
    _refused(_write(tmp_path, 'bool.pth', c.meta(c.array(bools, (1, ),
                                                         b'\x07'))),
             'bool holds a byte other than 0 or 1')


def test_a_dtype_used_before_its_state_is_refused(tmp_path):
    # memoize the dtype, then recall it before BUILD gives it its state
    early = (c.call('numpy', 'dtype', c.text('f8'), c.FALSE, c.TRUE) +
             b'q\x00' + b'h\x00')
    _refused(_write(tmp_path, 'early.pth', c.meta(early)),
             'before its state is set')
    never = c.call('numpy', 'dtype', c.text('f8'), c.FALSE, c.TRUE)
    _refused(_write(tmp_path, 'never.pth', c.meta(never)),
             'never gets its state')


# --------------------------------------------------------- HistoryBuffer
def _history_buffer(state) -> bytes:
    return (c.global_('mmengine.logging.history_buffer', 'HistoryBuffer') +
            c.EMPTY_TUPLE + c.NEWOBJ + c.body(state) + c.BUILD)


def _state(**changes):
    state = dict(
        max_length=10,
        _log_history=np.array([1.0]),
        _count_history=np.array([1]),
        statistics_methods={'min': HistoryBuffer.min})
    state.update(changes)
    return state


def test_a_history_buffer_cannot_widen_the_statistics_registry(tmp_path):
    HistoryBuffer()  # MMEngine's four defaults are registered
    before = dict(HistoryBuffer._statistics_methods)
    widen = _state(statistics_methods={'evil': HistoryBuffer.min})
    _refused(_write(tmp_path, 'widen.pth', c.meta(_history_buffer(widen))),
             "statistics methods other than MMEngine's own")
    assert HistoryBuffer._statistics_methods == before
    # a legitimate buffer loads and leaves the registry alone too
    got = load_checkpoint_file(
        _write(tmp_path, 'ok.pth', c.meta(_history_buffer(_state()))))
    assert got['meta'].mean() == 1.0
    assert HistoryBuffer._statistics_methods == before
    assert 'statistics_methods' not in vars(got['meta'])


@pytest.mark.parametrize('changes,match', [
    (dict(_log_history=np.array([1.0, 2.0])), 'unequal length'),
    (dict(_log_history=np.array(['a'])), '1-d numeric numpy array'),
    (dict(max_length='10'), "max_length is '10'"),
    (dict(extra=1), 'the state'),
])
def test_a_malformed_history_buffer_is_refused(tmp_path, changes, match):
    path = _write(tmp_path, 'hb.pth',
                  c.meta(_history_buffer(_state(**changes))))
    _refused(path, match)


# -------------------------------------------------------- resource bombs
class _Reduce:

    def __init__(self, func, *args):
        self.value = (func, args)

    def __reduce__(self):
        return self.value


def test_a_bytearray_bomb_is_refused(tmp_path):
    path = tmp_path / 'bytearray.pth'
    torch.save({'meta': _Reduce(bytearray, 1 << 31)}, path)
    _refused(path, 'the bytearray argument is 2147483648, not bytes')


def test_memory_amplification_is_bounded(tmp_path):
    # 1 byte of pickle per list entry of 8 bytes and more
    items = 1 << 17
    data = c.EMPTY_LIST + c.MARK + c.NONE * items + c.APPENDS
    path = _write(tmp_path, 'amplify.pth', c.meta(data))
    _refused(path, 'more than 1048576 bytes of memory',
             limits=Limits(extra_bytes=1 << 20))
    assert len(load_checkpoint_file(path)['meta']) == items


def test_a_deflate_bomb_is_refused_with_the_default_bounds(tmp_path):
    path = tmp_path / 'bomb.pth'
    c.deflate_bomb(path, 70 << 24)  # 1.1 GiB of zeros in about 1 MB
    assert path.stat().st_size < 2 << 20
    with zipfile.ZipFile(path) as archive:  # a real bomb
        with archive.open('archive/data/0') as member:
            assert member.read(1 << 20) == bytes(1 << 20)
    start = time.perf_counter()
    _refused(path, 'more than 1073741824 bytes of memory')
    assert time.perf_counter() - start < 5


def test_a_deflated_checkpoint_within_the_bounds_loads(tmp_path):
    source = tmp_path / 'plain.pth'
    c.save({'w': torch.zeros(100000)}, source)
    path = tmp_path / 'deflated.pth'
    with zipfile.ZipFile(source) as zin, \
            zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    assert torch.equal(
        load_checkpoint_file(str(path))['w'], torch.zeros(100000))
    _refused(path, 'bytes of memory', limits=Limits(extra_bytes=1000))


_P = (1 << 61) - 1  # ints k * _P all hash to 0


@pytest.mark.parametrize('value', [
    {k * _P: 0 for k in range(1, 3000)},
    {2.0**(61 * k): 0 for k in range(-16, 16)},
    {k * _P for k in range(1, 3000)},
], ids=['dict', 'float-dict', 'set'])
@pytest.mark.parametrize('protocol', [2, 4])
def test_colliding_hash_keys_are_refused_quickly(tmp_path, value, protocol):
    path = tmp_path / 'collide.pth'
    torch.save({'meta': value}, path, pickle_protocol=protocol)
    start = time.perf_counter()
    _refused(path, 'share one hash value')
    assert time.perf_counter() - start < 2


def test_a_legacy_file_cannot_claim_more_storage_than_it_holds(tmp_path):
    path = tmp_path / 'claim.pth'
    numel = 1 << 34  # 64 GiB of float32
    c.legacy_file(path, {'w': c.Tensor(
        c.Storage('storage', torch.FloatStorage, '0', 'cpu', numel, None), 0,
        (numel, ), (1, ))})
    start = time.perf_counter()
    with pytest.raises(CorruptCheckpointError,
                       match=r'claim\.pth: its tensors claim more bytes'):
        load_checkpoint_file(str(path))
    assert time.perf_counter() - start < 2


def _zip_tensor(tmp_path, name, numel, size, stride, offset=0):
    data = c.dumps_with_storages({'w': c.Tensor(
        c.Storage('storage', torch.FloatStorage, '0', 'cpu', numel), offset,
        size, stride)})
    return c.zip_with_pickle(tmp_path, name, data,
                             extra=[('archive/data/0', bytes(16))])


def test_tensors_must_fit_their_storage(tmp_path):
    # the storage record holds 16 bytes: 4 float32
    assert load_checkpoint_file(_zip_tensor(tmp_path, 'ok.pth', 4, (2, 2),
                                            (2, 1)))['w'].shape == (2, 2)
    with pytest.raises(CorruptCheckpointError,
                       match=r'holds 16 bytes, its tensors expect 4096'):
        load_checkpoint_file(_zip_tensor(tmp_path, 'big.pth', 1024, (4, ),
                                         (1, )))
    _refused(_zip_tensor(tmp_path, 'stride.pth', 4, (2, 2), (1 << 40, 1)),
             'reaches past its storage of 4 elements')
    _refused(_zip_tensor(tmp_path, 'offset.pth', 4, (4, ), (1, ), 1),
             'reaches past its storage')


# -------------------------------------------------------- zip path tricks
@pytest.mark.parametrize('extra,match', [
    ([('archive/../evil', b'x')], "named 'archive/../evil'"),
    ([('/archive/evil', b'x')], "named '/archive/evil'"),
    ([('archive/data\\1', b'x')], 'not a plain name'),
    ([('other/data.pkl', b'x')], "named 'other/data.pkl'"),
    ([('archive/data.pkl', b'x')], "two zip members named"),
    ([('archive/constants.pkl', b'x')], 'TorchScript archive'),
    ([('archive/code/__torch__.py', b'x')], 'TorchScript archive'),
    ([('archive/extra/setup.py', b'x')], 'which torch.save does not write'),
    ([('archive/version', b'3\n')], 'two zip members named'),
    ([('archive/byteorder2', b'little')], 'does not write'),
])
def test_zip_path_tricks_are_refused(tmp_path, extra, match):
    source = tmp_path / 'source.pth'
    c.save({'w': torch.ones(2)}, source)
    path = tmp_path / 'tricked.pth'
    with pytest.warns(UserWarning) if 'two' in match else _no_warning():
        c.rezip(source, path, extra=extra)
    _refused(path, match)


class _no_warning:

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_zip_name_hiding_a_nul_byte_is_refused(tmp_path):
    # Python's zipfile cuts names at NUL when writing: patch the bytes.
    source = tmp_path / 'source.pth'
    c.save({'w': torch.ones(2)}, source)
    path = tmp_path / 'nul.pth'
    c.rezip(source, path, extra=[('archive/data/1\x01.sh', b'x')])
    path.write_bytes(path.read_bytes().replace(b'1\x01.sh', b'1\x00.sh'))
    _refused(path, "named 'archive/data/1\\x00.sh': not a plain name")


def test_oversized_bookkeeping_records_are_refused(tmp_path):
    source = tmp_path / 'source.pth'
    c.save({'w': torch.ones(2)}, source)
    path = tmp_path / 'big_record.pth'
    c.rezip(source, path, drop=['/.storage_alignment'],
            extra=[('archive/.storage_alignment', b'9' * 5000)])
    _refused(path, 'its record .storage_alignment has 5000 bytes')


def test_the_pre_04_tar_format_is_not_read(tmp_path):
    path = tmp_path / 'old.tar'
    with tarfile.open(path, 'w', format=tarfile.PAX_FORMAT) as tar:
        for name in ('storages', 'tensors', 'pickle'):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b'x'))
    with pytest.raises(CorruptCheckpointError, match='tar format'):
        load_checkpoint_file(str(path))


# --------------------------------------------------------------- messages
def test_corrupt_and_missing_checkpoints(tmp_path):
    path = tmp_path / 'model.pth'
    torch.save({'state_dict': nn.Linear(2, 2).state_dict()}, path)
    data = path.read_bytes()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match=r'cut\.pth'):
        load_checkpoint_file(str(tmp_path / 'cut.pth'))
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    with pytest.raises(CorruptCheckpointError,
                       match=r'text\.pth: it is not a PyTorch checkpoint'):
        load_checkpoint_file(str(tmp_path / 'text.pth'))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_checkpoint_file(str(tmp_path / 'absent.pth'))


@pytest.mark.parametrize('zipped', [True, False], ids=['zip', 'legacy'])
def test_damaged_files_give_one_of_the_two_errors_naming_the_file(
        tmp_path, zipped):
    """Truncated or byte-flipped copies of a checkpoint with tensors, numpy
    values and a HistoryBuffer never surface as a bare TypeError,
    LookupError or MemoryError, nor crash."""
    source = tmp_path / 'source.pth'
    c.save(
        {
            'state_dict': nn.Linear(3, 2).state_dict(),
            'meta': {
                'hb': HistoryBuffer([1.0, 2.0], [1, 1]),
                'x': np.arange(4.),
                's': np.str_('ab'),
                'when': np.datetime64('2024-01-01'),
            }
        },
        source,
        _use_new_zipfile_serialization=zipped)
    if zipped:
        with zipfile.ZipFile(source) as archive:
            pickled = archive.read('archive/data.pkl')
    else:
        pickled = source.read_bytes()
    rng = random.Random(0)
    variants = [pickled[:n] for n in range(0, len(pickled), 7)]
    for _ in range(150):
        flipped = bytearray(pickled)
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        variants.append(bytes(flipped))
    outcomes = set()
    for i, data in enumerate(variants):
        name = f'damaged{i}.pth'
        if zipped:
            path = c.zip_with_pickle(tmp_path, name, data)
        else:
            path = str(tmp_path / name)
            with open(path, 'wb') as f:
                f.write(data)
        try:
            load_checkpoint_file(path)
            outcomes.add('loaded')
        except (UnsafeCheckpointError, CorruptCheckpointError) as exc:
            assert name in str(exc)
            outcomes.add(type(exc).__name__)
    assert {'UnsafeCheckpointError', 'CorruptCheckpointError'} <= outcomes
