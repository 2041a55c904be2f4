"""The canonical checkpoint reader/writer agrees bit for bit with the `safetensors` library."""

from __future__ import annotations

import json
import pickle

import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy

from bert_core import CheckpointError
from conversion import SafetensorsFile, ShardedCheckpoint, open_checkpoint, save_checkpoint, save_file


def _tensors(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "bert.embeddings.word_embeddings.weight": rng.standard_normal((50, 8)).astype(np.float32),
        "bert.encoder.layer.0.attention.self.query.bias": rng.standard_normal(8).astype(np.float16),
        "cls.predictions.bias": rng.standard_normal(50).astype(np.float64),
        "embeddings.position_ids": np.arange(16, dtype=np.int64)[None],
        "bf16": rng.standard_normal((3, 4)).astype(ml_dtypes.bfloat16),
        "scalar": np.array(3.0, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


def _assert_bit_equal(a, b):
    assert set(a) == set(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert a[key].tobytes() == b[key].tobytes(), key


def test_our_file_reads_in_safetensors(tmp_path):
    tensors = {k: v for k, v in _tensors().items() if k != "bf16"}  # safetensors.numpy lacks bf16
    save_file(tensors, tmp_path / "model.safetensors")
    _assert_bit_equal(safetensors.numpy.load_file(tmp_path / "model.safetensors"), tensors)


def test_safetensors_file_reads_in_ours_memory_mapped(tmp_path):
    tensors = {k: v for k, v in _tensors().items() if k != "bf16"}
    safetensors.numpy.save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    ours = SafetensorsFile(tmp_path / "model.safetensors")
    _assert_bit_equal(dict(ours), tensors)
    view = ours["bert.embeddings.word_embeddings.weight"]
    assert not view.flags.writeable and not view.flags.owndata  # a view on the mapping, not a copy
    assert ours.metadata == {"format": "pt"}


def test_round_trip_with_bfloat16(tmp_path):
    save_file(_tensors(), tmp_path / "m.safetensors")
    _assert_bit_equal(dict(SafetensorsFile(tmp_path / "m.safetensors")), _tensors())


def test_sharded_save_and_load(tmp_path):
    tensors = _tensors()
    written = save_checkpoint(tensors, tmp_path, max_shard_size=1000)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and len(written) == len(shards) + 1
    loaded = open_checkpoint(tmp_path)
    assert isinstance(loaded, ShardedCheckpoint)
    _assert_bit_equal(dict(loaded), tensors)
    # Saving again unsharded replaces the shards: no stale weight files stay behind.
    save_checkpoint(tensors, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_parse_sizes():
    from conversion.safetensors_io import _parse_size

    assert _parse_size("5GB") == 5 * 10**9 and _parse_size("2MiB") == 2 * 2**20 and _parse_size(77) == 77


def test_truncated_file_names_file_and_tensor(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(_tensors(), path)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match=r"model\.safetensors is truncated: tensor '.+'"):
        SafetensorsFile(path)


def test_pickle_instead_of_safetensors(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"a": list(range(1000))}, protocol=2))
    with pytest.raises(CheckpointError, match="not a valid safetensors file.*pickle"):
        SafetensorsFile(path)


@pytest.mark.parametrize("payload, fragment", [
    (b"", "only 0 bytes"),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all", "not JSON"),
])
def test_corrupt_header(tmp_path, payload, fragment):
    path = tmp_path / "model.safetensors"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError, match=fragment):
        SafetensorsFile(path)


def test_inconsistent_entry(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    with pytest.raises(CheckpointError, match=r"tensor 'w' of shape \(2, 2\).*needs 16 bytes"):
        SafetensorsFile(path)


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(CheckpointError, match="'bad' has dtype object"):
        save_file({"bad": np.array([object()])}, tmp_path / "model.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_missing_weights_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        open_checkpoint(tmp_path)
