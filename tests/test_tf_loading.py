"""bert_tf checkpoints: the real all-MiniLM-L6-v2, save -> transformers, sharding, hub ids, key reports,
errors, dtypes, the Keras-native ``.keras`` round trip, and the import boundary."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import keras
import numpy as np
import pytest
import torch
import transformers

import bert_tf
from bert_core import BertConfig, CheckpointError, ConfigError
from bert_core.unpad import padding_read
from conversion import SafetensorsFile
from harness import TOL, max_abs_diff, padded_batch, tiny_config_dict
from test_tf_helpers import parity_config, tf_pair, to_torch

F32 = TOL["float32"]


def test_real_all_minilm_checkpoint_matches_transformers(real_model_dir, caplog):
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        ours, info = bert_tf.TFBertModel.from_pretrained(real_model_dir, output_loading_info=True)
    # Keys without the `bert.` prefix and the legacy position_ids buffer load without complaint.
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert "Loaded" in caplog.text
    hf = transformers.BertModel.from_pretrained(real_model_dir).eval()
    inputs = padded_batch(ours.config.vocab_size, batch=3, seq=16)
    mine = ours(**inputs)
    with torch.no_grad():
        ref = hf(**to_torch(inputs))
    mask = inputs["attention_mask"]
    assert max_abs_diff(mine.last_hidden_state, ref.last_hidden_state, mask) <= F32
    assert max_abs_diff(mine.pooler_output, ref.pooler_output, mask.any(1)) <= F32
    assert np.isfinite(mine.last_hidden_state.numpy()).all()


def test_sentence_embeddings_match_sentence_transformers(real_model_dir):
    """The seed's use: mean pooling over real tokens, L2-normalised, as the checkpoint's modules say."""
    from sentence_transformers import SentenceTransformer

    sentences = ["Plants create [MASK] through a process known as photosynthesis.", "A short one.",
                 "The quick brown fox jumps over the lazy dog near the river bank."]
    reference = SentenceTransformer(str(real_model_dir), device="cpu").encode(sentences)
    batch = transformers.BertTokenizerFast.from_pretrained(real_model_dir)(sentences, padding=True, return_tensors="np")
    hidden = bert_tf.TFBertModel.from_pretrained(real_model_dir)(**batch).last_hidden_state.numpy()
    mask = batch["attention_mask"][..., None]
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    assert max_abs_diff(pooled / np.linalg.norm(pooled, axis=-1, keepdims=True), reference) <= F32


@pytest.mark.parametrize("class_name", ["BertForPreTraining", "BertForSequenceClassification", "BertModel"])
def test_save_pretrained_writes_what_transformers_writes_and_loads(class_name, tmp_path):
    ours, hf = tf_pair(class_name)
    ours.save_pretrained(tmp_path / "ours")
    hf.save_pretrained(tmp_path / "hf")
    assert set(SafetensorsFile(tmp_path / "ours" / "model.safetensors")) == \
        set(SafetensorsFile(tmp_path / "hf" / "model.safetensors"))
    saved = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert saved["architectures"] == [class_name]
    reloaded = getattr(transformers, class_name).from_pretrained(tmp_path / "ours").eval()
    inputs = padded_batch(99, batch=3, seq=7, fully_padded_row=False)
    with torch.no_grad():
        ref = reloaded(**to_torch(inputs))
    with padding_read():  # every position as transformers computes it
        mine = ours(**inputs)
    for field in mine.keys():
        assert max_abs_diff(mine[field], ref[field]) <= F32, field


def test_sharded_checkpoint_round_trips(tmp_path):
    model = bert_tf.TFBertForMaskedLM(BertConfig(**tiny_config_dict()))
    model.save_pretrained(tmp_path, max_shard_size=20_000)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    again, info = bert_tf.TFBertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert info["tied_keys"] == ["cls.predictions.decoder.weight", "cls.predictions.decoder.bias"]
    batch = padded_batch(99)
    assert max_abs_diff(again(**batch).logits, model(**batch).logits) == 0.0


def test_hub_id_resolves_from_the_local_cache(tmp_path, real_model_dir):
    snapshot = tmp_path / "models--org--tiny" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (tmp_path / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "models--org--tiny" / "refs" / "main").write_text("a" * 40)
    bert_tf.TFBertModel(BertConfig(**tiny_config_dict())).save_pretrained(snapshot)
    model = bert_tf.TFBertModel.from_pretrained("org/tiny", cache_dir=tmp_path, local_files_only=True)
    assert model.config.hidden_size == 32


def test_head_on_a_base_checkpoint_reports_new_and_unused_weights(tmp_path, caplog):
    ours, _ = tf_pair("BertForPreTraining")
    ours.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="bert_tf"):
        clf, info = bert_tf.TFBertForSequenceClassification.from_pretrained(tmp_path, num_labels=3,
                                                                            output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    assert {k.split(".")[0] for k in info["unexpected_keys"]} == {"cls"}
    assert "newly initialized" in caplog.text and "were not used" in caplog.text
    assert clf.classifier.kernel.shape == (32, 3)
    assert max_abs_diff(clf.bert.pooler.dense.kernel, ours.bert.pooler.dense.kernel) == 0.0


def test_shape_mismatch_names_key_and_shapes_or_reinitialises(tmp_path):
    bert_tf.TFBertForSequenceClassification(BertConfig(**tiny_config_dict(num_labels=2))).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"classifier.weight: checkpoint \(2, 32\) vs model \(5, 32\)"):
        bert_tf.TFBertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    _, info = bert_tf.TFBertForSequenceClassification.from_pretrained(tmp_path, num_labels=5,
                                                                     ignore_mismatched_sizes=True,
                                                                     output_loading_info=True)
    assert ("classifier.weight", (2, 32), (5, 32)) in info["mismatched_keys"]


def test_missing_files_raise_actionable_errors(tmp_path):
    with pytest.raises(ConfigError, match="no config.json"):
        bert_tf.TFBertModel.from_pretrained(tmp_path)
    BertConfig(**tiny_config_dict()).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="no weights found"):
        bert_tf.TFBertModel.from_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="dtype 'int8' is not supported"):
        bert_tf.TFBertModel.from_pretrained(tmp_path, dtype="int8")


@pytest.mark.parametrize("dtype,variable_dtype,norm_dtype", [("bfloat16", "bfloat16", "bfloat16"),
                                                             ("mixed_bfloat16", "float32", "float32")])
def test_dtype_sets_the_keras_policy(dtype, variable_dtype, norm_dtype, tmp_path):
    model = bert_tf.TFBertForMaskedLM(BertConfig(**tiny_config_dict()))
    model.save_pretrained(tmp_path)
    low = bert_tf.TFBertForMaskedLM.from_pretrained(tmp_path, dtype=dtype)
    weights = low.named_weights()
    assert weights["bert.encoder.layer.0.attention.self.query.kernel"].dtype == variable_dtype
    assert low.bert.encoder.layer[0].output.LayerNorm.compute_dtype == norm_dtype
    assert low.bert.encoder.layer[0].output.dense.compute_dtype == "bfloat16"


def test_named_weights_are_the_checkpoint_paths_with_keras_leaves():
    model = bert_tf.TFBertForPreTraining(BertConfig(**tiny_config_dict()))
    keys = list(model.named_weights())
    assert keys[:3] == ["bert.embeddings.word_embeddings.embeddings", "bert.embeddings.position_embeddings.embeddings",
                        "bert.embeddings.token_type_embeddings.embeddings"]
    assert "bert.encoder.layer.1.attention.output.LayerNorm.gamma" in keys
    assert "cls.predictions.bias" in keys and not any("decoder" in k for k in keys)
    assert len(keys) == len(model.weights)  # every variable, once (the decoder shares the word embeddings)


def test_initialisation_is_like_transformers():
    config = BertConfig(**tiny_config_dict(vocab_size=500, hidden_size=64, initializer_range=0.02))
    weights = {k: v.numpy() for k, v in bert_tf.TFBertForMaskedLM(config).named_weights().items()}
    table = weights["bert.embeddings.word_embeddings.embeddings"]
    assert not table[config.pad_token_id].any()
    assert abs(table[1:].std() - 0.02) < 0.002
    assert (weights["bert.embeddings.LayerNorm.gamma"] == 1).all() and not weights["cls.predictions.bias"].any()
    assert not weights["bert.encoder.layer.0.attention.self.query.bias"].any()


def test_keras_save_and_load_model_round_trip(tmp_path):
    config = BertConfig(**tiny_config_dict(num_labels=3, id2label={0: "a", 1: "b", 2: "c"}))
    model = bert_tf.TFBertForSequenceClassification(config)
    model.save(tmp_path / "model.keras")
    again = keras.models.load_model(tmp_path / "model.keras")
    assert type(again) is bert_tf.TFBertForSequenceClassification
    assert again.config == config and again.config.id2label == {0: "a", 1: "b", 2: "c"}
    batch = padded_batch(99)
    assert max_abs_diff(again(**batch).logits, model(**batch).logits) == 0.0


@pytest.mark.parametrize("class_name", ["BertModel", "BertLMHeadModel"])
def test_get_config_round_trips_the_whole_bert_config(class_name):
    config = BertConfig(**tiny_config_dict(is_decoder=True, add_cross_attention=True, hidden_act="gelu_new",
                                           position_embedding_type="relative_key", some_extra_field=[1, 2]))
    model = getattr(bert_tf, "TF" + class_name)(config)
    clone = type(model).from_config(model.get_config())
    assert clone.config == config and clone.config.some_extra_field == [1, 2]
    assert list(clone.named_weights()) == list(model.named_weights())


def test_importing_bert_tf_imports_no_torch_or_jax():
    code = "import sys, bert_tf; print(sorted(m for m in ('torch', 'jax', 'flax') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_auto_classes_pick_the_head_from_the_registry(tmp_path):
    from bert_core import HEADS

    for head in HEADS.values():
        auto = getattr(bert_tf, head.auto_name)
        assert auto.model_class() is getattr(bert_tf, head.tf_class_name)
        assert getattr(bert_tf, "TF" + head.auto_name) is auto
    bert_tf.TFBertForMaskedLM(BertConfig(**tiny_config_dict())).save_pretrained(tmp_path)
    assert type(bert_tf.AutoModelForMaskedLM.from_pretrained(tmp_path)) is bert_tf.TFBertForMaskedLM
    with pytest.raises(ConfigError, match="from_pretrained"):
        bert_tf.AutoModel()
