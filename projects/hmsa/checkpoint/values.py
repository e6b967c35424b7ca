"""What torch's ``weights_only`` reader lacks: validating stand-ins for
the numpy and MMEngine names in MMEngine checkpoints, given to torch as
``(callable, 'module.name')`` safe globals. No numpy or MMEngine
unpickling code sees state from a file: every field's type is checked
before it is compared or used, then values are built with public
constructors. A value whose state comes in a later ``BUILD`` is a proxy
until :func:`finish` swaps in the value.
"""
import contextvars
import re
from collections import Counter, OrderedDict

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


class Refused(Exception):
    """Raised inside a load; the loader names the file."""


class Unreadable(Exception):
    """Raised inside a load: the file is damaged."""


MAX_SAME_HASH = 16
_STATS = ('min', 'max', 'mean', 'current')
_UNITS = 'Y M W D h m s ms us ns ps fs as generic'.split()


class Load:
    """One load's state: keys by hash value, and its proxies."""

    def __init__(self):
        self.buckets, self.proxies = {}, 0

    def key(self, value) -> None:
        """Refuse a 17th distinct key with one hash (quadratic dicts)."""
        bucket = self.buckets.setdefault(hash(value), [])
        if not any(type(v) is type(value) and v == value for v in bucket):
            bucket.append(value)
            if len(bucket) > MAX_SAME_HASH:
                raise Refused(f'more than {MAX_SAME_HASH} distinct keys share'
                              ' one hash value (made to slow dicts down)')


CURRENT = contextvars.ContextVar('hmsa_checkpoint_load')


def plain(value) -> bool:
    """Made of at most 64 Nones, bools, ints, strs, bytes, tuples and dicts:
    cheap and safe to compare (no tensor whose ``==`` runs long, no tuples
    shared many times over)."""
    todo, seen = [value], 0
    while todo:
        value, seen = todo.pop(), seen + 1
        if type(value) in (tuple, dict) and len(value) < 64:
            todo.extend(value if type(value) is tuple else
                        [x for item in value.items() for x in item])
        elif value is not None and type(value) not in (bool, int, str,
                                                       bytes) or seen > 64:
            return False
    return True


class _Proxy:
    """A value waiting for ``BUILD`` (torch calls ``__setstate__``)."""
    value = args = None

    def __new__(cls, *args):
        CURRENT.get().proxies += 1
        return super().__new__(cls)

    def __setstate__(self, state) -> None:
        if self.value is not None:
            raise Refused(f'{self.what} gets its state twice')
        self.value = self.build(state)


class NumpyDtype(_Proxy):
    """``numpy.dtype(typestr, align, copy)``, then its state."""
    what = 'a numpy dtype'

    def __init__(self, *args):
        self.args = args

    def build(self, state) -> np.dtype:
        args, odd = self.args, Refused(
            'a numpy dtype comes with arguments or state numpy does not '
            'write for it (object, fields, sub-array, wrong type or size)')
        if not (args and plain(args) and type(args[0]) is str and plain(state)
                and type(state) is tuple and len(state) in (8, 9)):
            raise odd
        kind = re.fullmatch(r'([biufcUSV])\d{1,7}|([Mm])8', args[0])
        if not kind:
            raise odd
        spec = (state[1] if state[1] in ('<', '>') else '') + args[0]
        if kind.group(2):  # datetime64/timedelta64: the unit is in state
            unit = state[-1][1] if len(state) == 9 and type(
                state[-1]) is tuple and len(state[-1]) == 2 else None
            if not (type(unit) is tuple and len(unit) == 4 and type(unit[0])
                    is bytes and unit[0].decode('latin-1') in _UNITS
                    and type(unit[1]) is int and 0 < unit[1] < 1 << 31):
                raise odd
            if unit[0] != b'generic':
                spec += f'[{unit[1]}{unit[0].decode()}]'
        try:
            dtype = np.dtype(spec)
        except TypeError:
            raise odd from None
        if dtype.__reduce__()[1:] != (args, state):
            raise odd
        return dtype


def _items(dtype, data, count: int) -> np.ndarray:
    """``count`` items of ``dtype`` from ``data``, checked, as a view."""
    if type(dtype) is not NumpyDtype or dtype.value is None:
        raise Refused('a numpy value has no finished numpy dtype')
    dtype = dtype.value
    if type(data) is not bytes or len(data) != count * dtype.itemsize:
        raise Refused(f'a numpy {dtype} value of {count} items comes with '
                      'data of another size or type')
    if dtype.kind == 'b' and data.strip(b'\0\1'):
        raise Refused('a numpy bool holds a byte other than 0 or 1')
    if dtype.kind == 'U':
        try:
            data.decode('utf-32-be' if dtype.byteorder == '>' else 'utf-32-le')
        except UnicodeDecodeError:
            raise Refused('a numpy string holds invalid code points') \
                from None
    if not count or not dtype.itemsize:
        return np.zeros(count, dtype)
    return np.frombuffer(data, dtype)


def numpy_scalar(dtype, data):
    """``numpy.core.multiarray.scalar(dtype, data)``."""
    items = _items(dtype, data, 1)
    value = items[0] if dtype.value.itemsize else dtype.value.type()
    if items.dtype.kind in 'biufcmM':
        CURRENT.get().key(value)  # numbers can be dict keys
    return value


class NumpyArray(_Proxy):
    """``_reconstruct(ndarray, (0,), b'b')``, then its state."""
    what = 'a numpy array'

    def build(self, state) -> np.ndarray:
        if type(state) is not tuple or len(state) != 5 or \
                type(state[0]) is not int or state[0] != 1 or \
                type(state[3]) is not bool or \
                type(state[1]) is not tuple or len(state[1]) > 32 or \
                not all(type(n) is int and n >= 0 for n in state[1]):
            raise Refused('a numpy array has a state numpy does not write')
        shape, order = state[1], 'F' if state[3] else 'C'
        items = _items(state[2], state[4], int(np.prod(shape, dtype=object)))
        dtype = items.dtype  # unpickled arrays are native, as numpy's own
        return items.reshape(shape, order=order).astype(
            dtype.newbyteorder('=') if dtype.byteorder == '>' else dtype,
            order='K')


def numpy_reconstruct(cls, shape, typecode) -> NumpyArray:
    if cls is not NumpyArray or not plain((shape, typecode)) or \
            (shape, typecode) != ((0, ), b'b'):
        raise Refused('it reconstructs something other than an ndarray')
    return NumpyArray()


class MMEngineHistoryBuffer(_Proxy):
    """``HistoryBuffer`` as MMEngine pickles it (``NEWOBJ``, state)."""
    what = 'a HistoryBuffer'

    def build(self, state) -> HistoryBuffer:
        keys = {'max_length', '_log_history', '_count_history'}
        if type(state) is not dict or not all(
                type(k) is str for k in state) or \
                set(state) - {'statistics_methods'} != keys:
            raise Refused('a HistoryBuffer has a state MMEngine does not '
                          'write')
        length, methods = state['max_length'], state.get(
            'statistics_methods', {})
        logs, counts = (state[k].value if type(state[k]) is NumpyArray
                        else None for k in ('_log_history', '_count_history'))
        if type(length) is not int or not 0 < length < 1 << 40 or \
                type(methods) is not dict or any(
                    type(k) is not str or k not in _STATS
                    or v is not getattr(HistoryBuffer, k)
                    for k, v in methods.items()) or \
                any(a is None or a.ndim != 1 or a.dtype.kind not in 'biuf'
                    or len(a) > length for a in (logs, counts)) or \
                len(logs) != len(counts):
            raise Refused('a HistoryBuffer holds a max_length, histories or '
                          'statistics methods MMEngine does not write')
        buffer = HistoryBuffer.__new__(HistoryBuffer)  # as its __setstate__
        buffer.__dict__.update(  # does, but leaving the class registry be
            (k, v.value if type(v) is NumpyArray else v)
            for k, v in state.items() if k != 'statistics_methods')
        return buffer


def history_getattr(obj, name):
    """``getattr``, only as HistoryBuffer pickles its statistics."""
    if obj is not MMEngineHistoryBuffer or type(name) is not str or \
            name not in _STATS:
        raise Refused('it calls getattr other than for HistoryBuffer.'
                      + '/'.join(_STATS))
    return getattr(HistoryBuffer, name)


def empty_bytes(*args) -> bytes:
    """``bytes()``: how protocol 2 writes ``b''``."""
    if args:
        raise Refused('it calls bytes with arguments')
    return b''


_NUMPY = ('numpy.core.multiarray', 'numpy._core.multiarray')
SAFE_GLOBALS = [
    (NumpyDtype, 'numpy.dtype'), (NumpyArray, 'numpy.ndarray'),
    (MMEngineHistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
    (history_getattr, 'builtins.getattr'), (empty_bytes, 'builtins.bytes')
] + [(numpy_scalar, f'{m}.scalar') for m in _NUMPY] + [
    (numpy_reconstruct, f'{m}._reconstruct') for m in _NUMPY]


def finish(obj, max_depth: int = 200):
    """Swap each proxy in ``obj`` for its value. Objects are visited once
    (memo by id), so shared and cyclic references cost one visit."""
    memo = {}

    def visit(obj, depth):
        if id(obj) in memo:
            return memo[id(obj)][1]
        if depth > max_depth:
            raise Refused(f'it nests containers over {max_depth} deep')
        kind, value = type(obj), obj
        if isinstance(obj, _Proxy):
            if obj.value is None:
                raise Refused(f'{obj.what} in it never gets its state')
            value = obj.value
        elif kind is tuple:
            new = tuple(visit(v, depth + 1) for v in obj)
            value = obj if all(a is b for a, b in zip(new, obj)) else new
        elif kind in (list, set, dict, OrderedDict, Counter) or isinstance(
                obj, torch.Tensor):
            memo[id(obj)] = (obj, obj)  # before the items: cycles end here
            if kind is list or kind is set:
                items = [visit(v, depth + 1) for v in obj]
                obj.clear()
                (obj.extend if kind is list else obj.update)(items)
            elif not isinstance(obj, torch.Tensor):
                items = [(visit(k, depth + 1), visit(v, depth + 1))
                         for k, v in obj.items()]
                obj.clear()
                for k, v in items:  # (Counter.update would count them)
                    obj[k] = v
            for name, attr in list(getattr(obj, '__dict__', {}).items()):
                setattr(obj, name, visit(attr, depth + 1))
        memo[id(obj)] = (obj, value)
        return value

    try:
        return visit(obj, 0)
    except TypeError as exc:  # e.g. an array as a dict key
        raise Refused(f'a value does not fit where it is ({exc})') from None
