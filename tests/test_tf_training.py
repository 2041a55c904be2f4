"""bert_tf compiled and training paths: XLA == eager with bucketed lengths, Keras fit, mixed precision."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import bert_tf
from bert_core import BertConfig
from harness import TOL, max_abs_diff, padded_batch, tiny_config_dict
from test_tf_helpers import head_labels

F32 = TOL["float32"]


def _model(class_name: str, **overrides):
    keras.utils.set_random_seed(0)
    return getattr(bert_tf, "TF" + class_name)(BertConfig(**tiny_config_dict(initializer_range=0.2, **overrides)))


@pytest.mark.parametrize("class_name", ["BertForMaskedLM", "BertForPreTraining", "BertForQuestionAnswering",
                                        "BertForSequenceClassification", "BertForMultipleChoice"])
def test_xla_compiled_call_equals_eager_call(class_name):
    model = _model(class_name)
    inputs = padded_batch(99, batch=4, seq=9, fully_padded_row=False)
    if class_name == "BertForMultipleChoice":
        inputs = {k: v.reshape(2, 2, -1) for k, v in inputs.items()}
    inputs |= head_labels(class_name, inputs, tiny_config_dict())
    flags = dict(output_hidden_states=True, output_attentions=True)
    eager, compiled = model(**inputs, **flags), model.compiled_call(**inputs, **flags)
    assert type(compiled) is type(eager) and compiled.keys() == eager.keys()
    mask = inputs["attention_mask"].reshape(-1, 9)
    for field in eager.keys():
        if field == "attentions":
            keep = np.broadcast_to(mask[:, None, :, None] * mask[:, None, None, :], eager.attentions[0].shape)
        elif field in ("hidden_states", "last_hidden_state") or eager[field].shape[:2] == mask.shape:
            keep = mask if field != "logits" or class_name != "BertForMultipleChoice" else None
        else:
            keep = None
        assert max_abs_diff(compiled[field], eager[field], keep) <= F32, field


def test_one_trace_serves_every_length_and_batch_size():
    model = _model("BertModel")
    compiled = bert_tf.CompiledCall(model)
    for batch, seq in [(2, 5), (3, 9), (1, 16), (4, 20)]:
        out = compiled(**padded_batch(99, batch=batch, seq=seq))
        assert tuple(out.last_hidden_state.shape) == (batch, seq, 32)
    assert compiled.traced_count() == 1
    assert [bert_tf.bucket_length(n) for n in (1, 16, 17, 300, 513)] == [16, 16, 32, 512, 1024]


def _synthetic_task(n: int = 96, seed: int = 0):
    """Label 1 when token 7 occurs in the sentence: learnable by a 2-layer model in a few epochs."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 30, n)
    ids = [rng.integers(10, 99, length) for length in lengths]
    labels = rng.integers(0, 2, n)
    for row, label in zip(ids, labels):
        if label:
            row[rng.integers(0, len(row))] = 7
    return ids, labels


def test_fit_fine_tunes_a_sequence_classifier_and_the_loss_falls():
    model = _model("BertForSequenceClassification")
    ids, labels = _synthetic_task()
    x = keras.utils.pad_sequences(ids, maxlen=32, padding="post")
    inputs = {"input_ids": x, "attention_mask": (x != 0).astype(np.int32), "labels": labels}
    model.compile(optimizer=keras.optimizers.Adam(1e-3))  # no loss: the model's own label loss
    history = model.fit(inputs, epochs=6, batch_size=16, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.6 * losses[0], losses


def test_fit_with_a_keras_loss_and_metric_on_labels_given_as_y():
    model = _model("BertForSequenceClassification")
    ids, labels = _synthetic_task()
    x = keras.utils.pad_sequences(ids, maxlen=32, padding="post")
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit({"input_ids": x, "attention_mask": (x != 0).astype(np.int32)}, labels, epochs=4,
                        batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert "accuracy" in history.history


@pytest.mark.slow  # XLA compiles the train step once per bucket: ~13 s on two CPU cores
def test_xla_fit_on_bucketed_batches():
    model = _model("BertForSequenceClassification")
    ids, labels = _synthetic_task()
    dataset = tf.data.Dataset.from_generator(
        lambda: (({"input_ids": row.astype(np.int32), "attention_mask": np.ones(len(row), np.int32)}, label)
                 for row, label in zip(ids, labels)),
        output_signature=({"input_ids": tf.TensorSpec([None], tf.int32),
                           "attention_mask": tf.TensorSpec([None], tf.int32)}, tf.TensorSpec([], tf.int64)))
    batches = bert_tf.bucket_dataset(dataset, 16, buckets=(16, 32), drop_remainder=True).cache()
    assert {tuple(f["input_ids"].shape) for f, _ in batches} == {(16, 16), (16, 32)}  # two XLA programs
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    history = model.fit(batches, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.6 * losses[0], losses


def test_mixed_bfloat16_keeps_layernorm_and_softmax_in_float32_with_bounded_error(tmp_path):
    """bfloat16 matmuls (8 mantissa bits) on this 2-layer model: the hidden states stay within
    TOL['bfloat16'] = 6e-2 of float32, attention rows sum to 1 within 1e-2 (probabilities are bfloat16)."""
    reference = _model("BertForMaskedLM")
    reference.save_pretrained(tmp_path)
    low = bert_tf.TFBertForMaskedLM.from_pretrained(tmp_path, dtype="mixed_bfloat16")
    batch = padded_batch(99, batch=3, seq=9)
    ref = reference(**batch, output_attentions=True)
    out = low(**batch, output_attentions=True)
    assert out.logits.dtype == tf.bfloat16
    assert low.bert.encoder.layer[0].output.LayerNorm.compute_dtype == "float32"
    mask = batch["attention_mask"]
    hidden_error = max_abs_diff(low.bert(**batch).last_hidden_state, reference.bert(**batch).last_hidden_state, mask)
    assert hidden_error <= TOL["bfloat16"]
    assert max_abs_diff(out.logits, ref.logits, mask) <= 4 * TOL["bfloat16"]  # logits ~5: relative 5e-2
    sums = np.asarray(tf.reduce_sum(tf.cast(out.attentions[0], tf.float32), -1))
    assert np.abs(sums - 1).max() <= 1e-2

    ids, labels = _synthetic_task(32)
    x = keras.utils.pad_sequences(ids, maxlen=32, padding="post")
    classifier = bert_tf.TFBertForSequenceClassification.from_pretrained(tmp_path, dtype="mixed_bfloat16")
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = classifier.fit({"input_ids": x, "attention_mask": (x != 0).astype(np.int32), "labels": labels},
                             epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
