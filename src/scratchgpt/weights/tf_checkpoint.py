"""Read (and, for tests and benchmarks, write) TensorFlow V2 checkpoints without TensorFlow.

A checkpoint ``PREFIX`` is ``PREFIX.index`` plus data shards ``PREFIX.data-0000i-of-0000n``.

``PREFIX.index`` is a LevelDB table (the format of ``tensorflow/core/lib/io/table``):

- data blocks of entries ``varint shared | varint unshared | varint value_len | key suffix |
  value``, keys prefix-compressed against the previous key, followed by ``uint32`` restart
  offsets and their ``uint32`` count; each block is followed by a 5-byte trailer: compression
  type (0 = none, the only one TensorFlow uses for bundles) and a *masked* crc32c;
- an index block with the same layout mapping a key >= each block's last key to that block's
  handle (``varint offset | varint size``);
- a 48-byte footer: meta-index handle, index handle, zero padding to 40 bytes, and the
  little-endian magic ``0xdb4775248b80fb57``.

Key ``""`` holds a ``BundleHeaderProto`` (num_shards=1, endianness=2); every other key is a
variable name whose value is a ``BundleEntryProto`` (dtype=1, shape=2, shard_id=3, offset=4,
size=5, crc32c=6 as fixed32, slices=7). A few lines of protobuf wire-format decoding replace
TensorFlow's generated classes. Tensor bytes sit raw, little-endian, in the shard at
offset/size; they are memory-mapped, so reading a 6 GB checkpoint does not load it at once.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import crc32c
import numpy as np

from scratchgpt.files import UsageError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5
CRC_MASK_DELTA = 0xA282EAD8
# TensorFlow DataType enum -> little-endian numpy dtype (types.proto).
TF_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    17: np.dtype("<u2"),  # DT_UINT16
    19: np.dtype("<f2"),  # DT_HALF
    22: np.dtype("<u4"),  # DT_UINT32
    23: np.dtype("<u8"),  # DT_UINT64
}
NUMPY_TO_TF = {dtype: code for code, dtype in TF_DTYPES.items()}


class CheckpointError(UsageError):  # a ValueError: one line at the command line
    """The checkpoint files are missing, truncated, corrupt or in an unsupported form."""


@dataclass(frozen=True)
class TensorEntry:
    """Where one variable lives: a decoded ``BundleEntryProto``."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    masked_crc32c: int


# --- checksums ------------------------------------------------------------------------------


def mask_crc(crc: int) -> int:
    """LevelDB/TensorFlow's crc masking: rotate right by 15 bits, add a constant (mod 2^32)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + CRC_MASK_DELTA) & 0xFFFFFFFF


# --- protobuf wire format -------------------------------------------------------------------


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return ``(value, next_pos)``."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError(f"varint runs past the end of a {len(buf)}-byte buffer")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise CheckpointError("varint longer than 10 bytes")


def encode_varint(value: int) -> bytes:
    """Encode a non-negative int as a base-128 varint."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def parse_proto(buf: bytes | memoryview) -> dict[int, list]:
    """Decode one protobuf message into ``{field_number: [values]}`` (no schema needed).

    Varints and fixed32/64 become ints, length-delimited fields stay bytes for the caller.
    """
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(buf):
        tag, pos = read_varint(buf, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, pos = read_varint(buf, pos)
        elif wire_type in (1, 5):
            width = 8 if wire_type == 1 else 4
            value = int.from_bytes(bytes(buf[pos : pos + width]), "little")
            pos += width
        elif wire_type == 2:
            length, pos = read_varint(buf, pos)
            value = bytes(buf[pos : pos + length])
            pos += length
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire_type} in field {number}")
        if pos > len(buf):
            raise CheckpointError(f"protobuf field {number} runs past the end of its message")
        fields.setdefault(number, []).append(value)
    return fields


def _last(fields: dict[int, list], number: int, default: int = 0) -> int:
    return fields.get(number, [default])[-1]


def _parse_shape(raw: bytes) -> tuple[int, ...]:
    shape = parse_proto(raw)
    if _last(shape, 3):
        raise CheckpointError("tensor shape has unknown rank")
    return tuple(_last(parse_proto(dim), 1) for dim in shape.get(2, []))


def parse_entry(name: str, raw: bytes) -> TensorEntry:
    """Decode a ``BundleEntryProto`` for variable ``name``."""
    fields = parse_proto(raw)
    if fields.get(7):
        raise CheckpointError(f"variable {name!r} is partitioned into slices; not supported")
    return TensorEntry(
        name=name,
        dtype=_last(fields, 1),
        shape=_parse_shape(fields[2][-1]) if 2 in fields else (),
        shard_id=_last(fields, 3),
        offset=_last(fields, 4),
        size=_last(fields, 5),
        masked_crc32c=_last(fields, 6),
    )


# --- LevelDB table --------------------------------------------------------------------------


def _read_handle(buf: bytes | memoryview, pos: int) -> tuple[int, int, int]:
    offset, pos = read_varint(buf, pos)
    size, pos = read_varint(buf, pos)
    return offset, size, pos


def _block(data: bytes, offset: int, size: int, path: Path) -> memoryview:
    """Return a block's contents after checking its trailer (compression type and crc)."""
    end = offset + size + BLOCK_TRAILER_SIZE
    if end > len(data):
        raise CheckpointError(f"{path}: block at byte {offset} runs past the end (truncated?)")
    compression = data[offset + size]
    if compression != 0:
        raise CheckpointError(f"{path}: block compression type {compression} is not supported")
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    if mask_crc(crc32c.crc32c(data[offset : offset + size + 1])) != stored:
        raise CheckpointError(f"{path}: crc32c mismatch in the table block at byte {offset}")
    return memoryview(data)[offset : offset + size]


def _block_entries(block: memoryview, path: Path) -> Iterator[tuple[bytes, memoryview]]:
    if len(block) < 4:
        raise CheckpointError(f"{path}: table block of {len(block)} bytes is too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 * (num_restarts + 1)
    key, pos = b"", 0
    while pos < limit:
        shared, pos = read_varint(block, pos)
        unshared, pos = read_varint(block, pos)
        value_len, pos = read_varint(block, pos)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise CheckpointError(f"{path}: corrupt table entry at block byte {pos}")
        key = key[:shared] + bytes(block[pos : pos + unshared])
        pos += unshared
        yield key, block[pos : pos + value_len]
        pos += value_len


def read_table(path: str | os.PathLike[str]) -> Iterator[tuple[bytes, memoryview]]:
    """Yield every ``(key, value)`` of a LevelDB table file, in key order."""
    path = Path(path)
    data = path.read_bytes()  # the index is small: a few hundred bytes per variable
    if len(data) < FOOTER_SIZE:
        raise CheckpointError(f"{path}: {len(data)} bytes is too short for a table footer")
    footer = data[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
    if magic != TABLE_MAGIC:
        raise CheckpointError(f"{path}: bad table magic {magic:#x} (not a TensorFlow .index file)")
    _, _, pos = _read_handle(footer, 0)  # meta-index block: unused by bundles
    index_offset, index_size, _ = _read_handle(footer, pos)
    for _, handle in _block_entries(_block(data, index_offset, index_size, path), path):
        offset, size, _ = _read_handle(handle, 0)
        yield from _block_entries(_block(data, offset, size, path), path)


# --- checkpoint reader ----------------------------------------------------------------------


def resolve_prefix(path: str | os.PathLike[str]) -> Path:
    """Turn a checkpoint folder (with a ``checkpoint`` file) or a prefix into the prefix."""
    path = Path(path)
    if not path.is_dir():
        return Path(str(path).removesuffix(".index"))
    name = "model.ckpt"
    pointer = path / "checkpoint"
    if pointer.is_file():
        # Text proto: `model_checkpoint_path: "model.ckpt"`.
        for line in pointer.read_text(encoding="utf-8-sig").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model_checkpoint_path":
                name = value.strip().strip('"')
                break
    # TensorFlow may have recorded an absolute path; a moved folder still holds the files.
    prefix = path / name
    return prefix if Path(f"{prefix}.index").is_file() else path / Path(name).name


class TFCheckpoint:
    """A TensorFlow V2 checkpoint opened for reading; tensors are memory-mapped views.

    Use as a context manager (or call :meth:`close`) to release the maps.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.prefix = resolve_prefix(path)
        index = Path(f"{self.prefix}.index")
        if not index.is_file():
            raise CheckpointError(f"checkpoint index file {index} does not exist")
        self.entries: dict[str, TensorEntry] = {}
        num_shards = self._read_index(index)
        self._shard_paths = [
            Path(f"{self.prefix}.data-{i:05d}-of-{num_shards:05d}") for i in range(num_shards)
        ]
        self._maps: dict[int, np.memmap] = {}
        self._check_shards()

    def _read_index(self, index: Path) -> int:
        header = None
        for key, value in read_table(index):
            if key == b"":
                header = parse_proto(value)
            else:
                name = key.decode("utf-8")
                self.entries[name] = parse_entry(name, value)
        if header is None:
            raise CheckpointError(f"{index}: no BundleHeaderProto under the empty key")
        if _last(header, 2) != 0:
            raise CheckpointError(f"{index}: big-endian checkpoints are not supported")
        return _last(header, 1, default=1)

    def _check_shards(self) -> None:
        sizes = {}
        for shard_id, shard in enumerate(self._shard_paths):
            if not shard.is_file():
                raise CheckpointError(f"checkpoint data shard {shard} does not exist")
            sizes[shard_id] = shard.stat().st_size
        for entry in self.entries.values():
            shard_size = sizes.get(entry.shard_id)
            if shard_size is None:
                raise CheckpointError(
                    f"variable {entry.name!r} names shard {entry.shard_id}, but the header "
                    f"declares {len(sizes)} shard(s)"
                )
            if entry.offset + entry.size > shard_size:
                raise CheckpointError(
                    f"variable {entry.name!r} needs bytes {entry.offset}.."
                    f"{entry.offset + entry.size} of {self._shard_paths[entry.shard_id]}, "
                    f"which has only {shard_size} bytes (truncated download?)"
                )

    def __enter__(self) -> TFCheckpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the memory maps (views already handed out keep theirs alive)."""
        self._maps.clear()

    def variable_names(self) -> list[str]:
        """Variable names, sorted."""
        return sorted(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        """The stored shape of variable ``name``."""
        return self._entry(name).shape

    def _entry(self, name: str) -> TensorEntry:
        try:
            return self.entries[name]
        except KeyError:
            raise CheckpointError(
                f"variable {name!r} is not in {self.prefix}.index (it has {len(self.entries)}"
                f" variables, e.g. {self.variable_names()[:3]})"
            ) from None

    def _map(self, shard_id: int) -> np.memmap:
        if shard_id not in self._maps:
            path = self._shard_paths[shard_id]
            if path.stat().st_size == 0:  # np.memmap refuses empty files
                return np.zeros(0, dtype=np.uint8)
            self._maps[shard_id] = np.memmap(path, dtype=np.uint8, mode="r")
        return self._maps[shard_id]

    def read(self, name: str, *, verify: bool = True) -> np.ndarray:
        """Return variable ``name`` as a read-only array backed by the memory-mapped shard."""
        entry = self._entry(name)
        dtype = TF_DTYPES.get(entry.dtype)
        if dtype is None:
            raise CheckpointError(
                f"variable {name!r} has TensorFlow dtype code {entry.dtype}, which this reader "
                f"does not support (supported: {sorted(TF_DTYPES)})"
            )
        expected = int(np.prod(entry.shape, dtype=np.int64)) * dtype.itemsize
        if expected != entry.size:
            raise CheckpointError(
                f"variable {name!r}: shape {entry.shape} of {dtype} needs {expected} bytes, "
                f"the index says {entry.size}"
            )
        raw = self._map(entry.shard_id)[entry.offset : entry.offset + entry.size]
        if verify and mask_crc(crc32c.crc32c(raw)) != entry.masked_crc32c:
            raise CheckpointError(
                f"crc32c mismatch for variable {name!r} in {self._shard_paths[entry.shard_id]}: "
                "the data file is corrupt or does not belong to this index"
            )
        return raw.view(dtype).reshape(entry.shape)

    def release(self, name: str) -> None:
        """Drop variable ``name``'s pages from this process's memory after it was copied.

        Mapped file pages count in the resident set until unmapped; releasing each tensor once
        copied keeps converting a 6 GB checkpoint near 1x its size instead of 2x. The data
        stays in the OS page cache, so reading it again is still cheap.
        """
        entry = self._entry(name)
        mapped = self._maps.get(entry.shard_id)
        if mapped is None or not hasattr(mmap, "MADV_DONTNEED") or entry.size == 0:
            return
        start = entry.offset - entry.offset % mmap.PAGESIZE  # madvise wants page alignment
        mapped._mmap.madvise(mmap.MADV_DONTNEED, start, entry.offset + entry.size - start)


# --- writer (tests and benchmarks) ----------------------------------------------------------


def _table_entry(prev: bytes, key: bytes, value: bytes) -> bytes:
    shared = 0
    while shared < min(len(prev), len(key)) and prev[shared] == key[shared]:
        shared += 1
    head = encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value))
    return head + key[shared:] + value


def _build_block(items: list[tuple[bytes, bytes]], restart_interval: int = 16) -> bytes:
    body, restarts, prev = bytearray(), [], b""
    for i, (key, value) in enumerate(items):
        if i % restart_interval == 0:
            restarts.append(len(body))
            prev = b""  # restart points store their key in full
        body += _table_entry(prev, key, value)
        prev = key
    restarts = restarts or [0]
    return bytes(body) + struct.pack(f"<{len(restarts) + 1}I", *restarts, len(restarts))


def _write_block(out: bytearray, block: bytes) -> bytes:
    """Append a block with its trailer; return its encoded handle."""
    handle = encode_varint(len(out)) + encode_varint(len(block))
    trailer = b"\x00" + struct.pack("<I", mask_crc(crc32c.crc32c(block + b"\x00")))
    out += block + trailer
    return handle


def _encode_entry(array: np.ndarray, offset: int, crc: int) -> bytes:
    dims = b"".join(
        b"\x12" + encode_varint(len(d)) + d
        for d in (b"\x08" + encode_varint(n) for n in array.shape)
    )
    dtype = NUMPY_TO_TF.get(array.dtype.newbyteorder("<"))
    if dtype is None:
        raise CheckpointError(f"cannot write numpy dtype {array.dtype} as a TensorFlow tensor")
    out = b"\x08" + encode_varint(dtype) + b"\x12" + encode_varint(len(dims)) + dims
    if offset:
        out += b"\x20" + encode_varint(offset)
    if array.nbytes:
        out += b"\x28" + encode_varint(array.nbytes)
    return out + b"\x35" + struct.pack("<I", crc)


def write_tf_checkpoint(
    prefix: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], block_size: int = 4096
) -> Path:
    """Write ``arrays`` as a single-shard TensorFlow V2 checkpoint at ``prefix``.

    Meant for tests and benchmarks (real checkpoints come from TensorFlow); the result is
    read back by TensorFlow itself in the test suite when TensorFlow is installed.
    """
    prefix = Path(prefix)
    entries: list[tuple[bytes, bytes]] = [(b"", b"\x08\x01\x1a\x02\x08\x01")]  # 1 shard, v1
    offset = 0
    with open(f"{prefix}.data-00000-of-00001", "wb") as data:
        for name in sorted(arrays):
            array = np.asarray(arrays[name])  # ascontiguousarray would turn scalars 1-d
            array = array.astype(array.dtype.newbyteorder("<"), order="C", copy=False)
            raw = array.reshape(-1).view(np.uint8)
            crc = mask_crc(crc32c.crc32c(raw))
            entries.append((name.encode(), _encode_entry(array, offset, crc)))
            data.write(raw)
            offset += array.nbytes
    Path(f"{prefix}.index").write_bytes(_build_table(entries, block_size))
    return prefix


def _build_table(entries: list[tuple[bytes, bytes]], block_size: int) -> bytes:
    out, index_items, pending, pending_size = bytearray(), [], [], 0
    for key, value in entries:
        pending.append((key, value))
        pending_size += len(key) + len(value) + 6
        if pending_size >= block_size:
            index_items.append((pending[-1][0], _write_block(out, _build_block(pending))))
            pending, pending_size = [], 0
    if pending:
        index_items.append((pending[-1][0], _write_block(out, _build_block(pending))))
    meta_handle = _write_block(out, _build_block([]))
    index_handle = _write_block(out, _build_block(index_items, restart_interval=1))
    footer = (meta_handle + index_handle).ljust(FOOTER_SIZE - 8, b"\x00")
    return bytes(out + footer + struct.pack("<Q", TABLE_MAGIC))
