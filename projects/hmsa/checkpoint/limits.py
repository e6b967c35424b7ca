"""Bounds on the memory and time one checkpoint may take to load."""
from dataclasses import dataclass

from .errors import Refused, describe

GiB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """How much a checkpoint may cost to load.

    Args:
        extra_bytes (int): Memory the loader may spend beyond the tensor
            data stored uncompressed in the file: everything the pickle
            builds (containers, strings, numpy arrays) and every compressed
            zip member, decompressed. A file may always use as much as its
            own size. Defaults to 1 GiB.
        same_hash_keys (int): How many different dict or set keys may share
            one hash value. Keys crafted to collide make inserting them
            quadratic; real checkpoints practically never have two.
            Defaults to 16.
        small_record_bytes (int): Largest size of the zip's bookkeeping
            records (``version``, ``byteorder``, ...). Defaults to 64.
    """
    extra_bytes: int = GiB
    same_hash_keys: int = 16
    small_record_bytes: int = 64


DEFAULT_LIMITS = Limits()

# Largest int accepted as a dict or set key: hashing a big int takes time
# proportional to its size, and a file can insert one key many times.
_MAX_KEY_INT = 1 << 128


class Budget:
    """Memory accounting and key-collision guard for one load.

    Args:
        limits (Limits): The bounds.
        file_size (int): Size of the file on disk in bytes.
    """

    def __init__(self, limits: Limits, file_size: int):
        self.limits = limits
        self.allowed = max(limits.extra_bytes, file_size)
        self.left = self.allowed
        # hash value -> the distinct keys seen with it (usually one)
        self._keys_by_hash: dict = {}

    def charge(self, nbytes: int) -> None:
        """Account for ``nbytes`` more bytes; refuse beyond the bound."""
        self.left -= nbytes
        if self.left < 0:
            raise Refused(
                f'loading it would take more than {self.allowed} bytes of '
                'memory beyond the tensor data it stores (the bound is the '
                f'larger of {self.limits.extra_bytes} bytes and the size of '
                'the file)')

    def check_key(self, key) -> None:
        """Refuse a dict or set key that could make insertion slow.

        Keys are plain scalars; no more than ``same_hash_keys`` different
        keys may share a hash value in the whole file.
        """
        kind = type(key)
        if kind is int:
            if not -_MAX_KEY_INT < key < _MAX_KEY_INT:
                raise Refused('it has a dict or set key that is an integer '
                              f'of {key.bit_length()} bits')
        elif kind not in (str, bytes, float, bool) and key is not None:
            raise Refused(f'it has a dict or set key that is {describe(key)}'
                          '; only strings, bytes, numbers and None are '
                          'accepted as keys')
        value = hash(key)
        seen = self._keys_by_hash.get(value)
        if seen is None:
            self._keys_by_hash[value] = [key]
            self.charge(256)  # a dict entry and a one-item list
            return
        for other in seen:
            if type(other) is kind and other == key:
                return
        seen.append(key)
        self.charge(16)
        if len(seen) > self.limits.same_hash_keys:
            raise Refused(
                f'more than {self.limits.same_hash_keys} different dict or '
                'set keys in it share one hash value, a pattern made to '
                'slow loading down')
