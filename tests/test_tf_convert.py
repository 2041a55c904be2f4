"""`tribert convert --to tf|keras|savedmodel`, and back.

Claims, on the `transformers` 4.57.6 fixtures (`tests/fixtures/legacy/`):

- ``--to tf`` writes the ``tf_model.h5`` 4.x wrote for the same weights: the same
  layer groups, the same ``weight_names`` in the same order, bit-equal datasets
  (4.x's ``dropout_N`` group, which holds no weight, aside); converting it back
  to safetensors is bit-exact.
- ``--to keras`` writes a ``model.keras`` that ``keras.models.load_model`` opens;
  its canonical weights are bit-exact and its outputs equal 4.57.6's TF outputs.
- ``--to savedmodel`` writes a SavedModel over token ids (no vocabulary) whose
  outputs equal 4.57.6's, or over raw strings when the source has a vocab.
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

import bert_tf
import keras
import tensorflow as tf
from bert_core.errors import CheckpointError, ConfigError
from conversion import SafetensorsFile
from conversion.legacy import read_tf_h5
from harness import LEGACY_FIXTURES as FIXTURES
from harness import LEGACY_HEADS as HEADS
from harness import TOL, assert_same_tensors, legacy_twin, max_abs_diff, tiny_config_dict
from tokenization import BertTokenizerFast
from tribert.cli import main

OUTPUTS = {"pretraining": ("prediction_logits", "seq_relationship_logits"),
           "sequence_classification": ("logits",), "question_answering": ("start_logits", "end_logits")}
#: Outputs with a sequence axis: padded positions are excluded from the comparison.
PER_TOKEN = ("prediction_logits", "start_logits", "end_logits")


def _convert(src, to, out, *extra):
    assert main(["convert", str(src), "--to", to, "--out", str(out), *extra]) == 0


def _h5_layout(path):
    """{layer: [(weight name, array), ...]} for the layers that hold weights."""
    with h5py.File(path, "r") as f:
        layers = {}
        for layer in f.attrs["layer_names"]:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f[layer].attrs["weight_names"]]
            if names:
                layers[str(layer)] = [(n, f[layer][n][()]) for n in names]
        return layers


def _reference(head_dir):
    with np.load(FIXTURES / head_dir / "reference.npz") as data:
        return dict(data)


@pytest.mark.parametrize("head_dir", HEADS)
def test_to_tf_writes_the_h5_transformers_4_wrote_and_converts_back_bit_exact(tmp_path, head_dir):
    _convert(FIXTURES / head_dir / "model.safetensors", "tf", tmp_path / "tf")
    ours, theirs = _h5_layout(tmp_path / "tf" / "tf_model.h5"), _h5_layout(FIXTURES / head_dir / "tf_model.h5")
    assert list(ours) == list(theirs)
    for layer in theirs:
        assert [n for n, _ in ours[layer]] == [n for n, _ in theirs[layer]], layer
        for (name, a), (_, b) in zip(ours[layer], theirs[layer]):
            assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert_same_tensors(read_tf_h5(tmp_path / "tf" / "tf_model.h5"), read_tf_h5(FIXTURES / head_dir / "tf_model.h5"))
    _convert(tmp_path / "tf" / "tf_model.h5", "safetensors", tmp_path / "back")
    assert_same_tensors(dict(SafetensorsFile(tmp_path / "back" / "model.safetensors")), legacy_twin(head_dir))


def test_to_tf_base_model_and_bfloat16(tmp_path):
    _convert(FIXTURES / "sequence_classification" / "model.safetensors", "tf", tmp_path / "base", "--head", "base",
             "--drop-unused")
    assert list(_h5_layout(tmp_path / "base" / "tf_model.h5")) == ["bert"]
    with h5py.File(tmp_path / "base" / "tf_model.h5") as f:
        assert f["bert"].attrs["weight_names"][0] == "tf_bert_model/bert/embeddings/word_embeddings/weight:0"
    _convert(tmp_path / "base" / "tf_model.h5", "safetensors", tmp_path / "back")
    _convert(tmp_path / "back", "safetensors", tmp_path / "again")
    with pytest.raises(CheckpointError, match="bfloat16"):
        bert_tf.write_tf_h5({"embeddings.LayerNorm.weight": np.zeros(4, dtype="bfloat16")}, None, "base",
                            tmp_path / "x.h5")
    assert main(["convert", str(FIXTURES / "pretraining"), "--to", "tf", "--out", str(tmp_path / "bf"),
                 "--dtype", "bfloat16"]) != 0
    assert not (tmp_path / "bf").exists()


@pytest.mark.parametrize("head_dir", HEADS)
def test_to_keras_loads_with_keras_and_gives_the_4x_outputs(tmp_path, head_dir):
    _convert(FIXTURES / head_dir, "keras", tmp_path / "keras")
    model = keras.models.load_model(tmp_path / "keras" / "model.keras")
    assert_same_tensors(bert_tf.canonical_tensors(model), legacy_twin(head_dir))
    ref = _reference(head_dir)
    inputs = {k.split(".", 1)[1]: tf.constant(v) for k, v in ref.items() if k.startswith("input.")}
    outputs = model(**inputs)
    for field in OUTPUTS[head_dir]:
        mask = ref["input.attention_mask"] if field in PER_TOKEN else None
        assert max_abs_diff(getattr(outputs, field), ref[f"tf.{field}"], mask) <= TOL["float32"], field


@pytest.mark.parametrize("head_dir", ["question_answering", "pretraining"])
def test_to_savedmodel_over_token_ids_gives_the_4x_outputs(tmp_path, head_dir):
    _convert(FIXTURES / head_dir, "savedmodel", tmp_path / "sm")
    served = tf.saved_model.load(str(tmp_path / "sm" / "saved_model"))
    # no vocabulary, so no string signature: token ids in int32 (4.x's serving dtype) and int64
    assert set(served.signatures) == {"serving_default", "int64_serving"}
    ref = _reference(head_dir)
    for signature, dtype in (("serving_default", tf.int32), ("int64_serving", tf.int64)):
        outputs = served.signatures[signature](**{k.split(".", 1)[1]: tf.constant(v, dtype)
                                                  for k, v in ref.items() if k.startswith("input.")})
        for field in OUTPUTS[head_dir]:
            mask = ref["input.attention_mask"] if field in PER_TOKEN else None
            assert max_abs_diff(outputs[field], ref[f"tf.{field}"], mask) <= TOL["float32"], (signature, field)


def test_to_savedmodel_with_a_vocab_serves_raw_strings(tmp_path, real_model_dir):
    """A tiny random model beside the real vocab.txt: the SavedModel takes strings and pairs."""
    src = tmp_path / "src"
    model = bert_tf.TFBertForSequenceClassification(
        bert_tf.BertConfig(**tiny_config_dict(vocab_size=30522, initializer_range=0.02, num_labels=3)))
    model.save_pretrained(src)
    shutil.copy(real_model_dir / "vocab.txt", src / "vocab.txt")
    _convert(src, "savedmodel", tmp_path / "sm")
    assert (tmp_path / "sm" / "vocab.txt").is_file()
    served = tf.saved_model.load(str(tmp_path / "sm" / "saved_model"))
    texts, pairs = ["Hello [MASK] world!", "Café déjà vu"], ["a second segment", ""]
    tokenizer = BertTokenizerFast(src / "vocab.txt")
    for signature, args in (("serving_default", (texts,)), ("serving_pairs", (texts, pairs))):
        names = ("text", "text_pair")[: len(args)]
        got = served.signatures[signature](**{n: tf.constant(a) for n, a in zip(names, args)})
        encoding = tokenizer(*args, truncation=True, padding="longest", return_tensors="np")
        np.testing.assert_array_equal(got["input_ids"], encoding["input_ids"])
        expected = model(**{k: tf.constant(v) for k, v in encoding.items()}).logits
        assert max_abs_diff(got["logits"], expected) <= TOL["float32"]


def test_bad_target_kind_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="kind must be one of"):
        bert_tf.write_converted({}, None, "base", tmp_path, kind="onnx")
