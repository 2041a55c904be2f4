"""Legacy formats written by `transformers` 4.57.6 convert to exactly the tensors of their PyTorch twin."""

from __future__ import annotations

import numpy as np
import pytest

from bert_core import CheckpointError
from conversion import SafetensorsFile, TIED_KEYS
from conversion.legacy import read_flax_msgpack, read_google_tf1, read_tf_h5, write_flax_msgpack, write_torch_bin
from conversion.checkpoint import read_torch_bin
from harness import LEGACY_FIXTURES as FIXTURES
from harness import LEGACY_HEADS, assert_same_tensors, legacy_twin

HEADS = list(LEGACY_HEADS)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("reader, filename", [(read_tf_h5, "tf_model.h5"), (read_flax_msgpack, "flax_model.msgpack")])
def test_legacy_file_equals_pytorch_twin(head, reader, filename):
    assert_same_tensors(reader(FIXTURES / head / filename), legacy_twin(head))


@pytest.mark.parametrize("head", HEADS)
def test_pytorch_bin_equals_safetensors_twin(head):
    state = read_torch_bin(FIXTURES / head / "pytorch_model.bin")
    # torch.save keeps the tied decoder copies that save_pretrained(safetensors) drops.
    for tied, source in TIED_KEYS.items():
        if tied in state:
            assert np.array_equal(state.pop(tied), state[source])
    assert_same_tensors(state, legacy_twin(head))


def test_google_tf1_equals_transformers_converter():
    ours = read_google_tf1(FIXTURES / "google_tf1" / "bert_model.ckpt")
    assert_same_tensors(ours, dict(SafetensorsFile(FIXTURES / "google_tf1" / "expected.safetensors")))


@pytest.mark.parametrize("head", HEADS)
def test_writers_round_trip_bit_exact(tmp_path, head):
    tensors = legacy_twin(head)
    assert_same_tensors(read_flax_msgpack(write_flax_msgpack(tensors, tmp_path / "flax_model.msgpack")), tensors)
    assert_same_tensors(read_torch_bin(write_torch_bin(tensors, tmp_path / "pytorch_model.bin")), tensors)


def test_msgpack_readable_by_transformers_layout(tmp_path):
    """What we write has the tree 4.x Flax wrote: same nesting and leaves as the fixture."""
    from flax.serialization import msgpack_restore

    from conversion.legacy import flatten_tree

    ref = flatten_tree(msgpack_restore((FIXTURES / "pretraining" / "flax_model.msgpack").read_bytes()))
    ours = flatten_tree(msgpack_restore(write_flax_msgpack(legacy_twin("pretraining"), tmp_path / "f.msgpack").read_bytes()))
    assert sorted(ours) == sorted(ref)


@pytest.mark.parametrize("reader, content, fragment", [
    (read_tf_h5, b"not an hdf5 file", "cannot open"),
    (read_flax_msgpack, b"\xc1\xc1\xc1", "not a valid Flax msgpack"),
    (read_torch_bin, b"garbage", "cannot read"),
])
def test_corrupt_files_name_the_file(tmp_path, reader, content, fragment):
    path = tmp_path / "weights"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=fragment) as info:
        reader(path)
    assert str(path) in str(info.value)


def test_missing_tf1_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="cannot read TF checkpoint"):
        read_google_tf1(tmp_path / "bert_model.ckpt")


def test_streamed_msgpack_is_byte_identical_to_flax(tmp_path):
    """The writer streams leaf by leaf (memory) yet writes exactly flax.serialization's bytes."""
    serialization = pytest.importorskip("flax.serialization")
    from conversion.legacy import unflatten_tree, write_flax_msgpack
    from conversion.rules import to_framework

    tensors = {k: v for k, v in read_flax_msgpack(FIXTURES / "pretraining" / "flax_model.msgpack").items()}
    write_flax_msgpack(tensors, tmp_path / "flax_model.msgpack")
    expected = serialization.msgpack_serialize(unflatten_tree(to_framework(tensors, "flax")))
    assert (tmp_path / "flax_model.msgpack").read_bytes() == expected
