"""The TensorFlow-free checkpoint reader, against a checkpoint TensorFlow itself wrote."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from scratchgpt.weights import tf_checkpoint
from scratchgpt.weights.tf_checkpoint import (
    CheckpointError,
    TFCheckpoint,
    encode_varint,
    mask_crc,
    parse_proto,
    read_table,
    read_varint,
    resolve_prefix,
    write_tf_checkpoint,
)

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_gpt2_tf"
DATA = "model.ckpt.data-00000-of-00001"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "arrays.npz") as npz:
        return {name: npz[name] for name in npz.files}


@pytest.fixture
def ckpt_copy(tmp_path) -> Path:
    """A writable copy of the TensorFlow-made fixture, to corrupt."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "ckpt"))


def test_reads_every_tensorflow_variable_exactly(reference):
    with TFCheckpoint(FIXTURE) as ckpt:
        assert ckpt.variable_names() == sorted(reference)
        for name, expected in reference.items():
            actual = ckpt.read(name)
            assert actual.dtype == np.float32 and actual.shape == expected.shape, name
            np.testing.assert_array_equal(actual, expected, err_msg=name)


def test_tensors_are_memory_mapped_read_only():
    with TFCheckpoint(FIXTURE) as ckpt:
        wte = ckpt.read("model/wte")
        assert isinstance(wte.base, np.memmap) or isinstance(wte.base.base, np.memmap)
        with pytest.raises(ValueError, match="read-only"):
            wte[0, 0] = 1.0


def test_prefix_resolution(tmp_path):
    assert resolve_prefix(FIXTURE) == FIXTURE / "model.ckpt"
    assert resolve_prefix(FIXTURE / "model.ckpt.index") == FIXTURE / "model.ckpt"
    moved = Path(shutil.copytree(FIXTURE, tmp_path / "moved"))
    (moved / "checkpoint").write_text('model_checkpoint_path: "/gone/elsewhere/model.ckpt"\n')
    assert resolve_prefix(moved) == moved / "model.ckpt"


def test_varint_and_crc_helpers():
    for value in (0, 1, 127, 128, 300, 2**32 + 5, 2**63 - 1):
        assert read_varint(encode_varint(value), 0) == (value, len(encode_varint(value)))
    assert encode_varint(300) == b"\xac\x02"  # the protobuf documentation's example
    # LevelDB's own test vector: Mask(0) = kMaskDelta, and masking is a bijection.
    assert mask_crc(0) == 0xA282EAD8
    assert len({mask_crc(c) for c in range(0, 2**32, 2**20)}) == 2**12


def test_parse_proto_wire_types():
    message = b"\x08\x96\x01" + b"\x12\x03abc" + b"\x35\x01\x02\x03\x04" + b"\x08\x07"
    assert parse_proto(message) == {1: [150, 7], 2: [b"abc"], 6: [0x04030201]}
    with pytest.raises(CheckpointError, match="wire type 3"):
        parse_proto(b"\x0b")
    with pytest.raises(CheckpointError, match="past the end"):
        parse_proto(b"\x12\x05ab")


def test_writer_round_trip_matches_tensorflow_layout(tmp_path, reference):
    prefix = write_tf_checkpoint(tmp_path / "model.ckpt", reference, block_size=256)
    # Same entries as TensorFlow's index (keys, shapes, offsets, crcs), same data bytes.
    ours = [(k, bytes(v)) for k, v in read_table(f"{prefix}.index")]
    theirs = [(k, bytes(v)) for k, v in read_table(FIXTURE / "model.ckpt.index")]
    assert ours == theirs
    assert (tmp_path / DATA).read_bytes() == (FIXTURE / DATA).read_bytes()


def test_writer_handles_other_dtypes_and_scalars(tmp_path):
    arrays = {
        "a/int": np.arange(6, dtype=np.int32).reshape(2, 3),
        "b/half": np.array([1.5, -2.0], dtype=np.float16),
        "c/scalar": np.array(3.25, dtype=np.float64),
        "d/empty": np.zeros((0, 4), dtype=np.float32),
    }
    with TFCheckpoint(write_tf_checkpoint(tmp_path / "x", arrays)) as ckpt:
        for name, expected in arrays.items():
            actual = ckpt.read(name)
            assert actual.dtype == expected.dtype and actual.shape == expected.shape
            np.testing.assert_array_equal(actual, expected)


def test_missing_index_is_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"model\.ckpt\.index does not exist"):
        TFCheckpoint(tmp_path)


def test_missing_data_shard_is_named(ckpt_copy):
    (ckpt_copy / DATA).unlink()
    with pytest.raises(CheckpointError, match=r"data-00000-of-00001 does not exist"):
        TFCheckpoint(ckpt_copy)


def test_truncated_shard_names_variable_and_sizes(ckpt_copy):
    data = ckpt_copy / DATA
    data.write_bytes(data.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"'model/wte'.*only \d+ bytes.*truncated"):
        TFCheckpoint(ckpt_copy)


def test_flipped_byte_gives_crc_error_naming_tensor(ckpt_copy):
    with TFCheckpoint(ckpt_copy) as ckpt:
        entry = ckpt.entries["model/h1/mlp/c_fc/w"]
    raw = bytearray((ckpt_copy / DATA).read_bytes())
    raw[entry.offset + entry.size // 2] ^= 0x01
    (ckpt_copy / DATA).write_bytes(bytes(raw))
    with TFCheckpoint(ckpt_copy) as ckpt:
        ckpt.read("model/h0/mlp/c_fc/w")  # other tensors are fine
        with pytest.raises(
            CheckpointError, match=r"crc32c mismatch for variable 'model/h1/mlp/c_fc/w'"
        ):
            ckpt.read("model/h1/mlp/c_fc/w")
        assert ckpt.read("model/h1/mlp/c_fc/w", verify=False).shape == (1, 16, 64)


def test_corrupt_or_truncated_index(ckpt_copy):
    index = ckpt_copy / "model.ckpt.index"
    good = index.read_bytes()
    index.write_bytes(good[:-10])
    with pytest.raises(CheckpointError, match="bad table magic"):
        TFCheckpoint(ckpt_copy)
    flipped = bytearray(good)
    flipped[20] ^= 0xFF  # inside the first data block
    index.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="crc32c mismatch in the table block"):
        TFCheckpoint(ckpt_copy)


def test_unknown_dtype_and_unknown_variable(tmp_path):
    prefix = write_tf_checkpoint(tmp_path / "x", {"v": np.ones(2, np.float32)})
    index = Path(f"{prefix}.index")
    entries = [(key, bytes(value)) for key, value in read_table(index)]
    assert entries[1][1].startswith(b"\x08\x01")  # dtype = DT_FLOAT
    entries[1] = (b"v", b"\x08\x0e" + entries[1][1][2:])  # DT_BFLOAT16: no numpy dtype
    index.write_bytes(tf_checkpoint._build_table(entries, block_size=4096))
    with TFCheckpoint(prefix) as ckpt:
        with pytest.raises(CheckpointError, match=r"'v' has TensorFlow dtype code 14"):
            ckpt.read("v")
        with pytest.raises(CheckpointError, match=r"'model/nope' is not in"):
            ckpt.read("model/nope")


def test_cross_check_with_tensorflow(reference):
    tf = pytest.importorskip("tensorflow")
    with TFCheckpoint(FIXTURE) as ckpt:
        for name in ckpt.variable_names():
            expected = tf.train.load_variable(str(FIXTURE / "model.ckpt"), name)
            np.testing.assert_array_equal(ckpt.read(name), expected, err_msg=name)
