"""Loading a checkpoint peaks at about one copy of the weights, in every backend (DESIGN.md, issue 6).

The measure is the benchmark's own (``benchmarks/load_memory.py:measure``): peak RSS (VmHWM) above
the RSS before the load, in a fresh process, after a warm-up load of a tiny checkpoint (so modules
the first load imports are in the baseline), on a random bert-base checkpoint (110M float32
parameters, 418 MiB). RSS counts the memory-mapped file's pages once touched: a loader that copied
whole mapped tensors would show 2x (it did: 2.0-2.3x before ``read_blocks``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from conversion.safetensors_io import SafetensorsFile, read_blocks, save_file

ROOT = Path(__file__).resolve().parents[1]
BOUND = 1.25  # x the weights above the baseline; measured 1.02 (torch), 1.03 (tf), 1.04 (flax) on bert-base


def _benchmark():
    spec = importlib.util.spec_from_file_location("load_memory", ROOT / "benchmarks" / "load_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rss_file() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssFile:"))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """(bert-base directory, tiny directory, weight bytes, output directory)."""
    bench = _benchmark()
    root = tmp_path_factory.mktemp("load-memory")
    size = bench.write_checkpoint(root / "bert-base")
    bench.write_checkpoint(root / "tiny", **bench.TINY)
    (root / "out").mkdir()
    return bench, root / "bert-base", root / "tiny", size, root / "out"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")
@pytest.mark.parametrize("backend", ["torch", "tf", "flax"])
def test_from_pretrained_peaks_at_one_copy_of_the_weights(backend, checkpoints):
    bench, big, tiny, size, out = checkpoints
    peak, _ = bench.measure(backend, big, out, warmup=tiny)
    assert peak <= BOUND * size, f"{backend} from_pretrained peaked at {peak / size:.3f}x the weights ({size} bytes)"


def test_read_blocks_rebuild_every_tensor_exactly_within_the_block_size(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"matrix": rng.standard_normal((257, 33)).astype(np.float32), "vector": np.arange(10, dtype=np.int64),
               "scalar": np.array(3.5, np.float32), "empty": np.zeros((0, 4), np.float32)}
    save_file(tensors, tmp_path / "model.safetensors")
    mapped = SafetensorsFile(tmp_path / "model.safetensors")
    for name, expected in tensors.items():
        rebuilt = np.empty_like(expected)
        row_bytes = expected.nbytes // len(expected) if expected.ndim and len(expected) else expected.nbytes
        blocks = list(read_blocks(mapped, name, max_bytes=1000))  # every block's pages dropped before the copies
        for index, block in blocks:
            rebuilt[index] = block
            assert block.nbytes <= max(1000, row_bytes)
        np.testing.assert_array_equal(rebuilt, expected)
        # Views handed out before a block's pages were dropped still read the file's data.
        np.testing.assert_array_equal(mapped[name], expected)
    assert len(list(read_blocks(mapped, "matrix", max_bytes=1000))) == -(-257 // (1000 // (33 * 4)))
    # Any other mapping (a pytorch_model.bin read into numpy) is one block: the whole tensor.
    assert [i for i, _ in read_blocks({"matrix": tensors["matrix"]}, "matrix")] == [...]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")
def test_read_blocks_drop_the_mapped_pages_once_copied(tmp_path):
    big = np.random.default_rng(0).standard_normal((4096, 4096)).astype(np.float32)  # 64 MiB
    save_file({"big": big}, tmp_path / "model.safetensors")
    mapped = SafetensorsFile(tmp_path / "model.safetensors")
    copy = np.empty_like(big)
    before = _rss_file()
    for index, block in read_blocks(mapped, "big"):
        copy[index] = block
    grown = _rss_file() - before
    np.testing.assert_array_equal(copy, big)
    # Whole-view copying would leave all 64 MiB mapped; at most the last block may still be resident.
    assert grown <= 17 * 2**20, f"the mapped file still holds {grown / 2**20:.1f} MiB"


@pytest.mark.parametrize("backend", ["torch", "tf", "flax"])
def test_block_by_block_loading_is_bit_exact_single_sharded_and_bfloat16(backend, tmp_path, monkeypatch):
    """4 KiB blocks, so every matrix is copied in many blocks (16 MiB would copy a tiny model's in one)."""
    import torch

    import bert_torch
    import conversion.safetensors_io as sio
    from bert_core import BertConfig
    from harness import tiny_config_dict

    monkeypatch.setattr(sio, "BLOCK_BYTES", 4096)
    source = bert_torch.BertForMaskedLM(BertConfig(**tiny_config_dict(vocab_size=3000, hidden_size=64,
                                                                      intermediate_size=128)))
    source.save_pretrained(tmp_path / "single")
    source.save_pretrained(tmp_path / "sharded", max_shard_size="200KB")
    expected = {k: v.numpy().copy() for k, v in source.state_dict().items()}
    source.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    expected_bf16 = {k: v.float().numpy() for k, v in source.state_dict().items()}
    assert len(list((tmp_path / "sharded").glob("model-*.safetensors"))) > 1
    for name, reference in (("single", expected), ("sharded", expected), ("bf16", expected_bf16)):
        loaded = _canonical(backend, tmp_path / name)
        common = sorted(set(loaded) & set(reference))
        assert len(common) >= len(reference) - 2  # all but the tied decoder keys
        assert max(np.abs(loaded[k].astype(np.float32) - reference[k]).max() for k in common) == 0.0, name


def _canonical(backend: str, directory: Path) -> dict[str, np.ndarray]:
    """The canonical tensors ``backend``'s ``from_pretrained`` loaded from ``directory`` (checkpoint dtype)."""
    if backend == "torch":
        import bert_torch

        model = bert_torch.BertForMaskedLM.from_pretrained(directory, dtype="auto")
        return {k: v.float().numpy() for k, v in model.state_dict().items()}
    if backend == "tf":
        import bert_tf

        model = bert_tf.TFBertForMaskedLM.from_pretrained(directory)
        # The in-place path too: a built model filled block by block through ResourceStridedSliceAssign.
        from conversion import resolve_checkpoint

        rebuilt = bert_tf.TFBertForMaskedLM(model.config)
        bert_tf.loading.assign_canonical(rebuilt, resolve_checkpoint(directory).tensors)
        fresh, built = bert_tf.loading.canonical_tensors(model), bert_tf.loading.canonical_tensors(rebuilt)
        assert all(np.array_equal(fresh[k], built[k]) for k in fresh)
        return fresh
    import bert_flax

    return bert_flax.loading.canonical_state(bert_flax.FlaxBertForMaskedLM.from_pretrained(directory))


def test_tf_deferred_variables_are_all_created_and_left_off_keras_registry(tmp_path):
    import keras
    from keras.src.backend.common import global_state

    import bert_tf
    from bert_core import BertConfig
    from harness import tiny_config_dict

    bert_tf.TFBertForSequenceClassification(BertConfig(**tiny_config_dict(num_labels=3))).save_pretrained(tmp_path)
    model, info = bert_tf.TFBertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"]  # the MLM head is initialised by its own initialisers
    assert all(v._value is not None for v in model.variables)
    registry = global_state.get_global_attribute("uninitialized_variables", []) or []
    assert not {id(v) for v in model.variables} & {id(v) for v in registry}
    with keras.StatelessScope():  # exiting initialises the registry: must not meet our variables again
        pass
