"""The values a checkpoint may hold, rebuilt by validating constructors.

A pickle names a callable (``GLOBAL module name``) and the arguments to call
it with. Here every name a checkpoint may use resolves to one of our own
small functions, which checks the arguments (plain numbers, strings, bytes
and containers the unpickler built) and only then builds the value:

- numpy dtypes from a type string we compose ourselves (bool, integer,
  float, complex, unicode and byte strings, datetimes and timedeltas),
  accepted only when the file's pickled state is exactly what numpy writes
  for that dtype: no object dtype, no fields, no sub-arrays;
- numpy arrays and scalars from a byte buffer whose length matches the
  dtype and shape, copied into memory numpy owns;
- MMEngine's ``HistoryBuffer`` through its constructor, from validated
  numeric arrays (the file cannot reach the class-wide statistics
  registry);
- torch tensors through torch's own ``_rebuild_tensor_v2``, once the
  storage, offset, sizes and strides are checked to fit;
- ``OrderedDict``, ``Counter``, ``set``, ``frozenset``, ``bytes``,
  ``bytearray``, ``complex``, ``torch.Size``, ``torch.device`` and torch
  dtypes.

Nothing of numpy's, MMEngine's or the standard library's own unpickling
machinery (``__setstate__``, ``__reduce__`` targets) is called with state
from the file.
"""
import re
import sys
from collections import Counter, OrderedDict
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from .errors import Refused, describe
from .limits import Budget


class Constructor:
    """A callable a pickle may name: ``fn(args, budget)`` builds the value.

    Args:
        name (str): The name the pickle uses, for messages.
        fn (callable): Checks the argument tuple, then builds the value.
    """

    def __init__(self, name: str, fn: Callable[[tuple, Budget], Any]):
        self.name = name
        self.fn = fn

    def __call__(self, args: tuple, budget: Budget) -> Any:
        return self.fn(args, budget)

    def __repr__(self) -> str:
        return f'<checkpoint constructor {self.name}>'


class Recipe:
    """A value whose pickle sends its state in a later ``BUILD`` step.

    The unpickler keeps the recipe until ``build`` gives the finished
    value; a recipe that never gets its state refuses the file.
    """

    def build(self, state: Any, budget: Budget) -> Any:
        raise NotImplementedError


class Statistic:
    """``getattr(HistoryBuffer, name)`` for one of its statistics."""

    def __init__(self, name: str):
        self.name = name


# ------------------------------------------------------------- checks
def _args(args: tuple, name: str, *counts: int) -> tuple:
    if type(args) is not tuple or len(args) not in counts:
        raise Refused(f'it calls {name} with {describe(args)} of '
                      f'{len(args) if type(args) is tuple else "?"} '
                      'arguments, not what checkpoints write')
    return args


def _int(value: Any, what: str, low: int = 0, high: int = 1 << 62) -> int:
    if type(value) is not int or not low <= value <= high:
        raise Refused(f'{what} is {describe(value)}, not an integer in '
                      f'[{low}, {high}]')
    return value


def _ints(value: Any, what: str, max_len: int = 64) -> tuple:
    if type(value) not in (tuple, torch.Size) or len(value) > max_len:
        raise Refused(f'{what} is {describe(value)}, not a tuple of at most '
                      f'{max_len} integers')
    for item in value:
        _int(item, what)
    return tuple(value)


def _bool(value: Any, what: str) -> bool:
    if type(value) is not bool:
        raise Refused(f'{what} is {describe(value)}, not True or False')
    return value


def _plain(value: Any, depth: int = 4) -> bool:
    """Whether ``value`` is made of plain scalars, tuples and dicts only
    (so comparing it runs no code of numpy's or torch's)."""
    if type(value) in (int, str, bytes, bool) or value is None:
        return True
    if depth and type(value) is tuple:
        return all(_plain(v, depth - 1) for v in value)
    if depth and type(value) is dict:
        return all(_plain(k, 0) and _plain(v, depth - 1)
                   for k, v in value.items())
    return False


def _data(value: Any, what: str) -> bytes:
    if type(value) not in (bytes, bytearray):
        raise Refused(f'{what} is {describe(value)}, not bytes')
    return value


# ------------------------------------------------------------- builtins
def _ordered_dict(args: tuple, budget: Budget) -> OrderedDict:
    _args(args, 'collections.OrderedDict', 0)
    budget.charge(128)
    return OrderedDict()


def _counter(args: tuple, budget: Budget) -> Counter:
    """``Counter(dict)``: the milestones of MMEngine's MultiStepLR."""
    args = _args(args, 'collections.Counter', 0, 1)
    counts = args[0] if args else {}
    if type(counts) is not dict:
        raise Refused(f'it builds a Counter from {describe(counts)}')
    budget.charge(128 + 128 * len(counts))
    return Counter(counts)


def _set_items(args: tuple, budget: Budget, name: str) -> list:
    items = _args(args, name, 0, 1)
    if not items:
        return []
    items = items[0]
    if type(items) is not list:
        raise Refused(f'it builds a {name} from {describe(items)}')
    for item in items:
        budget.check_key(item)
    budget.charge(256 + 128 * len(items))
    return items


def _set(args: tuple, budget: Budget) -> set:
    return set(_set_items(args, budget, 'set'))


def _frozenset(args: tuple, budget: Budget) -> frozenset:
    return frozenset(_set_items(args, budget, 'frozenset'))


def _bytes(args: tuple, budget: Budget) -> bytes:
    # Pickle protocol 2 writes an empty ``bytes`` as ``bytes()``.
    _args(args, 'bytes', 0)
    return b''


def _latin1(args: tuple, name: str) -> bytes:
    text, encoding = args
    if type(text) is not str or encoding not in ('latin1', 'latin-1'):
        raise Refused(f'it calls {name} with {describe(text)} and '
                      f'{describe(encoding)}; only latin-1 text is decoded')
    try:
        return text.encode('latin-1')
    except UnicodeEncodeError:
        raise Refused(f'it calls {name} with text that is not latin-1')


def _encode(args: tuple, budget: Budget) -> bytes:
    """``_codecs.encode(text, 'latin1')``: how protocol 2 writes bytes."""
    _args(args, '_codecs.encode', 2)
    data = _latin1(args, '_codecs.encode')
    budget.charge(sys.getsizeof(data))
    return data


def _bytearray(args: tuple, budget: Budget) -> bytearray:
    args = _args(args, 'bytearray', 0, 1, 2)
    if len(args) == 2:
        data = _latin1(args, 'bytearray')
    elif len(args) == 1:
        data = _data(args[0], 'the bytearray argument')
    else:
        data = b''
    budget.charge(sys.getsizeof(data) + 64)
    return bytearray(data)


def _complex(args: tuple, budget: Budget) -> complex:
    real, imag = _args(args, 'complex', 2)
    if type(real) not in (int, float) or type(imag) not in (int, float):
        raise Refused('it builds a complex number from '
                      f'{describe(real)} and {describe(imag)}')
    budget.charge(32)
    return complex(real, imag)


_STATISTICS = frozenset({'min', 'max', 'mean', 'current'})


def _getattr(args: tuple, budget: Budget) -> Statistic:
    """``getattr`` as MMEngine's ``HistoryBuffer`` pickles its statistics.

    Only ``getattr(HistoryBuffer, name)`` for the four statistics MMEngine
    defines; the result is a marker that only a ``HistoryBuffer`` state
    accepts.
    """
    obj, name = _args(args, 'getattr', 2)
    if obj is not HistoryBuffer or type(name) is not str \
            or name not in _STATISTICS:
        if isinstance(obj, type):
            owner = obj.__name__
        elif isinstance(obj, Constructor):
            owner = obj.name
        else:
            owner = describe(obj)
        raise Refused(f'it calls getattr({owner}, {describe(name)}), a '
                      'look-up MMEngine checkpoints never make')
    return Statistic(name)


# ---------------------------------------------------------------- torch
_DEVICE_RE = re.compile(r'[a-z_]{1,16}(:\d{1,4})?$')


def _device(args: tuple, budget: Budget) -> torch.device:
    args = _args(args, 'torch.device', 1, 2)
    if type(args[0]) is not str or not _DEVICE_RE.match(args[0]):
        raise Refused(f'it names the device {describe(args[0])}')
    if len(args) == 2:
        _int(args[1], 'the device index', 0, 1 << 16)
    budget.charge(64)
    return torch.device(*args)


def _size(args: tuple, budget: Budget) -> torch.Size:
    (dims, ) = _args(args, 'torch.Size', 1)
    dims = _ints(dims, 'a torch.Size')
    budget.charge(64 + 8 * len(dims))
    return torch.Size(dims)


# A tensor's Python object and TensorImpl over a storage it shares (bytes,
# measured on CPU and rounded up).
_TENSOR = 1024


def _no_hooks(hooks: Any) -> None:
    if type(hooks) not in (dict, OrderedDict) or hooks:
        raise Refused(f'a tensor carries backward hooks ({describe(hooks)})')


def _rebuild_tensor_v2(args: tuple, budget: Budget) -> torch.Tensor:
    """A tensor over a storage the checkpoint holds, checked to fit."""
    args = _args(args, 'torch._utils._rebuild_tensor_v2', 6, 7)
    storage, offset, size, stride, requires_grad, hooks = args[:6]
    metadata = args[6] if len(args) == 7 else None
    if not isinstance(storage, torch.storage.TypedStorage):
        raise Refused(f'a tensor is built over {describe(storage)}, not a '
                      'storage of the checkpoint')
    _int(offset, 'a tensor offset')
    size = _ints(size, 'a tensor size')
    stride = _ints(stride, 'a tensor stride')
    if len(size) != len(stride):
        raise Refused(f'a tensor has {len(size)} sizes but {len(stride)} '
                      'strides')
    _bool(requires_grad, 'requires_grad')
    _no_hooks(hooks)
    if metadata is not None:
        if type(metadata) is not dict or len(metadata) > 8 or any(
                type(k) is not str or type(v) is not bool
                for k, v in metadata.items()):
            raise Refused('a tensor has metadata other than a few flags')
    # The last element must lie inside the storage (Python ints: no
    # overflow, whatever the file says).
    if all(size):
        end = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    else:
        end = offset
    numel = storage._size()  # size() warns that TypedStorage is old
    if end > numel:
        raise Refused(f'a tensor of size {size} and stride {stride} at '
                      f'offset {offset} reaches past its storage of {numel} '
                      'elements')
    budget.charge(_TENSOR)
    return torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
                                           requires_grad, hooks, metadata)


def _rebuild_parameter(args: tuple, budget: Budget) -> torch.nn.Parameter:
    data, requires_grad, hooks = _args(args, 'torch._utils._rebuild_parameter',
                                       3)
    if type(data) is not torch.Tensor:
        raise Refused(f'a parameter is built from {describe(data)}')
    _bool(requires_grad, 'requires_grad')
    _no_hooks(hooks)
    budget.charge(_TENSOR)
    return torch._utils._rebuild_parameter(data, requires_grad, hooks)


# ---------------------------------------------------------------- numpy
# Type strings numpy writes for the numeric kinds (kind, item size).
_NUMERIC = {
    'b': (1, ),
    'i': (1, 2, 4, 8),
    'u': (1, 2, 4, 8),
    'f': (2, 4, 8),
    'c': (8, 16),
}
_TIME_UNITS = frozenset(
    {'Y', 'M', 'W', 'D', 'h', 'm', 's', 'ms', 'us', 'ns', 'ps', 'fs', 'as',
     'generic'})
_TYPESTR_RE = re.compile(r'([biufcUSMm])(\d{1,10})$')


class _DtypeRecipe(Recipe):
    """``numpy.dtype(typestr, align, copy)`` waiting for its state."""

    def __init__(self, typestr: str, align: bool, copy: bool):
        self.args = (typestr, align, copy)

    def build(self, state: Any, budget: Budget) -> np.dtype:
        typestr = self.args[0]
        if type(state) is not tuple or len(state) not in (8, 9) \
                or not _plain(state):
            raise self._odd_state()
        endian = state[1]
        if endian not in ('<', '>', '|'):
            raise Refused(f'the numpy dtype {describe(typestr)} has byte '
                          f'order {describe(endian)}')
        kind, size = _TYPESTR_RE.match(typestr).groups()
        size = int(size)
        if kind in 'Mm':
            spec = endian + kind + '8' + self._time_unit(state)
        elif kind in 'US':
            if not 0 <= size < 1 << 24:
                raise Refused(f'the numpy dtype {typestr} has an item size '
                              'out of range')
            spec = f'{endian}{kind}{size}'
        elif size in _NUMERIC[kind]:
            spec = f'{endian}{kind}{size}'
        else:
            raise Refused(f'the numpy dtype {typestr} is not one this '
                          'loader rebuilds')
        dtype = np.dtype(spec)
        # The file's arguments and state must be exactly what numpy writes
        # for the dtype we built: anything else (an object flag, fields,
        # a sub-array, another item size) is refused.
        _, args, expected = dtype.__reduce__()
        if self.args != args or state != expected:
            raise self._odd_state()
        budget.charge(128)
        return dtype

    def _odd_state(self) -> Refused:
        return Refused(f'the numpy dtype {describe(self.args[0])} comes with '
                       'arguments or state numpy does not write for it '
                       '(fields, sub-arrays, object flags or another item '
                       'size)')

    def _time_unit(self, state: tuple) -> str:
        meta = state[8] if len(state) == 9 else None
        if not (type(meta) is tuple and len(meta) == 2
                and type(meta[1]) is tuple and len(meta[1]) == 4):
            raise Refused('a numpy datetime dtype has no time unit')
        unit, num = meta[1][:2]
        unit = unit.decode('ascii', 'replace') if type(unit) is bytes else ''
        if unit not in _TIME_UNITS:
            raise Refused(f'a numpy datetime dtype has the unit {unit!r}')
        _int(num, 'a datetime unit multiplier', 1, (1 << 31) - 1)
        if unit == 'generic':
            return ''
        return f'[{num}{unit}]' if num != 1 else f'[{unit}]'


def _dtype(args: tuple, budget: Budget) -> _DtypeRecipe:
    typestr, align, copy = _args(args, 'numpy.dtype', 3)
    if type(typestr) is not str or not _TYPESTR_RE.match(typestr):
        raise Refused(f'it asks for the numpy dtype {describe(typestr)}, '
                      'which is not a number, string or datetime type')
    return _DtypeRecipe(typestr, _bool(align, 'align'), _bool(copy, 'copy'))


def _check_content(data: bytes, dtype: np.dtype) -> None:
    """Values numpy would turn into Python objects must be well formed."""
    if dtype.kind == 'b' and data and max(data) > 1:
        raise Refused('a numpy bool holds a byte other than 0 or 1')
    if dtype.kind == 'U':
        codec = 'utf-32-be' if dtype.byteorder == '>' else 'utf-32-le'
        try:
            str(data, codec)
        except UnicodeDecodeError:
            raise Refused('a numpy string holds invalid code points')


def _scalar(args: tuple, budget: Budget) -> np.generic:
    """``numpy.core.multiarray.scalar(dtype, data)``."""
    dtype, data = _args(args, 'numpy scalar', 2)
    if not isinstance(dtype, np.dtype):
        raise Refused(f'a numpy scalar has the dtype {describe(dtype)}')
    data = _data(data, 'the data of a numpy scalar')
    if len(data) != dtype.itemsize:
        raise Refused(f'a numpy {dtype} scalar comes with {len(data)} bytes')
    _check_content(data, dtype)
    budget.charge(64 + 2 * len(data))
    if not data:  # an empty numpy string
        return dtype.type()
    return np.frombuffer(data, dtype=dtype)[0]


def _array(shape: Any, dtype: Any, fortran: bool, data: Any,
           budget: Budget, view: bool = False) -> np.ndarray:
    """A numpy array over a buffer checked against its dtype and shape.

    As numpy unpickles them: a copy in native byte order (protocol < 5), or
    a view of the pickled buffer (``view``, protocol 5).
    """
    shape = _ints(shape, 'a numpy array shape', 32)
    if not isinstance(dtype, np.dtype):
        raise Refused(f'a numpy array has the dtype {describe(dtype)}')
    data = _data(data, 'the data of a numpy array')
    count = 1
    for n in shape:
        count *= n
    if count and not dtype.itemsize:
        raise Refused(f'a numpy array of shape {shape} has items of size 0')
    if count * dtype.itemsize != len(data):
        raise Refused(f'a numpy {dtype} array of shape {shape} comes with '
                      f'{len(data)} bytes')
    _check_content(data, dtype)
    budget.charge(112 + (0 if view else len(data)))
    order = 'F' if fortran else 'C'
    native = dtype if view or dtype.isnative else dtype.newbyteorder('=')
    if count == 0:
        return np.empty(shape, dtype=native, order=order)
    array = np.frombuffer(data, dtype=dtype, count=count).reshape(
        shape, order=order)
    return array if view else array.astype(native, order='K', copy=True)


class _ArrayRecipe(Recipe):
    """``_reconstruct(ndarray, (0,), b'b')`` waiting for its state."""

    def build(self, state: Any, budget: Budget) -> np.ndarray:
        if type(state) is not tuple or len(state) != 5 or state[0] != 1:
            raise Refused(f'a numpy array has the state {describe(state)}, '
                          'not what numpy writes')
        _, shape, dtype, fortran, data = state
        return _array(shape, dtype, _bool(fortran, 'fortran order'), data,
                      budget)


def _reconstruct(args: tuple, budget: Budget) -> _ArrayRecipe:
    cls, shape, typecode = _args(args, 'numpy _reconstruct', 3)
    if cls is not np.ndarray or shape != (0, ) or typecode != b'b':
        raise Refused('it reconstructs a numpy array with '
                      f'{describe(cls)}, not a plain ndarray')
    return _ArrayRecipe()


def _frombuffer(args: tuple, budget: Budget) -> np.ndarray:
    """``numpy.core.numeric._frombuffer``: arrays in pickle protocol 5."""
    data, dtype, shape, order = _args(args, 'numpy _frombuffer', 4)
    if order not in ('C', 'F'):
        raise Refused(f'a numpy array has the order {describe(order)}')
    return _array(shape, dtype, order == 'F', data, budget, view=True)


# ------------------------------------------------------- HistoryBuffer
class _HistoryBufferRecipe(Recipe):
    """``HistoryBuffer.__new__`` waiting for its state."""

    _KEYS = frozenset({'max_length', '_log_history', '_count_history'})

    def build(self, state: Any, budget: Budget) -> HistoryBuffer:
        if type(state) is not dict or \
                set(state) - {'statistics_methods'} != self._KEYS:
            keys = sorted(map(describe, state)) if type(state) is dict \
                else describe(state)
            raise Refused(f'a HistoryBuffer has the state {keys}, not what '
                          'MMEngine writes')
        max_length = _int(state['max_length'], 'max_length', 1, 1 << 40)
        logs, counts = state['_log_history'], state['_count_history']
        for array in (logs, counts):
            if type(array) is not np.ndarray or array.ndim != 1 \
                    or array.dtype.kind not in 'biuf':
                raise Refused('a HistoryBuffer holds something other than '
                              'a 1-d numeric numpy array')
        if len(logs) != len(counts) or len(logs) > max_length:
            raise Refused('a HistoryBuffer has histories of unequal length '
                          'or longer than its max_length')
        methods = state.get('statistics_methods', {})
        if type(methods) is not dict or any(
                type(v) is not Statistic or v.name != k
                for k, v in methods.items()):
            raise Refused('a HistoryBuffer registers statistics methods '
                          'other than MMEngine\'s own min, max, mean and '
                          'current')
        budget.charge(256 + logs.nbytes + counts.nbytes)
        # The public constructor: it copies the arrays and registers only
        # MMEngine's four default statistics; nothing from the file
        # reaches the class-wide registry.
        return HistoryBuffer(logs, counts, max_length)


def new_object(cls: Any, args: Any) -> Recipe:
    """``cls.__new__(cls, *args)`` (pickle's ``NEWOBJ``): HistoryBuffer
    only."""
    if cls is HistoryBuffer and args == ():
        return _HistoryBufferRecipe()
    name = cls.__name__ if isinstance(cls, type) else describe(cls)
    raise Refused(f'it creates an instance of {name}, which is not part of '
                  'a checkpoint')


def build_ordered_dict(inst: OrderedDict, state: Any) -> None:
    """``BUILD`` on an ``OrderedDict``: torch's state dicts carry their
    ``_metadata`` (module versions) as an attribute."""
    if type(state) is not dict or set(state) - {'_metadata'}:
        raise Refused('an OrderedDict has attributes other than _metadata')
    inst.__dict__.update(state)


# --------------------------------------------------------- name table
def _table() -> Dict[Tuple[str, str], Any]:
    table: Dict[Tuple[str, str], Any] = {}

    def add(names, value):
        for name in names:
            module, _, attr = name.rpartition('.')
            table[module, attr] = value

    def constructor(fn, *names):
        add(names, Constructor(names[0], fn))

    constructor(_ordered_dict, 'collections.OrderedDict')
    constructor(_counter, 'collections.Counter')
    for fn, attr in ((_set, 'set'), (_frozenset, 'frozenset'),
                     (_bytes, 'bytes'), (_bytearray, 'bytearray'),
                     (_complex, 'complex'), (_getattr, 'getattr')):
        # Protocol 2 writes Python 3's builtins under Python 2's name.
        constructor(fn, f'builtins.{attr}', f'__builtin__.{attr}')
    constructor(_encode, '_codecs.encode')
    constructor(_rebuild_tensor_v2, 'torch._utils._rebuild_tensor_v2')
    constructor(_rebuild_parameter, 'torch._utils._rebuild_parameter')
    constructor(_size, 'torch.Size')
    constructor(_device, 'torch.device')
    for attr in dir(torch):
        if isinstance(getattr(torch, attr), torch.dtype):
            add([f'torch.{attr}'], getattr(torch, attr))
    # numpy 1 and numpy 2 name the same functions differently.
    constructor(_dtype, 'numpy.dtype')
    constructor(_scalar, 'numpy.core.multiarray.scalar',
                'numpy._core.multiarray.scalar')
    constructor(_reconstruct, 'numpy.core.multiarray._reconstruct',
                'numpy._core.multiarray._reconstruct')
    constructor(_frombuffer, 'numpy.core.numeric._frombuffer',
                'numpy._core.numeric._frombuffer')
    add(['numpy.ndarray'], np.ndarray)
    module = 'mmengine.logging.history_buffer'
    add([f'{module}.HistoryBuffer'], HistoryBuffer)
    for stat in _STATISTICS:
        # Protocol >= 4 names the method itself.
        table[module, f'HistoryBuffer.{stat}'] = Statistic(stat)
    return table


_GLOBALS = _table()


def resolve(module: Any, name: Any) -> Any:
    """What ``GLOBAL module name`` means in a checkpoint; refuse the rest."""
    value: Optional[Any] = None
    if type(module) is str and type(name) is str:
        value = _GLOBALS.get((module, name))
    if value is None:
        what = f'{module}.{name}' if type(module) is str and type(
            name) is str else f'{describe(module)}.{describe(name)}'
        raise Refused(
            f'it asks the unpickler for {describe(what, 120)}, which is not '
            'a tensor, number, string, numpy value or part of an MMEngine '
            'checkpoint')
    return value
