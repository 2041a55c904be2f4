"""``model(**inputs)`` in eager inference runs a compiled graph (bert_tf.compiled) and returns what the eager call returns.

The reference is the same model with Keras' ``run_eagerly = True``: the plain eager Keras call.
Claims: every head and call option gives the eager call's output class, fields and numbers (zeros at masked
positions where bert_core.unpad's rule applies, whose own claims are tests/test_tf_unpad.py's); calls the
compiled path cannot take (cache, inputs_embeds, head_mask) fall back to eager; a tape, ``training``,
``tf.function`` and ``run_eagerly`` keep the eager Keras call (gradients equal); a stream of shapes
traces one graph.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import tensorflow as tf

import bert_tf
from bert_core import BertConfig, InputError
from bert_core.outputs import ModelOutput
from harness import assert_close, padded_batch, tiny_config_dict
from test_tf_helpers import head_labels

CONFIG = tiny_config_dict(initializer_range=0.2)
CLASSES = ["BertModel", "BertForPreTraining", "BertLMHeadModel", "BertForMaskedLM", "BertForNextSentencePrediction",
           "BertForSequenceClassification", "BertForMultipleChoice", "BertForTokenClassification",
           "BertForQuestionAnswering"]


@pytest.fixture(scope="module")
def models():
    made = {}

    def get(class_name: str):
        if class_name not in made:
            overrides = {"is_decoder": True} if class_name == "BertLMHeadModel" else {}
            model = getattr(bert_tf, "TF" + class_name)(BertConfig(**CONFIG, **overrides))
            model(**_inputs(class_name))  # the first inference call is eager (and builds); the graph serves from the second
            made[class_name] = model
        return made[class_name]

    return get


@pytest.fixture
def compiled_calls(monkeypatch):
    """How many calls went through :class:`bert_tf.CompiledCall` so far (a counter read as ``compiled_calls()``)."""
    count = [0]
    original = bert_tf.CompiledCall.__call__

    def counted(self, *args, **kwargs):
        count[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(bert_tf.CompiledCall, "__call__", counted)
    return lambda: count[0]


def _inputs(class_name: str) -> dict:
    inputs = padded_batch(CONFIG["vocab_size"], batch=4, seq=9, fully_padded_row=False)
    if class_name == "BertForMultipleChoice":
        inputs = {k: v.reshape(2, 2, -1) for k, v in inputs.items()}
    return inputs


@contextlib.contextmanager
def _eager(model):
    model.run_eagerly = True
    try:
        yield
    finally:
        model.run_eagerly = False


def _traces(model) -> int:
    return model._compiled(jit_compile=False).traced_count()


def _default_and_eager(model, **arguments):
    """``(default call, eager call, graphs traced by the default call)``."""
    before = _traces(model)
    default = model(**arguments)
    with _eager(model):
        eager = model(**arguments)
    return default, eager, _traces(model) - before


def _assert_same(default, eager) -> None:
    """Same output class, same fields (nested tuples too), numbers within float32 parity."""
    assert type(default) is type(eager)
    if isinstance(eager, ModelOutput):
        assert default.keys() == eager.keys()
        default, eager = default.to_tuple(), eager.to_tuple()
    if isinstance(eager, tuple):
        assert len(default) == len(eager)
        for d, e in zip(default, eager):
            _assert_same(d, e)
    else:
        assert_close(default, eager)


@pytest.mark.parametrize("class_name", CLASSES)
def test_every_head_equals_the_eager_call(models, class_name):
    model = models(class_name)
    inputs = _inputs(class_name)
    labels = head_labels(class_name, inputs, CONFIG) if model.label_names else {}
    flags = dict(output_hidden_states=True, output_attentions=True)
    default, eager, traced = _default_and_eager(model, **inputs, **labels, **flags)
    _assert_same(default, eager)
    assert traced == 1
    if labels:
        assert default.loss is not None
    # The same graph serves the call without labels, as a tuple; the decoder then wants its cache
    # (config.use_cache), which only the eager call returns.
    default, eager, traced = _default_and_eager(model, **inputs, **flags, return_dict=False)
    _assert_same(default, eager)
    assert traced == 0


OPTIONS = {
    "positions, float mask": lambda b: {**b, "attention_mask": b["attention_mask"].astype(np.float32),
                                        "position_ids": np.broadcast_to(np.arange(3, 12), (4, 9)).copy()},
    "ids only": lambda b: {"input_ids": b["input_ids"]},
    "block-diagonal mask": lambda b: {**b, "attention_mask": np.tril(np.ones((4, 9, 9), np.int32))},
    "positional": lambda b: ((b["input_ids"], b["attention_mask"]), {}),
    "input dict": lambda b: ((b,), {}),
    "head_mask": lambda b: {**b, "head_mask": np.array([1.0, 0.0, 1.0, 1.0], np.float32)},
    "inputs_embeds": lambda b: {"inputs_embeds": np.random.default_rng(0).standard_normal((4, 9, 32), np.float32),
                                "attention_mask": b["attention_mask"]},
}


#: The options whose default call follows bert_core.unpad's rule (a 2-D mask, compiled): zeros at masked positions.
ZEROED = ("positions, float mask", "positional", "input dict")


def _padding_zeroed(output, mask):
    """``output`` with its sequence outputs set to zero at masked positions, as the inference rule returns them."""
    keep = np.asarray(mask, bool)[:, :, None]
    output.last_hidden_state = tf.where(keep, output.last_hidden_state, 0.0)
    return output


@pytest.mark.parametrize("option", list(OPTIONS))
def test_call_options_equal_the_eager_call(models, compiled_calls, option):
    model = models("BertModel")
    made = OPTIONS[option](_inputs("BertModel"))
    args, kwargs = made if isinstance(made, tuple) else ((), made)
    calls = compiled_calls()
    default = model(*args, **kwargs)
    assert compiled_calls() == calls + (option not in ("head_mask", "inputs_embeds"))
    with _eager(model):
        eager = model(*args, **kwargs)
    if option in ZEROED:  # the run_eagerly call keeps transformers' values there
        eager = _padding_zeroed(eager, _inputs("BertModel")["attention_mask"])
    _assert_same(default, eager)


def test_the_decoder_cache_runs_eagerly_and_labels_or_use_cache_false_compile(models):
    model = models("BertLMHeadModel")
    inputs = _inputs("BertLMHeadModel")
    default, eager, traced = _default_and_eager(model, **inputs, use_cache=True)
    assert traced == 0 and default.past_key_values is not None
    _assert_same(default, eager)
    default, eager, _ = _default_and_eager(model, **inputs, use_cache=False)
    assert default.past_key_values is None
    _assert_same(default, eager)


def test_gradients_under_a_tape_are_the_eager_ones(models):
    model = models("BertForSequenceClassification")
    inputs = {**_inputs("BertForSequenceClassification"), "labels": np.array([0, 1, 1, 0])}

    def gradients():
        with tf.GradientTape() as tape:
            loss = model(**inputs, training=False).loss
        return tape.gradient(loss, model.trainable_weights)

    before = _traces(model)
    default = gradients()
    assert _traces(model) == before
    with _eager(model):
        eager = gradients()
    assert all(g is not None for g in default)
    for d, e in zip(default, eager):
        assert_close(tf.convert_to_tensor(d), tf.convert_to_tensor(e))


def test_training_and_tf_function_keep_the_keras_call(models):
    model = models("BertModel")
    inputs = _inputs("BertModel")
    before = _traces(model)
    model(**inputs, training=True)
    traced = tf.function(lambda ids, mask: model(input_ids=ids, attention_mask=mask).last_hidden_state)
    in_graph = traced(tf.constant(inputs["input_ids"]), tf.constant(inputs["attention_mask"]))
    assert _traces(model) == before
    with _eager(model):
        assert_close(in_graph, model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
                     .last_hidden_state)


def test_bad_ids_raise_before_the_compiled_call(models):
    model = models("BertModel")
    ids = _inputs("BertModel")["input_ids"].copy()
    ids[1, 2] = CONFIG["vocab_size"]
    with pytest.raises(InputError, match="input_ids"):
        model(input_ids=ids)


def test_a_stream_of_shapes_traces_one_graph():
    # Lengths 1..64 at batch sizes 1..4: 256 shapes, one plain graph (no per-shape compilation).
    model = bert_tf.TFBertModel(BertConfig(**CONFIG))
    rng = np.random.default_rng(0)
    for batch in range(1, 5):
        for length in range(1, 65):
            model(input_ids=rng.integers(1, CONFIG["vocab_size"], (batch, length)))
    assert _traces(model) == 1
    ids = rng.integers(1, CONFIG["vocab_size"], (3, 37))
    with _eager(model):
        eager = model(input_ids=ids).last_hidden_state
    assert_close(model(input_ids=ids).last_hidden_state, eager)


def test_the_first_inference_call_is_eager_and_the_graph_serves_from_the_second():
    """A model called once pays no trace (~30 eager calls' worth); the second call traces and equals it."""
    model = bert_tf.TFBertForSequenceClassification(BertConfig(**CONFIG))
    inputs = _inputs("BertForSequenceClassification")
    first = model(**inputs)
    assert _traces(model) == 0
    second = model(**inputs)
    assert _traces(model) == 1
    _assert_same(second, first)
