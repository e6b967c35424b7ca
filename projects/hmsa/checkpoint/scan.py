"""Checks made before torch reads a byte: the container, then the pickles.

A zip is read member by member with :mod:`zipfile` within bounds, and the
checked members are written into a fresh stored zip in memory that torch
reads: the bytes checked are the bytes loaded. A legacy file is handed to
torch as an in-memory stream (so torch never tries its tar reader).

Each pickle is walked with :func:`pickletools.genops` on a symbolic stack
(linear, nothing is built): only the opcodes torch's ``weights_only``
reader knows, at most :data:`MAX_OPCODES`, only allowlisted globals, calls
with arguments of the types checkpoints use, at most
:data:`.values.MAX_SAME_HASH` distinct dict keys per hash, storages no
bigger than their bytes in the file, tensors inside their storage and all
tensor views together within :func:`byte_bound`.
"""
import io
import pickletools
import struct
import zipfile

import torch
from torch.serialization import StorageType

from .values import SAFE_GLOBALS, Load, Refused, Unreadable

MAX_ENTRIES, MAX_DIRECTORY = 100_000, 16 << 20  # zip entries, their bytes
MAX_OPCODES = 2_000_000  # per file
_RECORDS = {'data.pkl', 'version', '.data/version', 'byteorder',
            '.data/serialization_id', '.format_version', '.storage_alignment'}
_ITEMSIZE = {f'torch.{n}': StorageType(n).dtype.itemsize for n in dir(torch)
             if n.endswith('Storage') and n[:-7] not in ('', 'Typed',
                                                          'Untyped')}
_ITEMSIZE['torch.storage.UntypedStorage'] = 1
_DTYPES = {str(t): t for t in vars(torch).values()
           if isinstance(t, torch.dtype)}
_HISTORY = 'mmengine.logging.history_buffer.HistoryBuffer'
_TENSOR = {f'torch._utils._rebuild_tensor_v{v}' for v in (2, 3)}
_ARGS = {  # the calls of torch's own allowlist a checkpoint may make
    'collections.OrderedDict': lambda *a: not a,
    'collections.Counter': lambda *a: not a or len(a) == 1 and _is(
        a[0], 'dict'),
    'builtins.set': lambda *a: not a or len(a) == 1 and type(a[0]) is list,
    'builtins.bytes': lambda *a: not a,
    'builtins.bytearray': lambda *a: not a or type(a[0]) in (bytes, str) and
    a[1:] in ((), ('latin-1', ), ('latin1', )),
    '_codecs.encode': lambda *a: len(a) == 2 and type(a[0]) is str and
    a[1] in ('latin1', 'latin-1'),
    'torch.Size': lambda *a: len(a) == 1 and type(a[0]) is tuple and all(
        type(v) is int for v in a[0]),
    'torch.device': lambda *a: 0 < len(a) < 3 and type(a[0]) is str and
    len(a[0]) < 64 and all(type(v) is int for v in a[1:]),
    'torch._utils._rebuild_parameter': lambda *a: len(a) == 3 and _is(
        a[0], 'tensor') and type(a[1]) is bool and _is(a[2], 'odict', ''),
    'torch._utils._rebuild_parameter_with_state': lambda *a: len(a) == 4 and
    _is(a[0], 'tensor') and type(a[1]) is bool and _is(a[2], 'odict', '')
    and _is(a[3], 'dict'),
}
ALLOWED = {name for _, name in SAFE_GLOBALS} | set(_ITEMSIZE) | set(
    _DTYPES) | set(_ARGS) | _TENSOR
# The opcodes torch's weights_only reader implements (protocol 2).
_OPCODES = set(
    'PROTO STOP GLOBAL NEWOBJ REDUCE BUILD APPEND APPENDS SETITEM SETITEMS '
    'MARK TUPLE TUPLE1 TUPLE2 TUPLE3 NONE NEWFALSE NEWTRUE EMPTY_TUPLE '
    'EMPTY_LIST EMPTY_DICT EMPTY_SET BININT BININT1 BININT2 BINFLOAT LONG1 '
    'BINUNICODE SHORT_BINSTRING BINPERSID BINGET LONG_BINGET BINPUT '
    'LONG_BINPUT'.split())
_LITERAL = (int, float, str, bytes, bool, type(None))
_LITERAL_OPS = {'BININT', 'BININT1', 'BININT2', 'LONG1', 'BINFLOAT',
                'BINUNICODE', 'SHORT_BINSTRING'}


def byte_bound(file_size: int) -> int:
    """Most bytes a file may unpack to (zip members, tensor views)."""
    return max(1 << 30, 4 * file_size)


def read_zip(stream, size: int) -> list:
    """A zip's members as ``[(name, data)]``: the end records checked by
    hand first, then each member read by zipfile (CRC checked)."""
    stream.seek(max(0, size - (1 << 16) - 22))
    tail = stream.read().rjust(42, b'\0')
    if tail[-22:-18] != b'PK\x05\x06' or tail[-2:] != b'\0\0':
        if b'PK\x05\x06' not in tail:
            raise Unreadable('it has no zip end record (cut short?)')
        raise Refused('its zip end record is not its last 22 bytes (an '
                      'archive comment or data after the archive)')
    disk, cd_disk, n_disk, n, cd_size, cd_offset = struct.unpack(
        '<4x4H2I', tail[-22:-2])
    end = size - 22
    if tail[-42:-38] == b'PK\x06\x07':  # zip64: the real counts are above
        end = struct.unpack('<8xQ', tail[-42:-26])[0]
        stream.seek(end)
        record = stream.read(56)
        if end > size - 98 or record[:4] != b'PK\x06\x06':
            raise Unreadable('its zip64 end record is damaged')
        disk, cd_disk, n_disk, n, cd_size, cd_offset = struct.unpack(
            '<16x2I4Q', record)
    if disk or cd_disk or n != n_disk:
        raise Refused('it is a zip archive split over several disks')
    if n > MAX_ENTRIES or cd_size > MAX_DIRECTORY:
        raise Refused(f'its zip directory claims {n} entries in {cd_size} '
                      f'bytes (bounds: {MAX_ENTRIES}, {MAX_DIRECTORY})')
    if cd_offset + cd_size != end:  # zipfile's "concat" offset is not 0
        raise Refused('its zip directory does not end where the end record '
                      'starts (data before the archive, or two archives)')
    try:
        with zipfile.ZipFile(stream) as archive:
            infos, names = archive.infolist(), set()
            for info in infos:
                what = f'its zip member {info.filename!r}'
                if info.filename in names or info.flag_bits & 1 or \
                        info.compress_type not in (0, zipfile.ZIP_DEFLATED):
                    raise Refused(
                        f'{what} is encrypted' if info.flag_bits & 1 else
                        f'{what} is there twice' if info.filename in names
                        else f'{what} uses compression method '
                        f'{info.compress_type}, not stored or deflated')
                names.add(info.filename)
            total = sum(info.file_size for info in infos)
            if len(infos) != n:
                raise Unreadable(f'its zip directory holds {len(infos)} of '
                                 f'{n} entries')
            if total > byte_bound(size):
                raise Refused(f'its zip members declare {total} bytes, more '
                              f'than the bound of {byte_bound(size)}')
            return [(info.filename, _read(archive, info)) for info in infos]
    except (zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
        raise Unreadable(f'its zip archive is damaged ({exc})') from None


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    data = bytearray()
    with archive.open(info) as member:  # zipfile checks the CRC at its end
        while len(data) <= info.file_size:
            chunk = member.read(1 << 20)
            if not chunk:
                return bytes(data)
            data += chunk
    raise Refused(f'its zip member {info.filename!r} unpacks to more than '
                  'its declared size')


def torch_zip(members: list, size: int) -> tuple:
    """A ``torch.save`` zip, checked and rewritten as a fresh stored zip;
    returns it and the globals its pickle names."""
    prefix = members[0][0].split('/')[0] + '/'
    records = {}
    for name, data in members:
        rel = name[len(prefix):]
        if rel == 'constants.pkl' or rel.startswith('code/'):
            raise Refused('it is a TorchScript archive (it holds code)')
        if not name.startswith(prefix) or rel not in _RECORDS and not (
                rel[:5] == 'data/' and rel[5:].isalnum()):
            raise Refused(f'it holds the zip member {name!r}, which '
                          'torch.save does not write')
        records[rel] = data
    if 'data.pkl' not in records:
        raise Unreadable('its zip archive has no data.pkl')
    checks = Scan(byte_bound(size), records)
    checks.run(io.BytesIO(records['data.pkl']))
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w') as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name), data)
    out.seek(0)
    return out, checks.names


def legacy(data: bytes) -> tuple:
    """A legacy file (five pickles, then each storage's size and bytes),
    checked; returns it as a stream and the globals it names."""
    stream, checks = io.BytesIO(data), Scan(byte_bound(len(data)))
    if checks.run(stream) != 0x1950a86a20f9469cfc6c or \
            checks.run(stream) != 1001:
        raise Unreadable('it is not a PyTorch checkpoint (wrong magic)')
    checks.run(stream)  # system information
    checks.run(stream)  # the checkpoint
    keys, left = checks.run(stream), len(data) - stream.tell()
    need = sum(8 + nbytes for _, nbytes in checks.roots.values())
    if type(keys) is not list or len(keys) != len(checks.roots):
        raise Unreadable('its storage list does not match its tensors')
    if need > left:
        raise Refused(f'its storages claim {need} bytes, the file holds '
                      f'{left} after its pickles')
    stream.seek(0)
    return stream, checks.names


class _Node:
    """A symbolic value: its kind, name and what checks need."""
    __slots__ = ('kind', 'name', 'items')

    def __init__(self, kind: str, name: str = '', items=()):
        self.kind, self.name, self.items = kind, name, items


def _is(value, kind: str, items=None) -> bool:
    return isinstance(value, _Node) and value.kind == kind and (
        items is None or not value.items)


class Scan:
    """Walk a file's pickles without building them (module docstring).

    Args:
        bound (int): Most bytes all tensor views may claim together.
        records (dict, optional): A zip's records, to check storages
            against; None for a legacy file.
    """

    def __init__(self, bound: int, records: dict = None):
        self.bound, self.records, self.load = bound, records, Load()
        self.ops = self.views = 0
        self.roots, self.names = {}, set()

    def run(self, stream):
        """Walk the pickle at ``stream``'s position; return its value (a
        literal for the small pickles of a legacy file)."""
        stack, marks, memo = [], [], {}
        try:
            for op, arg, _ in pickletools.genops(stream):
                name, self.ops = op.name, self.ops + 1
                if self.ops > MAX_OPCODES:
                    raise Refused(f'it has over {MAX_OPCODES} pickle opcodes')
                if name not in _OPCODES:
                    raise Refused(f'it uses the pickle opcode {name}, which '
                                  "torch's weights_only reader refuses")
                if name in _LITERAL_OPS:
                    stack.append(arg)
                    continue
                if name.endswith('PUT') or name.endswith('GET'):
                    if name.endswith('PUT'):
                        memo[arg] = stack[-1]
                    else:
                        stack.append(memo[arg])
                    continue
                items = None
                if name == 'MARK':
                    marks.append(stack)
                    stack = []
                elif name in ('TUPLE', 'APPENDS', 'SETITEMS'):
                    items, stack = stack, marks.pop()
                if name.startswith('TUPLE'):
                    if items is None:
                        items = stack[len(stack) - int(name[-1]):]
                        if len(items) < int(name[-1]):
                            raise IndexError('stack underflow')
                        del stack[len(stack) - len(items):]
                    stack.append(tuple(items))
                elif name.startswith('APPEND'):
                    items = [stack.pop()] if items is None else items
                    if type(stack[-1]) is not list:
                        raise Refused('it appends to a non-list')
                    stack[-1].extend(items)
                elif name.startswith('SETITEM'):
                    if items is None:
                        items = stack[-2:]
                        del stack[-2:]
                    if not (_is(stack[-1], 'dict') or _is(
                            stack[-1], 'odict')) or len(items) % 2:
                        raise Refused('it sets items of a non-dict')
                    for key in items[::2]:
                        self.key(key)
                    stack[-1].items = True
                elif name in ('NONE', 'NEWTRUE', 'NEWFALSE'):
                    stack.append({'NEWTRUE': True,
                                  'NEWFALSE': False}.get(name))
                elif name.startswith('EMPTY_'):
                    stack.append(() if name == 'EMPTY_TUPLE' else [] if
                                 name == 'EMPTY_LIST' else _Node(
                                     name[6:].lower()))
                elif name == 'GLOBAL':
                    module, attr = arg.split(' ', 1)
                    if module == '__builtin__':  # so does torch
                        module = 'builtins'
                    if f'{module}.{attr}' not in ALLOWED:
                        raise Refused(f'it asks for the global {module}.'
                                      f'{attr}, which is not allowed')
                    self.names.add(f'{module}.{attr}')
                    stack.append(_Node('global', f'{module}.{attr}'))
                elif name in ('REDUCE', 'NEWOBJ'):
                    args, func = stack.pop(), stack.pop()
                    stack.append(self.call(func, args, name == 'NEWOBJ'))
                elif name == 'BUILD':
                    state, target = stack.pop(), stack[-1]
                    if not (_is(target, 'build') or _is(target, 'odict')
                            and _is(state, 'dict')):
                        raise Refused('it sets the state of an object that '
                                      'takes none')
                elif name == 'BINPERSID':
                    stack.append(self.storage(stack.pop()))
                elif name == 'STOP':
                    return stack.pop()
        except (IndexError, KeyError, ValueError) as exc:
            raise Unreadable(f'a pickle in it is malformed ({exc!r})') \
                from None
        raise Unreadable('a pickle in it is truncated')

    def key(self, key) -> None:
        """A dict or set key. Literals (tuples of up to 64 too) are counted
        by hash; numpy scalars when built; the rest hash by identity or
        not at all."""
        flat, todo = [], [key]
        while todo and len(flat) <= 64:
            item = todo.pop()
            (todo.extend if type(item) is tuple else flat.append)(item)
        if type(key) is tuple and (todo or not all(
                type(v) in _LITERAL for v in flat)):
            raise Refused('a dict key is a tuple of over 64 items or of '
                          'other than plain values')
        if type(key) in _LITERAL or type(key) is tuple:
            self.load.key(key)

    def call(self, func, args, new: bool) -> _Node:
        """``REDUCE``/``NEWOBJ``: allowed calls with checked arguments."""
        name = func.name if _is(func, 'global') else '?'
        if new or name == _HISTORY:
            if not new or name != _HISTORY or args != ():
                raise Refused('it creates an object other than a '
                              'HistoryBuffer the way MMEngine does')
            return _Node('build')
        if type(args) is not tuple:
            raise Refused(f'it calls {name} with a non-tuple')
        if name in _ARGS:
            if not _ARGS[name](*args):
                raise Refused(f'it calls {name} with odd arguments')
            for item in args[0] if name == 'builtins.set' and args else ():
                self.key(item)
            if name == '_codecs.encode':
                try:
                    return args[0].encode('latin-1')
                except UnicodeEncodeError:
                    raise Refused('it encodes non-latin-1 text') from None
            if name in ('torch.Size', 'builtins.bytes'):
                return args[0] if args else b''
            return _Node({'collections.OrderedDict': 'odict',
                          'collections.Counter': 'dict'}.get(name, 'tensor'
                          if 'parameter' in name else name))
        if name in _TENSOR:
            return self.tensor(name, args)
        if name.startswith(('numpy', 'builtins.getattr')) and \
                name != 'numpy.ndarray':  # .values checks them as they load
            return _Node('build' if name.endswith(
                ('dtype', '_reconstruct')) else name)
        raise Refused(f'it calls {name}, which checkpoints do not call')

    def tensor(self, name: str, args: tuple) -> _Node:
        """A tensor inside its storage, all views within the bound."""
        v3 = name.endswith('v3')
        if len(args) not in ((7, 8) if v3 else (6, 7)):
            raise Refused(f'it calls {name} with {len(args)} arguments')
        storage, offset, size, stride, grad, hooks = args[:6]
        itemsize = storage.items[0] if _is(storage, 'storage') else 0
        if v3:
            dtype = _DTYPES.get(args[6].name) if _is(args[6], 'global') \
                else None
            itemsize = dtype.itemsize if dtype is not None else 0
        if not (itemsize and type(offset) is int and type(grad) is bool
                and _is(hooks, 'odict', '') and type(size) is tuple
                and type(stride) is tuple and len(size) == len(stride) < 65
                and all(type(v) is int and v >= 0
                        for v in size + stride + (offset, ))):
            raise Refused(f'it calls {name} with arguments of wrong types')
        numel, length = 1, storage.items[1] // itemsize
        for n in size:
            numel *= n
        if numel and offset + sum(
                (n - 1) * s for n, s in zip(size, stride)) >= length:
            raise Refused(f'a tensor of size {size} and stride {stride} at '
                          f'{offset} reaches past its {length}-item storage')
        self.views += numel * itemsize
        if self.views > self.bound:
            raise Refused(f'its tensor views claim over {self.bound} bytes '
                          f'in all (the last: size {size}, stride {stride},'
                          f' over {length} items)')
        return _Node('tensor')

    def storage(self, pid) -> _Node:
        """``BINPERSID``: a storage no bigger than its bytes in the file.
        A key's first reference fixes its type and size, as in torch."""
        n = 5 if self.records is not None else 6
        if type(pid) is not tuple or len(pid) != n or pid[0] != 'storage' \
                or not _is(pid[1], 'global') or pid[1].name not in _ITEMSIZE \
                or type(pid[2]) is not str or type(pid[3]) is not str or \
                len(pid[3]) > 64 or type(pid[4]) is not int or pid[4] < 0:
            raise Refused('it references something other than a storage')
        if pid[2] not in self.roots:
            itemsize = _ITEMSIZE[pid[1].name]
            self.roots[pid[2]] = (itemsize, pid[4] * itemsize)
            have = len(self.records.get(f'data/{pid[2]}', b'?')) \
                if self.records is not None else pid[4] * itemsize
            if have != pid[4] * itemsize:
                raise Refused(f'its storage {pid[2]!r} claims '
                              f'{pid[4] * itemsize} bytes, its record holds '
                              f'{have}')
        itemsize, nbytes = self.roots[pid[2]]
        view = pid[5] if n == 6 else None
        if view is not None and (
                type(view) is not tuple or len(view) != 3 or
                type(view[0]) is not str or not all(
                    type(v) is int and v >= 0 for v in view[1:]) or
                (view[1] + view[2]) * itemsize > nbytes):
            raise Refused('it has a storage view outside its storage')
        return _Node('storage', items=(itemsize, view[2] * itemsize
                                       if view else nbytes))
