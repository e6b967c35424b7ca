"""Hand-made pickles and zips for the checkpoint tests (protocol 2, the
opcodes ``torch.save`` writes)."""
import io
import struct
import zipfile
import zlib

MARK, STOP, REDUCE, BUILD, SETITEMS = b'(', b'.', b'R', b'b', b'u'
EMPTY_DICT, TUPLE, NONE, FALSE = b'}', b't', b'N', b'\x89'
ODICT = b'ccollections\nOrderedDict\n)R'


def glob(module: str, name: str) -> bytes:
    return f'c{module}\n{name}\n'.encode()


def text(value: str) -> bytes:
    data = value.encode()
    return b'X' + struct.pack('<I', len(data)) + data


def num(value: int) -> bytes:
    data = value.to_bytes(value.bit_length() // 8 + 1, 'little', signed=True)
    return b'\x8a' + bytes([len(data)]) + data


def tup(*items: bytes) -> bytes:
    return MARK + b''.join(items) + TUPLE


def raw(data: bytes) -> bytes:
    """Bytes as protocol 2 writes them: ``_codecs.encode(text, 'latin1')``."""
    return glob('_codecs', 'encode') + tup(
        text(data.decode('latin-1')), text('latin1')) + REDUCE


def call(func: bytes, *args: bytes) -> bytes:
    return func + tup(*args) + REDUCE


def pickle(body: bytes) -> bytes:
    return b'\x80\x02' + body + STOP


def storage(key: str, numel: int, kind: str = 'FloatStorage') -> bytes:
    pid = tup(text('storage'), glob('torch', kind), text(key), text('cpu'),
              num(numel))
    return pid + b'Q'


def tensor(key: str, numel: int, size: tuple, stride: tuple) -> bytes:
    return call(glob('torch._utils', '_rebuild_tensor_v2'),
                storage(key, numel), num(0), tup(*map(num, size)),
                tup(*map(num, stride)), FALSE, ODICT)


def dtype(typestr: str, state: bytes) -> bytes:
    return call(glob('numpy', 'dtype'), text(typestr), FALSE,
                b'\x88') + state + BUILD


def f8_state() -> bytes:
    return tup(num(3), text('<'), NONE, NONE, NONE, num(-1), num(-1), num(0))


def torch_zip(data_pkl: bytes, records: dict = None,
              compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip laid out as ``torch.save`` writes it."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', compression) as archive:
        archive.writestr('archive/data.pkl', data_pkl)
        archive.writestr('archive/byteorder', 'little')
        for key, data in (records or {}).items():
            archive.writestr(f'archive/data/{key}', data)
        archive.writestr('archive/version', '3\n')
    return out.getvalue()


def central_entries(data: bytes):
    """Offsets of the central directory entries of a small zip."""
    start = struct.unpack('<I', data[-6:-2])[0]
    while data[start:start + 4] == b'PK\x01\x02':
        yield start
        n, m, k = struct.unpack('<3H', data[start + 28:start + 34])
        start += 46 + n + m + k


def patch_entries(data: bytes, offset: int, fmt: str, value) -> bytes:
    """Set one field of every central directory entry."""
    data = bytearray(data)
    for entry in central_entries(bytes(data)):
        struct.pack_into(fmt, data, entry + offset, value)
    return bytes(data)


def deflate_bomb(mebibytes: int, declared: int = None) -> bytes:
    """A zip whose one deflated member unpacks to ``mebibytes`` MiB of
    zeros (its stream is one flushed block repeated: built in no time),
    and declares ``declared`` bytes (default: the truth)."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = squeeze.compress(bytes(1 << 20)) + squeeze.flush(
        zlib.Z_FULL_FLUSH)
    stream = block * mebibytes + b'\x03\x00'
    name = b'archive/data/0'
    size = mebibytes << 20 if declared is None else declared
    local = struct.pack('<4s5H3I2H', b'PK\x03\x04', 20, 0, 8, 0, 0, 0,
                        len(stream), size & 0xFFFFFFFF, len(name), 0)
    central = struct.pack('<4s6H3I5H2I', b'PK\x01\x02', 20, 20, 0, 8, 0, 0,
                          0, len(stream), size & 0xFFFFFFFF, len(name), 0, 0,
                          0, 0, 0, 0)
    body = local + name + stream
    end = struct.pack('<4s4H2IH', b'PK\x05\x06', 0, 0, 1, 1,
                      len(central) + len(name), len(body), 0)
    return body + central + name + end


def zip64_end(entries: int, directory_size: int) -> bytes:
    """Only the end records of a zip64 archive claiming ``entries``."""
    record = struct.pack('<4sQ2H2I4Q', b'PK\x06\x06', 44, 45, 45, 0, 0,
                         entries, entries, directory_size, 0)
    locator = struct.pack('<4sIQI', b'PK\x06\x07', 0, 0, 1)
    end = struct.pack('<4s4H2IH', b'PK\x05\x06', 0, 0, 0xFFFF, 0xFFFF,
                      0xFFFFFFFF, 0xFFFFFFFF, 0)
    return record + locator + end
