"""Crafted checkpoints are refused by the check made for them, with the
reason named, within 1 GiB of memory and 20 s, in a process that must
survive them (numpy payloads could crash one)."""
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from projects.hmsa.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    load_checkpoint_file,
)
from tests.test_checkpoint import crafting as c

HISTORY = c.glob('mmengine.logging.history_buffer', 'HistoryBuffer')
F8 = c.dtype('f8', c.f8_state())
UNSAFE, CORRUPT = 'UnsafeCheckpointError', 'CorruptCheckpointError'


def _zip(body: bytes) -> bytes:
    return c.torch_zip(c.pickle(body))


def _zip4(body: bytes) -> bytes:
    """With one storage record, ``0``, of 4 bytes."""
    return c.torch_zip(c.pickle(body), {'0': bytes(4)})


def _ndarray(state: bytes) -> bytes:
    return c.call(c.glob('numpy.core.multiarray', '_reconstruct'),
                  c.glob('numpy', 'ndarray'), c.tup(c.num(0)),
                  c.raw(b'b')) + state + c.BUILD


def _legacy(main: bytes, keys: bytes) -> bytes:
    return b''.join(c.pickle(p) for p in (
        c.num(0x1950a86a20f9469cfc6c), c.num(1001), c.EMPTY_DICT, main, keys))


def _torchscript() -> bytes:
    out = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.ReLU()), out)
    return out.getvalue()


def _with_comment(comment: bytes) -> bytes:
    out = io.BytesIO(_zip(c.NONE))
    with zipfile.ZipFile(out, 'a') as archive:
        archive.comment = comment
    return out.getvalue()


COLLIDING = c.EMPTY_DICT + c.MARK + b''.join(
    c.num(k * (2**61 - 1)) + c.NONE for k in range(1, 100_001)) + c.SETITEMS


def _shared(level: int) -> bytes:
    """A tuple of 60 references to one tuple, ``level`` deep."""
    if not level:
        return c.num(1)
    return c.tup(_shared(level - 1) + b'q' + bytes([level]),
                 *[b'h' + bytes([level])] * 59)


SHARED = _shared(4)  # 60**4 leaves: comparing it would take long
# name: (file content, error, what its reason says)
CASES = {
    'os_system': (lambda root: _zip(c.call(c.glob('posix', 'system'), c.text(
        f'touch {root}/ran'))), UNSAFE, 'global posix.system'),
    'builtins_eval': (_zip(c.call(c.glob('__builtin__', 'eval'), c.text(
        '1'))), UNSAFE, 'global builtins.eval'),
    'torchscript': (lambda root: _torchscript(), UNSAFE,
                    'TorchScript archive'),
    'two_archives': (_zip(c.NONE) + _zip(c.call(c.glob('posix', 'system'),
                                                c.text('true'))), UNSAFE,
                     'data before the archive, or two archives'),
    'prepended_data': (bytes(100) + _zip(c.NONE), UNSAFE,
                       'data before the archive'),
    'archive_comment': (_with_comment(b'hello'), UNSAFE, 'archive comment'),
    'second_end_record_in_comment': (_with_comment(b'PK\x05\x06' + bytes(
        18)), UNSAFE, 'does not end where the end record starts'),
    'deflate_bomb': (c.deflate_bomb(1100), UNSAFE,
                     'declare 1153433600 bytes'),
    'deflate_bomb_under_small_size': (c.deflate_bomb(1100, 1 << 20), CORRUPT,
                                      'Bad CRC-32'),
    'bzip2_member': (c.torch_zip(c.pickle(c.NONE), {}, zipfile.ZIP_BZIP2),
                     UNSAFE, 'compression method 12'),
    'lzma_member': (c.torch_zip(c.pickle(c.NONE), {}, zipfile.ZIP_LZMA),
                    UNSAFE, 'compression method 14'),
    'millions_of_entries': (c.zip64_end(5_000_000, 1 << 20), UNSAFE,
                            'claims 5000000 entries'),
    'huge_directory': (c.zip64_end(10, 1 << 40), UNSAFE,
                       'claims 10 entries in 1099511627776 bytes'),
    'bad_crc': (c.patch_entries(_zip(c.NONE), 16, '<I', 0xDEADBEEF),
                CORRUPT, 'Bad CRC-32'),
    'encrypted': (c.patch_entries(_zip(c.NONE), 8, '<H', 1), UNSAFE,
                  'is encrypted'),
    'unknown_method': (c.patch_entries(_zip(c.NONE), 10, '<H', 99), UNSAFE,
                       'compression method 99'),
    'numpy_shape_is_a_tensor': (_zip4(_ndarray(c.tup(
        c.num(1), c.tensor('0', 1, (1 << 20, ), (0, )), F8, c.FALSE,
        c.raw(bytes(8))))), UNSAFE, 'array has a state numpy'),
    'numpy_dtype_field_is_a_tensor': (_zip4(c.dtype('f8', c.tup(
        c.num(3), c.text('<'), c.NONE, c.NONE, c.NONE,
        c.tensor('0', 1, (1 << 20, ), (0, )), c.num(-1), c.num(0)))),
        UNSAFE, 'state numpy does not write'),
    'numpy_dtype_with_fields': (_zip(c.dtype('V8', c.tup(
        c.num(3), c.text('|'), c.NONE, c.tup(c.text('a')), c.EMPTY_DICT,
        c.num(8), c.num(1), c.num(16)))), UNSAFE,
        'state numpy does not write'),
    'numpy_dtype_state_shared_tuples': (_zip(c.dtype('f8', SHARED)), UNSAFE,
                                        'state numpy does not write'),
    'numpy_object_dtype': (_zip(c.dtype('O8', c.tup(
        c.num(3), c.text('|'), c.NONE, c.NONE, c.NONE, c.num(-1), c.num(-1),
        c.num(63)))), UNSAFE, 'state numpy does not write'),
    'numpy_array_data_too_short': (_zip(_ndarray(c.tup(
        c.num(1), c.tup(c.num(1 << 30)), F8, c.FALSE, c.raw(bytes(8))))),
        UNSAFE, 'data of another size'),
    'numpy_scalar_unbuilt_dtype': (_zip(c.call(
        c.glob('numpy.core.multiarray', 'scalar'),
        c.call(c.glob('numpy', 'dtype'), c.text('f8'), c.FALSE, b'\x88'),
        c.raw(bytes(8)))), UNSAFE, 'no finished numpy dtype'),
    'stride0_view': (_zip4(c.tensor('0', 1, (1 << 40, ), (0, ))), UNSAFE,
                     'tensor views claim over 1073741824 bytes'),
    'view_past_storage': (_zip4(c.tensor('0', 1, (2, ), (1, ))), UNSAFE,
                          'reaches past its 1-item storage'),
    'storage_claim': (_zip4(c.tensor('0', 1 << 40, (1, ), (1, ))), UNSAFE,
                      'claims 4398046511104 bytes, its record holds 4'),
    'legacy_storage_claim': (_legacy(c.call(
        c.glob('torch._utils', '_rebuild_tensor_v2'),
        c.tup(c.text('storage'), c.glob('torch', 'FloatStorage'),
              c.text('0'), c.text('cpu'), c.num(1 << 40), c.NONE) + b'Q',
        c.num(0), c.tup(c.num(1)), c.tup(c.num(1)), c.FALSE, c.ODICT),
        b']' + c.text('0') + b'a'), UNSAFE, 'storages claim 4398046511112'),
    'int_key_hash_collisions': (_zip(COLLIDING), UNSAFE,
                                'share one hash value'),
    'getattr_other_name': (_zip(c.call(c.glob('__builtin__', 'getattr'),
                                       HISTORY, c.text('__init__'))), UNSAFE,
                           'getattr other than'),
    'bytearray_allocation': (_zip(c.call(c.glob('__builtin__', 'bytearray'),
                                         c.num(1 << 40))), UNSAFE,
                             'builtins.bytearray with odd arguments'),
    'punycode_encode': (_zip(c.call(c.glob('_codecs', 'encode'), c.text(
        'x'), c.text('punycode'))), UNSAFE, '_codecs.encode with odd'),
    'protocol_4_opcodes': (c.torch_zip(__import__('pickle').dumps(
        {'a': 1}, protocol=4)), UNSAFE, 'opcode FRAME'),
    'too_many_opcodes': (_zip(b']' + c.MARK + b'K\x01' * 2_000_001 + b'e'),
                         UNSAFE, 'over 2000000 pickle opcodes'),
    'build_on_a_tensor': (_zip4(c.tensor('0', 1, (1, ), (1, )) + c.tup(
        c.num(0)) + c.BUILD), UNSAFE, 'sets the state of an object'),
    'history_buffer_state': (_zip(HISTORY + b')\x81' + c.EMPTY_DICT + c.MARK
                                  + c.text('max_length') + c.num(1)
                                  + c.SETITEMS + c.BUILD), UNSAFE,
                             'state MMEngine does not write'),
    'history_buffer_called': (_zip(c.call(HISTORY)), UNSAFE,
                              'other than a HistoryBuffer'),
}
RUNNER = '''
import json, resource, sys, time
from projects.hmsa.checkpoint import CheckpointError, load_checkpoint_file
with open('/proc/self/status') as status:
    size = [int(line.split()[1]) for line in status if line.startswith(
        'VmSize')][0] * 1024
limit = size + (1 << 30)  # 1 GiB beyond the imports
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for path in sys.argv[1:]:
    start = time.time()
    try:
        load_checkpoint_file(path)
        kind, message = 'loaded', ''
    except CheckpointError as exc:
        kind, message = type(exc).__name__, str(exc)
    print(json.dumps([path, kind, message, time.time() - start]), flush=True)
'''


@pytest.fixture(scope='module')
def outcomes(tmp_path_factory):
    """Every case, loaded in one child process limited to 1 GiB more."""
    root = tmp_path_factory.mktemp('attacks')
    paths = []
    for name, (content, _, _) in CASES.items():
        paths.append(str(root / f'{name}.pth'))
        content = content(root) if callable(content) else content
        with open(paths[-1], 'wb') as file:
            file.write(content)
    done = subprocess.run([sys.executable, '-c', RUNNER, *paths],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not os.path.exists(root / 'ran')
    return {os.path.basename(p)[:-4]: (kind, message, seconds)
            for p, kind, message, seconds in map(
                json.loads, done.stdout.splitlines())}


@pytest.mark.parametrize('name', CASES)
def test_refused_with_reason(outcomes, name):
    _, error, reason = CASES[name]
    kind, message, seconds = outcomes[name]
    assert kind == error, message
    assert reason in message and f'{name}.pth' in message, message
    assert seconds < 20


def test_refused_in_process(tmp_path):
    """The same refusals reach the caller as one exception type."""
    path = tmp_path / 'evil.pth'
    path.write_bytes(CASES['os_system'][0](tmp_path))
    with pytest.raises(CheckpointError, match=r'evil\.pth.*posix\.system'):
        load_checkpoint_file(str(path))


def test_process_wide_numpy_globals_are_not_trusted(tmp_path):
    """numpy's own reconstructors, allowed for the whole process by the
    caller, would race with ours: a file using those names is refused, a
    plain state dict still loads, and the caller's list is left as is."""
    path, plain = tmp_path / 'meta.pth', tmp_path / 'plain.pth'
    torch.save({'meta': np.float64(1.5)}, path)
    torch.save({'w': torch.ones(2)}, plain)
    with torch.serialization.safe_globals([np.dtype]):
        with pytest.raises(UnsafeCheckpointError, match='numpy.dtype'):
            load_checkpoint_file(str(path))
        assert torch.equal(load_checkpoint_file(str(plain))['w'],
                           torch.ones(2))
        assert np.dtype in torch.serialization.get_safe_globals()
    assert load_checkpoint_file(str(path))['meta'] == 1.5
