"""A pickle reader that builds only plain data and what :mod:`.values`
allows.

It implements the pickle machine itself (protocols 2 to 5, the ones
``torch.save`` writes), so every opcode is seen before it has an effect:
containers are plain ``list``/``dict``/``tuple``/``set``; a global resolves
through :func:`.values.resolve` to an inert value or one of our validating
constructors, and only those may be called (``REDUCE``) or given state
(``BUILD``); every object is charged to a :class:`.limits.Budget` and every
dict or set key checked against hash flooding; no read goes past the end of
the data. Everything else is refused with the reason.

It has the interface ``torch.load`` expects of ``pickle_module.Unpickler``
(``find_class`` and ``persistent_load`` may be overridden, as torch's
loader does to hand out storages).
"""
import io
import pickle
import pickletools
import struct
import sys
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional

from . import values
from .errors import Refused, Unreadable, describe
from .limits import Budget

# Longest module or attribute name a GLOBAL opcode may carry.
_MAX_NAME = 256
# What objects cost in memory, in bytes, with CPython's over-allocation
# (measured on 64-bit CPython 3.11, then rounded up).
_SLOT = 16  # a reference in a list, the stack included
_NUMBER = 32  # an int or float object
_EMPTY = 80  # an empty dict or list
_EMPTY_SET = 256
_DICT_ITEM = 160  # one key-value pair in a dict
_SET_ITEM = 128
_MEMO_ENTRY = 160
_unpack = struct.unpack


class SafeUnpickler:
    """Unpickle one pickle from ``file`` under the class's ``budget``.

    Subclasses set ``budget`` (shared by every pickle of one checkpoint)
    and ``check_persistent_id`` (checks a storage reference before torch
    reads the storage); :func:`pickle_module` makes such a subclass.

    Args:
        file: Binary file positioned at the pickle.
        encoding (str): How to decode Python 2 strings, as in
            :class:`pickle.Unpickler`. Defaults to ``'ASCII'``.
        errors (str): Decoding errors, as in :class:`pickle.Unpickler`.
    """
    budget: Budget
    check_persistent_id: Optional[Callable[[Any], None]] = None

    def __init__(self, file, *, encoding: str = 'ASCII',
                 errors: str = 'strict'):
        self._file = file
        self._encoding = encoding
        self._errors = errors
        here = file.tell()
        self._left = file.seek(0, io.SEEK_END) - here
        file.seek(here)
        self._stack: List[Any] = []
        self._metastack: List[List[Any]] = []
        self._memo: Dict[int, Any] = {}
        # Recipes still waiting for BUILD: id -> (recipe, memo keys).
        self._recipes: Dict[int, tuple] = {}

    # ------------------------------------------------ overridable parts
    def find_class(self, module: str, name: str) -> Any:
        """Resolve ``GLOBAL module name``; refuse names we do not know."""
        return values.resolve(module, name)

    def persistent_load(self, pid: Any) -> Any:
        """References to storages only exist inside a checkpoint."""
        raise Refused('it references an object outside the pickle '
                      f'({describe(pid)})')

    # ----------------------------------------------------------- reading
    def _read(self, n: int) -> bytes:
        if n > self._left:
            raise Unreadable(f'the pickle is truncated (it announces {n} '
                             f'bytes, {self._left} are left)')
        data = self._file.read(n)
        if len(data) != n:
            raise Unreadable('the pickle is truncated')
        self._left -= n
        return data

    def _readline(self) -> str:
        line = self._file.readline(min(_MAX_NAME, self._left))
        self._left -= len(line)
        if not line.endswith(b'\n'):
            raise Unreadable('a global name in the pickle is truncated or '
                             'too long')
        return line[:-1].decode('utf-8')

    def load(self) -> Any:
        """Read the pickle up to its ``STOP``; return the value."""
        handlers = self._handlers()
        try:
            while True:
                code = self._read(1)[0]
                handler = handlers.get(code)
                if handler is None:
                    self._unknown(code)
                if handler() is _STOP:
                    break
            value = self._stack.pop()
        except IndexError:
            raise Unreadable('the pickle is malformed (it pops from an '
                             'empty stack)') from None
        if self._recipes:
            raise Refused('a numpy value or HistoryBuffer in it never gets '
                          'its state')
        return value

    def _unknown(self, code: int) -> None:
        op = pickletools.code2op.get(chr(code))
        if op is None:
            raise Unreadable(f'byte {code:#04x} is not a pickle opcode')
        raise Refused(f'it uses the pickle opcode {op.name}, which '
                      'checkpoints written by torch.save do not need')

    def _push(self, value: Any, size: int = 0) -> None:
        """Push ``value``, charging its slot and ``size`` new bytes."""
        self.budget.charge(_SLOT + size)
        self._stack.append(value)

    def _pop_mark(self) -> List[Any]:
        items = self._stack
        if not self._metastack:
            raise Unreadable('the pickle closes a MARK it never opened')
        self._stack = self._metastack.pop()
        return items

    def _handlers(self) -> Dict[int, Callable[[], Any]]:
        ops = {
            pickle.PROTO: self._proto, pickle.FRAME: self._frame,
            pickle.STOP: lambda: _STOP,
            pickle.MARK: self._mark, pickle.POP: self._pop,
            pickle.POP_MARK: self._pop_mark, pickle.DUP: self._dup,
            pickle.NONE: lambda: self._push(None),
            pickle.NEWTRUE: lambda: self._push(True),
            pickle.NEWFALSE: lambda: self._push(False),
            pickle.BININT: lambda: self._int(_unpack('<i', self._read(4))[0]),
            pickle.BININT1: lambda: self._int(self._read(1)[0]),
            pickle.BININT2: lambda: self._int(_unpack('<H', self._read(2))[0]),
            pickle.LONG1: lambda: self._long(self._read(1)[0]),
            pickle.LONG4: lambda: self._long(_unpack('<i', self._read(4))[0]),
            pickle.BINFLOAT:
            lambda: self._push(_unpack('>d', self._read(8))[0], _NUMBER),
            pickle.SHORT_BINUNICODE: lambda: self._unicode('<B'),
            pickle.BINUNICODE: lambda: self._unicode('<I'),
            pickle.BINUNICODE8: lambda: self._unicode('<Q'),
            pickle.SHORT_BINSTRING: lambda: self._string('<B'),
            pickle.BINSTRING: lambda: self._string('<i'),
            pickle.SHORT_BINBYTES: lambda: self._bytes('<B', bytes),
            pickle.BINBYTES: lambda: self._bytes('<I', bytes),
            pickle.BINBYTES8: lambda: self._bytes('<Q', bytes),
            pickle.BYTEARRAY8: lambda: self._bytes('<Q', bytearray),
            pickle.EMPTY_LIST: lambda: self._push([], _EMPTY),
            pickle.EMPTY_DICT: lambda: self._push({}, _EMPTY),
            pickle.EMPTY_TUPLE: lambda: self._push(()),
            pickle.EMPTY_SET: lambda: self._push(set(), _EMPTY_SET),
            pickle.APPEND: self._append, pickle.APPENDS: self._appends,
            pickle.SETITEM: self._setitem, pickle.SETITEMS: self._setitems,
            pickle.ADDITEMS: self._additems,
            pickle.FROZENSET: self._frozenset,
            pickle.TUPLE: lambda: self._tuple(self._pop_mark()),
            pickle.TUPLE1: lambda: self._tuple(self._popn(1)),
            pickle.TUPLE2: lambda: self._tuple(self._popn(2)),
            pickle.TUPLE3: lambda: self._tuple(self._popn(3)),
            pickle.BINGET: lambda: self._get(self._read(1)[0]),
            pickle.LONG_BINGET: lambda: self._get(
                _unpack('<I', self._read(4))[0]),
            pickle.BINPUT: lambda: self._put(self._read(1)[0]),
            pickle.LONG_BINPUT: lambda: self._put(
                _unpack('<I', self._read(4))[0]),
            pickle.MEMOIZE: lambda: self._put(len(self._memo)),
            pickle.GLOBAL: self._global,
            pickle.STACK_GLOBAL: self._stack_global,
            pickle.REDUCE: self._reduce, pickle.NEWOBJ: self._newobj,
            pickle.BUILD: self._build, pickle.BINPERSID: self._binpersid,
        }
        return {code[0]: handler for code, handler in ops.items()}

    # ----------------------------------------------------------- opcodes
    def _proto(self) -> None:
        if self._read(1)[0] > pickle.HIGHEST_PROTOCOL:
            raise Unreadable('the pickle has an unknown protocol')

    def _frame(self) -> None:
        self._read(8)  # a hint for buffering only

    def _mark(self) -> None:
        self.budget.charge(_EMPTY)
        self._metastack.append(self._stack)
        self._stack = []

    def _pop(self) -> None:
        if self._stack:
            self._stack.pop()
        else:
            self._pop_mark()

    def _dup(self) -> None:
        self._push(self._complete(self._stack[-1]))

    def _int(self, value: int) -> None:
        self._push(value, _NUMBER)

    def _long(self, n: int) -> None:
        if n < 0:
            raise Unreadable('the pickle has an integer of negative length')
        self._push(int.from_bytes(self._read(n), 'little', signed=True),
                   _NUMBER + n)

    def _length(self, fmt: str) -> int:
        n = _unpack(fmt, self._read(struct.calcsize(fmt)))[0]
        if n < 0:
            raise Unreadable('the pickle has a string of negative length')
        return n

    def _unicode(self, fmt: str) -> None:
        text = str(self._read(self._length(fmt)), 'utf-8', 'surrogatepass')
        self._push(text, sys.getsizeof(text))

    def _string(self, fmt: str) -> None:
        # Python 2's str, decoded as pickle.Unpickler does.
        data = self._read(self._length(fmt))
        if self._encoding != 'bytes':
            data = data.decode(self._encoding, self._errors)
        self._push(data, sys.getsizeof(data))

    def _bytes(self, fmt: str, kind: type) -> None:
        data = kind(self._read(self._length(fmt)))
        self._push(data, sys.getsizeof(data))

    def _popn(self, n: int) -> List[Any]:
        if len(self._stack) < n:
            raise Unreadable('the pickle pops more than its stack holds')
        items = self._stack[-n:]
        del self._stack[-n:]
        return items

    def _tuple(self, items: List[Any]) -> None:
        self._push(tuple(items), _EMPTY + _SLOT * len(items))

    def _target(self, kinds: tuple, op: str) -> Any:
        target = self._stack[-1]
        if type(target) not in kinds:
            raise Refused(f'it applies {op} to {describe(target)}')
        return target

    def _append(self) -> None:
        value = self._stack.pop()
        self._target((list, ), 'APPEND').append(value)
        self.budget.charge(_SLOT)

    def _appends(self) -> None:
        items = self._pop_mark()
        self._target((list, ), 'APPENDS').extend(items)
        self.budget.charge(_SLOT * len(items))

    def _setitems_from(self, items: List[Any]) -> None:
        target = self._target((dict, OrderedDict), 'SETITEMS')
        if len(items) % 2:
            raise Unreadable('the pickle sets a dict item without a value')
        check = self.budget.check_key
        for i in range(0, len(items), 2):
            check(items[i])
            target[items[i]] = items[i + 1]
        self.budget.charge(_DICT_ITEM * len(items) // 2)

    def _setitem(self) -> None:
        self._setitems_from(self._popn(2))

    def _setitems(self) -> None:
        self._setitems_from(self._pop_mark())

    def _additems(self) -> None:
        items = self._pop_mark()
        target = self._target((set, ), 'ADDITEMS')
        for item in items:
            self.budget.check_key(item)
            target.add(item)
        self.budget.charge(_SET_ITEM * len(items))

    def _frozenset(self) -> None:
        items = self._pop_mark()
        for item in items:
            self.budget.check_key(item)
        self._push(frozenset(items), _EMPTY_SET + _SET_ITEM * len(items))

    def _complete(self, value: Any) -> Any:
        if isinstance(value, values.Recipe):
            raise Refused('it uses a numpy value or HistoryBuffer before '
                          'its state is set')
        return value

    def _get(self, key: int) -> None:
        if key not in self._memo:
            raise Unreadable(f'the pickle recalls memo entry {key}, never '
                             'stored')
        self._push(self._complete(self._memo[key]))

    def _put(self, key: int) -> None:
        if not self._stack:
            raise Unreadable('the pickle stores an empty stack in its memo')
        value = self._stack[-1]
        self._memo[key] = value
        self.budget.charge(_MEMO_ENTRY)
        if id(value) in self._recipes:
            self._recipes[id(value)][1].append(key)

    def _global(self) -> None:
        module = self._readline()
        name = self._readline()
        self._push(self.find_class(module, name))

    def _stack_global(self) -> None:
        module, name = self._popn(2)
        if type(module) is not str or type(name) is not str:
            raise Unreadable('STACK_GLOBAL names are not strings')
        self._push(self.find_class(module, name))

    def _pending(self, value: Any) -> Any:
        if isinstance(value, values.Recipe):
            self._recipes[id(value)] = (value, [])
        return value

    def _reduce(self) -> None:
        args = self._stack.pop()
        func = self._stack[-1]
        if type(func) is not values.Constructor:
            raise Refused(f'it calls {_name(func)}, which is not a '
                          'constructor of checkpoint values')
        if type(args) is not tuple:
            raise Refused(f'it calls {func.name} with {describe(args)}')
        self._stack[-1] = self._pending(func(args, self.budget))

    def _newobj(self) -> None:
        args = self._stack.pop()
        cls = self._stack.pop()
        self._push(self._pending(values.new_object(cls, args)), _EMPTY)

    def _build(self) -> None:
        state = self._stack.pop()
        target = self._stack[-1]
        if type(target) is OrderedDict:
            values.build_ordered_dict(target, state)
            return
        entry = self._recipes.pop(id(target), None)
        if entry is None or entry[0] is not target:
            raise Refused(f'it sets the state of {_name(target)}, which '
                          'takes none in a checkpoint')
        built = target.build(state, self.budget)
        self._stack[-1] = built
        for key in entry[1]:
            if self._memo.get(key) is target:
                self._memo[key] = built

    def _binpersid(self) -> None:
        pid = self._stack.pop()
        if self.check_persistent_id is None:
            raise Refused('it references an object outside the pickle')
        self.check_persistent_id(pid)
        self._push(self.persistent_load(pid), 256)


_STOP = object()


def _name(value: Any) -> str:
    if isinstance(value, type):
        return f'{value.__module__}.{value.__qualname__}'
    return describe(value)


class _PickleModule:
    """What ``torch.load(pickle_module=...)`` uses: ``Unpickler``, ``load``.

    Args:
        budget (Budget): Shared by every pickle of the file.
        check_persistent_id (callable): Checks a storage reference before
            torch allocates and reads the storage.
    """
    __name__ = 'hmsa_safe_unpickler'

    def __init__(self, budget: Budget,
                 check_persistent_id: Callable[[Any], None]):
        self.Unpickler = type(
            'Unpickler', (SafeUnpickler, ),
            dict(budget=budget,
                 check_persistent_id=staticmethod(check_persistent_id)))

    def load(self, file, **kwargs) -> Any:
        """Unpickle one pickle from ``file`` (torch's legacy format reads
        several in a row)."""
        return self.Unpickler(file, **kwargs).load()


def pickle_module(budget: Budget,
                  check_persistent_id: Callable[[Any], None]) -> Any:
    """A pickle module for ``torch.load`` that reads with
    :class:`SafeUnpickler` under ``budget``."""
    return _PickleModule(budget, check_persistent_id)
