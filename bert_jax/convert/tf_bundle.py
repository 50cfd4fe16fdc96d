"""TensorFlow's checkpoint files (the "tensor bundle"), read and written with numpy alone.

A checkpoint ``PREFIX`` is ``PREFIX.index`` plus ``PREFIX.data-00000-of-0000N``:

* the index is a LevelDB-format table (SSTable): data blocks of prefix-compressed
  sorted keys with restart points, an index block pointing at them, and a 48-byte
  footer (metaindex and index block handles, magic number). Each block is followed
  by a compression byte (0 none, 1 snappy) and the masked crc32c of block + byte.
* each key is a tensor name and its value a ``BundleEntryProto`` (dtype, shape,
  shard id, offset, size, masked crc32c of the tensor bytes); the key "" holds a
  ``BundleHeaderProto`` (number of shards, endianness, format version).
* the data files hold the raw tensor bytes at those offsets.

The few protobuf fields are decoded by hand (varints), so neither TensorFlow nor
protobuf is needed. crc32c is computed with numpy over many chunks at once and the
chunk checksums combined (CRC is linear over GF(2)), about 1.5 s per 100 MB on one core.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import struct

import numpy as np

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48  # two block handles padded to 40 bytes, then the 8-byte magic
_NO_COMPRESSION, _SNAPPY = 0, 1
_RESTART_INTERVAL = 16  # what LevelDB's table builder uses for data blocks
_BUNDLE_VERSION = 1  # the format version TensorFlow writes and this reader understands

# TensorFlow DataType enum -> numpy dtype (numeric types only; strings and variants are not tensors we need).
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
           10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}
_DTYPE_NAMES = {7: "string", 8: "complex64", 14: "bfloat16", 18: "complex128", 20: "resource", 21: "variant"}


def _dtype(code: int):
    if code == 14:
        import ml_dtypes  # a JAX dependency; numpy itself has no bfloat16

        return ml_dtypes.bfloat16
    return _DTYPES.get(code)


def _dtype_code(dtype) -> int:
    dtype = np.dtype(dtype)
    if dtype.name == "bfloat16":
        return 14
    for code, candidate in _DTYPES.items():
        if np.dtype(candidate) == dtype:
            return code
    raise ValueError(f"dtype {dtype} cannot be written to a TensorFlow checkpoint by bert-jax.")


# --------------------------------------------------------------------------- crc32c
@functools.cache
def _crc_table() -> np.ndarray:
    """Byte table of the reflected Castagnoli polynomial 0x82F63B78, [256] uint32."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


def _apply(operator: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A GF(2)-linear map on 32-bit states, given by its 32 column images, applied to [n] uint32 values."""
    bits = (values[:, None] >> np.arange(32, dtype=np.uint32)) & np.uint32(1)
    return np.bitwise_xor.reduce(bits * operator[None, :], axis=1).astype(np.uint32)


@functools.cache
def _zeros_operator(num_bytes: int) -> np.ndarray:
    """The map state -> state after feeding ``num_bytes`` zero bytes, by repeated squaring."""
    table = _crc_table()
    basis = np.uint32(1) << np.arange(32, dtype=np.uint32)
    power = (table[basis & np.uint32(0xFF)] ^ (basis >> np.uint32(8))).astype(np.uint32)  # one zero byte
    result = basis.copy()  # identity
    while num_bytes:
        if num_bytes & 1:
            result = _apply(power, result)
        num_bytes >>= 1
        if num_bytes:
            power = _apply(power, power)
    return result


@functools.cache
def _crc_table16() -> np.ndarray:
    """[65536] uint32: the state change of two bytes at once (low byte first), from a zero state."""
    table = _crc_table()
    low = np.arange(65536, dtype=np.uint32)
    state = table[low & np.uint32(0xFF)]
    return (table[(state ^ (low >> np.uint32(8))) & np.uint32(0xFF)] ^ (state >> np.uint32(8))).astype(np.uint32)


def crc32c(data) -> int:
    """crc32c (Castagnoli) of ``data`` (bytes or a numpy array's raw bytes), as TensorFlow computes it.

    The bytes are split into 2^k equal rows (zero-padded in front: zeros before
    the data leave a zero-started CRC unchanged), all rows advance together two
    bytes per step, and row checksums are merged pairwise by carrying the left one
    over the right one's length.
    """
    buf = np.frombuffer(data if isinstance(data, (bytes, bytearray, memoryview)) else np.ascontiguousarray(data),
                        dtype=np.uint8).reshape(-1)
    n = buf.size
    # Rows: about sqrt(n) for small inputs (few steps, cheap merge), n / 1024 for large ones (numpy's
    # per-call overhead amortised over wide steps), at most 65536.
    rows = 1 << min(16, max((n.bit_length() + 1) // 2, n.bit_length() - 10, 0))
    length = 2 * -(-n // (2 * rows))
    padded = np.zeros(rows * length, dtype=np.uint8)
    padded[rows * length - n:] = buf
    words = padded.view("<u2").reshape(rows, length // 2).T.astype(np.uint32)  # [steps, rows]
    table = _crc_table16()
    state = np.zeros(rows, dtype=np.uint32)
    for word in words:
        state = table[(state ^ word) & np.uint32(0xFFFF)] ^ (state >> np.uint32(16))
    span = length
    while state.size > 1:
        state = _apply(_zeros_operator(span), state[0::2]) ^ state[1::2]
        span *= 2
    # The standard CRC starts from 0xFFFFFFFF and inverts at the end; the start value's
    # contribution is the all-ones state carried over n zero bytes.
    start = _apply(_zeros_operator(n), np.array([0xFFFFFFFF], dtype=np.uint32))[0]
    return int(state[0] ^ start ^ np.uint32(0xFFFFFFFF))


def mask_crc(crc: int) -> int:
    """TensorFlow/LevelDB store checksums masked (rotated and offset) so a CRC of CRCs stays strong."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# --------------------------------------------------------------------------- varints and protobuf
def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _proto_fields(buf: bytes) -> dict[int, list]:
    """field number -> list of values (ints for varint/fixed fields, bytes for length-delimited)."""
    fields, pos = {}, 0
    while pos < len(buf):
        tag, pos = _read_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            size, pos = _read_varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def _field(number: int, value) -> bytes:
    """One encoded field: an int as a varint, bytes length-delimited."""
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


@dataclasses.dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lives: ``BundleEntryProto`` fields (``sliced`` when stored as partitions)."""

    dtype_code: int
    shape: tuple
    shard_id: int
    offset: int
    size: int
    crc32c: int | None  # masked, as stored
    sliced: bool

    @classmethod
    def decode(cls, buf: bytes) -> "BundleEntry":
        f = _proto_fields(buf)
        shape = ()
        if 2 in f:
            dims = _proto_fields(f[2][0]).get(2, [])
            shape = tuple(_proto_fields(d).get(1, [0])[0] for d in dims)
        first = lambda n, default=0: f.get(n, [default])[0]
        return cls(first(1), shape, first(3), first(4), first(5), first(6, None), 7 in f)

    def encode(self) -> bytes:
        dims = b"".join(_field(2, _field(1, d) if d else b"") for d in self.shape)
        out = _field(1, self.dtype_code) + _field(2, dims)
        if self.shard_id:
            out += _field(3, self.shard_id)
        if self.offset:
            out += _field(4, self.offset)
        if self.size:
            out += _field(5, self.size)
        return out + _varint(6 << 3 | 5) + struct.pack("<I", self.crc32c)


# --------------------------------------------------------------------------- snappy and SSTable blocks
def snappy_decompress(buf: bytes) -> bytes:
    """Raw snappy (no framing): a varint length, then literal and back-reference elements."""
    size, pos = _read_varint(buf, 0)
    out = bytearray()
    while pos < len(buf):
        tag = buf[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal; lengths above 60 follow the tag in 1-4 bytes
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                length = int.from_bytes(buf[pos:pos + extra], "little")
                pos += extra
            length += 1
            out += buf[pos:pos + length]
            pos += length
            continue
        if kind == 1:
            length, offset = 4 + ((tag >> 2) & 7), ((tag >> 5) << 8) | buf[pos]
            pos += 1
        else:
            width = 2 if kind == 2 else 4
            length, offset = (tag >> 2) + 1, int.from_bytes(buf[pos:pos + width], "little")
            pos += width
        if not 0 < offset <= len(out):
            raise ValueError("corrupt snappy block (copy before the start)")
        for _ in range(length):  # byte by byte: a copy may overlap its own output
            out.append(out[-offset])
    if len(out) != size:
        raise ValueError(f"corrupt snappy block ({len(out)} bytes, header says {size})")
    return bytes(out)


def _read_block(data: bytes, offset: int, size: int, where: str) -> bytes:
    if offset + size + 5 > len(data):
        raise ValueError(f"{where}: truncated table (a block runs past the end of the file).")
    block, kind = data[offset:offset + size], data[offset + size]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    if unmask_crc(stored) != crc32c(data[offset:offset + size + 1]):
        raise ValueError(f"{where}: block checksum mismatch at byte {offset}; the file is corrupt.")
    if kind == _SNAPPY:
        return snappy_decompress(block)
    if kind != _NO_COMPRESSION:
        raise ValueError(f"{where}: unknown block compression type {kind}.")
    return block


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs of one block; keys share prefixes with their predecessor."""
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * num_restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _read_varint(block, pos)
        unshared, pos = _read_varint(block, pos)
        value_size, pos = _read_varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + value_size]))
        pos += value_size
    return entries


def read_table(path: str) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of a LevelDB-format table file, in key order."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < _FOOTER_SIZE or struct.unpack_from("<Q", data, len(data) - 8)[0] != _TABLE_MAGIC:
        raise ValueError(f"{path}: not a TensorFlow checkpoint index (no table magic number at the end).")
    pos = len(data) - _FOOTER_SIZE
    _, pos = _read_varint(data, pos)  # metaindex handle: TensorFlow writes no meta blocks
    _, pos = _read_varint(data, pos)
    index_offset, pos = _read_varint(data, pos)
    index_size, pos = _read_varint(data, pos)
    entries = []
    for _, handle in _block_entries(_read_block(data, index_offset, index_size, path)):
        offset, at = _read_varint(handle, 0)
        size, _ = _read_varint(handle, at)
        entries.extend(_block_entries(_read_block(data, offset, size, path)))
    return entries


def _build_block(entries: list[tuple[bytes, bytes]], restart_interval: int) -> bytes:
    out, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        previous = key
    restarts = restarts or [0]  # an empty block still has one restart point
    return bytes(out) + struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))


def write_table(path: str, entries: list[tuple[bytes, bytes]]) -> None:
    """A table with one data block (keys must be sorted), an empty metaindex and a one-entry index."""
    keys = [k for k, _ in entries]
    if keys != sorted(keys) or len(set(keys)) != len(keys):
        raise ValueError("table keys must be unique and sorted.")
    out = bytearray()

    def add_block(block: bytes) -> bytes:
        handle = _varint(len(out)) + _varint(len(block))
        out.extend(block + bytes([_NO_COMPRESSION]))
        out.extend(struct.pack("<I", mask_crc(crc32c(block + bytes([_NO_COMPRESSION])))))
        return handle

    data_handle = add_block(_build_block(entries, _RESTART_INTERVAL))
    meta_handle = add_block(_build_block([], 1))
    # The index key must be >= every key of its block; the last key itself is the simplest choice.
    index_handle = add_block(_build_block([(keys[-1] if keys else b"", data_handle)], 1))
    footer = (meta_handle + index_handle).ljust(_FOOTER_SIZE - 8, b"\0") + struct.pack("<Q", _TABLE_MAGIC)
    out.extend(footer)
    with open(path + ".tmp", "wb") as f:
        f.write(out)
    os.replace(path + ".tmp", path)


# --------------------------------------------------------------------------- checkpoints
def data_filename(prefix: str, shard: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


class CheckpointReader:
    """Reads a TensorFlow checkpoint ``prefix`` (``prefix.index`` + data files).

    ``reader.entries`` maps every tensor name to its BundleEntry; ``reader.get_tensor(name)``
    reads one tensor [its shape] and checks its crc32c."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        index = prefix + ".index"
        if not os.path.isfile(index):
            raise FileNotFoundError(f"{index} does not exist; pass the checkpoint prefix (the path without "
                                    f".index / .data-*).")
        table = read_table(index)
        if not table or table[0][0] != b"":
            raise ValueError(f"{index}: the first entry is not the bundle header; is this a TensorFlow V2 checkpoint?")
        header = _proto_fields(table[0][1])
        self.num_shards = header.get(1, [1])[0]
        self.big_endian = header.get(2, [0])[0] == 1
        version = _proto_fields(header[3][0]) if 3 in header else {}
        if version.get(2, [0])[0] > _BUNDLE_VERSION:
            raise ValueError(f"{index}: written by a newer TensorFlow (bundle format needs reader version "
                             f"{version[2][0]}, this reader knows {_BUNDLE_VERSION}).")
        self.entries = {key.decode("utf-8"): BundleEntry.decode(value) for key, value in table[1:]}

    def dtype(self, name: str):
        """numpy dtype of tensor ``name``, or None for types bert-jax does not read (strings, ...)."""
        return _dtype(self.entries[name].dtype_code)

    def dtype_name(self, name: str) -> str:
        code = self.entries[name].dtype_code
        dtype = _dtype(code)
        return np.dtype(dtype).name if dtype is not None else _DTYPE_NAMES.get(code, f"DataType {code}")

    def get_tensor(self, name: str, verify: bool = True) -> np.ndarray:
        """The tensor stored under ``name``; ``verify`` checks the stored crc32c."""
        if name not in self.entries:
            raise KeyError(f"{self.prefix}: no tensor named {name!r}.")
        entry = self.entries[name]
        if entry.sliced:
            raise ValueError(f"{self.prefix}: {name!r} is saved as partitioned slices, which bert-jax does not "
                             f"read; restore it in TensorFlow and save it unpartitioned.")
        dtype = _dtype(entry.dtype_code)
        if dtype is None:
            raise ValueError(f"{self.prefix}: {name!r} has dtype {self.dtype_name(name)}, not a numeric tensor.")
        dtype = np.dtype(dtype).newbyteorder(">" if self.big_endian else "<")
        count = int(np.prod(entry.shape, dtype=np.int64))
        if entry.size != count * dtype.itemsize:
            raise ValueError(f"{self.prefix}: {name!r} has {entry.size} bytes for shape {entry.shape} "
                             f"of {dtype}; the index is corrupt.")
        path = data_filename(self.prefix, entry.shard_id, self.num_shards)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist: {self.prefix}.index lists its tensors in that data "
                                    "file; copy it beside the index (both are part of the checkpoint).")
        with open(path, "rb") as f:
            f.seek(entry.offset)
            raw = f.read(entry.size)
        if len(raw) != entry.size:
            raise ValueError(f"{path}: truncated; {name!r} needs bytes {entry.offset}..{entry.offset + entry.size}.")
        if verify and entry.crc32c is not None and unmask_crc(entry.crc32c) != crc32c(raw):
            raise ValueError(f"{path}: crc32c mismatch for {name!r}; the data file is corrupt.")
        return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("=")).reshape(entry.shape)


def write_checkpoint(prefix: str, tensors: dict[str, np.ndarray]) -> None:
    """Writes ``prefix.index`` + ``prefix.data-00000-of-00001`` that ``tf.train.load_checkpoint`` reads."""
    entries, offset = [], 0
    data_path = data_filename(prefix, 0, 1)
    with open(data_path + ".tmp", "wb") as f:
        for name in sorted(tensors):
            array = np.asarray(tensors[name])
            raw = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"))).tobytes()
            f.write(raw)
            entry = BundleEntry(_dtype_code(array.dtype), tuple(array.shape), 0, offset, len(raw),
                                mask_crc(crc32c(raw)), False)
            entries.append((name.encode("utf-8"), entry.encode()))
            offset += len(raw)
    os.replace(data_path + ".tmp", data_path)
    header = _field(1, 1) + _field(3, _field(1, _BUNDLE_VERSION))  # one shard, little endian, version 1
    write_table(prefix + ".index", [(b"", header)] + entries)
