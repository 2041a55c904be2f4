"""TF eager inference follows bert_core.unpad's rule: zeros at masked positions, the real tokens packed when it pays.

The reference is ``transformers`` PyTorch on the same random checkpoint (real positions, the pooler, pooled
heads), TF's own padded path (``padding_read``) and, for the numbers at every position, bert_torch's default
call, which follows the same rule. Calls the rule excludes must return transformers' values at masked positions.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import torch
import transformers

import bert_tf
import bert_torch
from bert_core import ConfigError
from bert_core.unpad import padding_read
from bert_tf.compiled import PACKING_INPUTS
from harness import assert_close, padded_batch
from test_tf_helpers import head_inputs, parity_config

CONFIG = parity_config()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """``{class name: (directory, transformers model)}``: transformers' random weights saved by transformers."""
    made = {}

    def get(class_name: str):
        if class_name not in made:
            torch.manual_seed(0)
            hf_config = transformers.BertConfig(**CONFIG)
            hf_config._attn_implementation = "eager"
            hf = getattr(transformers, class_name)(hf_config).eval()
            directory = tmp_path_factory.mktemp(class_name)
            hf.save_pretrained(directory)
            made[class_name] = directory, hf
        return made[class_name]

    return get


@pytest.fixture(scope="module")
def models(checkpoints):
    """``{class name: (TF model, transformers model)}`` on the same weights."""
    made = {}

    def get(class_name: str):
        if class_name not in made:
            directory, hf = checkpoints(class_name)
            model = getattr(bert_tf, "TF" + class_name).from_pretrained(directory)
            made[class_name] = model, hf
        return made[class_name]

    return get


def batch(kind: str = "right") -> dict:
    """Right-padded rows of 11, 8, 5, 3 tokens (39% padding: packed); ``left``: the same rows left-padded;
    ``low``: one padded token in 44 (below MIN_PADDING_FRACTION)."""
    inputs = padded_batch(CONFIG["vocab_size"], batch=4, seq=11, fully_padded_row=False)
    if kind == "left":
        inputs = {k: v[:, ::-1].copy() for k, v in inputs.items()}
    elif kind == "low":
        inputs["attention_mask"] = np.ones_like(inputs["attention_mask"])
        inputs["attention_mask"][-1, -1] = 0
    return inputs


def reference(hf, inputs: dict, **flags):
    with torch.no_grad():
        return hf(**{k: torch.from_numpy(v) for k, v in inputs.items()}, **flags)


def packed_graphs(model) -> list[int]:
    """Traces of each default graph that takes the batch and the packed path's inputs (one graph per argument set)."""
    names = ("attention_mask", "input_ids", "token_type_ids", *PACKING_INPUTS)
    return [f.experimental_get_tracing_count() for key, f in model._compiled(jit_compile=False)._functions.items()
            if key[0] == names]


def assert_rule(got, expected, mask) -> None:
    """``got`` equals ``expected`` on real positions and is exactly zero on masked ones."""
    assert_close(got, expected, mask=mask)
    assert np.count_nonzero(np.asarray(got)[np.asarray(mask) == 0]) == 0, "masked positions should be zeros"


def test_the_default_call_equals_transformers_on_real_positions_and_zeroes_the_padding(models, monkeypatch):
    model, hf = models("BertModel")
    inputs = batch()
    mask = inputs["attention_mask"]
    expected = reference(hf, inputs, output_hidden_states=True)
    with padding_read():
        padded = model(**inputs, output_hidden_states=True)
    model._called_eagerly = False  # the first inference call is the eager Keras call: it follows the rule too
    packs = []
    monkeypatch.setattr(bert_tf.compiled.PackedTokens, "unpack", _counted(bert_tf.compiled.PackedTokens.unpack, packs))
    for call in ("first (eager)", "graph"):
        got = model(**inputs, output_hidden_states=True)
        assert packs or call == "graph", "the eager call's dense layers should run on the packed tokens"
        assert_rule(got.last_hidden_state, expected.last_hidden_state, mask)
        for ours, theirs, own in zip(got.hidden_states, expected.hidden_states, padded.hidden_states):
            assert_rule(ours, theirs, mask)
            assert_close(ours, own, mask=mask)
        assert_close(got.last_hidden_state, padded.last_hidden_state, mask=mask)
        assert_close(got.pooler_output, expected.pooler_output)
        assert_close(got.pooler_output, padded.pooler_output)
    assert set(packed_graphs(model)) == {1}


def _counted(method, calls: list):
    def counted(self, *args):
        calls.append(1)
        return method(self, *args)

    return counted


@pytest.mark.parametrize("kind", ["left", "low"])
def test_unpackable_batches_are_zeroed_with_the_pooler_of_transformers(models, kind, monkeypatch):
    model, hf = models("BertModel")
    inputs = batch(kind)
    expected = reference(hf, inputs)
    packed = packed_graphs(model)
    packs = []
    monkeypatch.setattr(bert_tf.compiled.PackedTokens, "unpack", _counted(bert_tf.compiled.PackedTokens.unpack, packs))
    for _ in range(2):  # the first call (eager on a new model) and the graph
        got = model(**inputs)
        assert_rule(got.last_hidden_state, expected.last_hidden_state, inputs["attention_mask"])
        assert_close(got.pooler_output, expected.pooler_output)  # left padding: position 0 is padding, as computed
    assert not packs and packed_graphs(model) == packed  # not packed


def _graph_call(model, inputs):
    return tf.function(lambda ids, mask, types: model(input_ids=ids, attention_mask=mask, token_type_ids=types))(
        *(tf.constant(inputs[k]) for k in ("input_ids", "attention_mask", "token_type_ids")))


EXCEPTIONS = {
    "training": lambda model, inputs: model(**inputs, training=True),
    "tape": lambda model, inputs: _taped(model, inputs),
    "output_attentions": lambda model, inputs: model(**inputs, output_attentions=True),
    "padding_read": lambda model, inputs: _read_padding(model, inputs),
    "tf.function": _graph_call,
}


def _taped(model, inputs):
    with tf.GradientTape():
        return model(**inputs)


def _read_padding(model, inputs):
    with padding_read():
        return model(**inputs)


@pytest.mark.parametrize("exception", list(EXCEPTIONS))
def test_calls_the_rule_excludes_return_transformers_values_at_masked_positions(models, exception):
    model, hf = models("BertModel")
    inputs = batch()
    expected = reference(hf, inputs)
    assert np.count_nonzero(expected.last_hidden_state.numpy()[inputs["attention_mask"] == 0]) > 0
    got = EXCEPTIONS[exception](model, inputs)
    assert_close(got.last_hidden_state, expected.last_hidden_state)
    assert_close(got.pooler_output, expected.pooler_output)


def test_set_unpadding_false_never_and_true_in_training_too(models):
    model, hf = models("BertModel")
    inputs = batch()
    mask = inputs["attention_mask"]
    expected = reference(hf, inputs)
    try:
        model.set_unpadding(False)
        assert_close(model(**inputs).last_hidden_state, expected.last_hidden_state)
        model.set_unpadding(True)
        assert_rule(model(**inputs, training=True).last_hidden_state, expected.last_hidden_state, mask)
        assert_close(_graph_call(model, inputs).last_hidden_state, expected.last_hidden_state)  # tracing: padded
        with pytest.raises(ConfigError, match="set_unpadding"):
            model.set_unpadding("yes")
    finally:
        model.set_unpadding(None)
    assert_rule(model(**inputs).last_hidden_state, expected.last_hidden_state, mask)


@pytest.mark.parametrize("class_name", ["BertForTokenClassification", "BertForSequenceClassification",
                                        "BertForMultipleChoice"])
def test_heads_on_the_packed_path_equal_transformers(models, class_name):
    model, hf = models(class_name)
    inputs = head_inputs(class_name, CONFIG, fully_padded_row=False)
    expected = reference(hf, inputs)
    got = model(**inputs)
    got = model(**inputs)  # the graph
    assert set(packed_graphs(model)) == {1}
    if class_name == "BertForTokenClassification":
        mask = inputs["attention_mask"]
        assert_close(got.logits, expected.logits, mask=mask)
        # Masked positions: the classifier applied to the zeros the rule puts there, i.e. its bias.
        bias = model.classifier.bias.numpy()
        assert_close(got.logits.numpy()[mask == 0], np.broadcast_to(bias, (int((mask == 0).sum()), len(bias))))
    else:
        assert_close(got.logits, expected.logits)


def test_labels_of_a_per_token_head_keep_the_padded_path_and_pooled_ones_pack(models):
    for class_name in ("BertForTokenClassification", "BertForSequenceClassification"):
        model, hf = models(class_name)
        inputs = head_inputs(class_name, CONFIG, fully_padded_row=False)
        labels = (np.where(inputs["attention_mask"] == 1, 1, -100) if class_name == "BertForTokenClassification"
                  else np.array([0, 1, 1, 0]))
        expected = reference(hf, {**inputs, "labels": labels})
        got = model(**inputs, labels=labels)
        assert_close(got.loss, expected.loss)
        assert_close(got.logits, expected.logits)  # every position: the per-token head read the padded path


def test_one_trace_serves_batches_of_every_length_and_token_count(models):
    model, hf = models("BertModel")
    rng = np.random.default_rng(1)
    for seq, lengths in ((11, (11, 8, 5, 3)), (16, (16, 2)), (7, (7, 7, 1, 4, 2)), (30, (30, 9, 20))):
        ids = rng.integers(1, CONFIG["vocab_size"], (len(lengths), seq))
        mask = (np.arange(seq)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
        inputs = {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": np.zeros_like(mask)}
        got = model(**inputs, output_hidden_states=True)  # the argument set of the first test: no new trace
        assert_rule(got.last_hidden_state, reference(hf, inputs).last_hidden_state, mask)
    assert set(packed_graphs(model)) == {1}


def test_torch_and_tf_default_calls_agree_at_every_position(checkpoints, models):
    """Both follow the rule: the same numbers at real positions and the same zeros at masked ones."""
    model, _ = models("BertModel")
    directory, _ = checkpoints("BertModel")
    reference_model = bert_torch.BertModel.from_pretrained(directory).eval()
    inputs = batch()
    with torch.no_grad():
        expected = reference_model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, output_hidden_states=True)
    got = model(**inputs, output_hidden_states=True)
    assert_close(got.last_hidden_state, expected.last_hidden_state)
    for ours, theirs in zip(got.hidden_states, expected.hidden_states):
        assert_close(ours, theirs)
    assert_close(got.pooler_output, expected.pooler_output)


def test_relative_positions_on_the_packed_path_equal_the_padded_path():
    """transformers 5.x dropped relative position embeddings: the reference is the model's own padded path."""
    model = bert_tf.TFBertModel(bert_tf.BertConfig(**{**CONFIG, "position_embedding_type": "relative_key_query"}))
    inputs = batch()
    with padding_read():
        padded = model(**inputs)
    model(**inputs)
    got = model(**inputs)
    assert set(packed_graphs(model)) == {1}
    assert_rule(got.last_hidden_state, padded.last_hidden_state, inputs["attention_mask"])
    assert_close(got.pooler_output, padded.pooler_output)
