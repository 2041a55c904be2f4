"""The input contract in bert_tf: out-of-range ids raise ``InputError`` before TensorFlow computes, eagerly and compiled."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import bert_tf
from bert_core import BertConfig, InputError
from harness import max_abs_diff, scaled_tol, padded_batch, tiny_config_dict

CONFIG = BertConfig(**tiny_config_dict(max_position_embeddings=16))  # vocab 99, 2 token types, 16 positions


@pytest.fixture(scope="module")
def model():
    return bert_tf.TFBertForSequenceClassification(CONFIG)


def _batch(**changes):
    batch = padded_batch(CONFIG.vocab_size, batch=2, seq=6, fully_padded_row=False)
    for name, (row, col, value) in changes.items():
        array = batch.setdefault(name, np.zeros_like(batch["input_ids"])).copy()
        array[row, col] = value
        batch[name] = array
    return batch


BAD = {
    "id equal to vocab_size": (dict(input_ids=(0, 1, 99)), r"input_ids holds 99, outside \[0, 99\)"),
    "negative id": (dict(input_ids=(1, 0, -1)), r"input_ids holds -1"),
    "token type past type_vocab_size": (dict(token_type_ids=(0, 2, 2)), r"token_type_ids holds 2, outside \[0, 2\)"),
    "position past the table": (dict(position_ids=(1, 3, 16)), r"position_ids holds 16, outside \[0, 16\)"),
    "negative position": (dict(position_ids=(0, 0, -3)), r"position_ids holds -3"),
}


@pytest.mark.parametrize("call", ["eager", "compiled"])
@pytest.mark.parametrize("case", list(BAD), ids=lambda c: c.replace(" ", "-"))
def test_out_of_range_inputs_raise(model, call, case):
    changes, message = BAD[case]
    batch = _batch(**changes)
    run = model if call == "eager" else model.compiled_call
    with pytest.raises(InputError, match=message):
        run(**batch)


@pytest.mark.parametrize("call", ["eager", "compiled"])
def test_a_sequence_longer_than_the_position_table_raises(model, call):
    ids = np.ones((1, 17), np.int64)
    run = model if call == "eager" else model.compiled_call
    with pytest.raises(InputError, match="sequence length 17 exceeds max_position_embeddings=16"):
        run(input_ids=ids)


def test_the_cache_counts_toward_the_length():
    config = BertConfig(**tiny_config_dict(max_position_embeddings=16, is_decoder=True))
    decoder = bert_tf.TFBertLMHeadModel(config)
    past = decoder(input_ids=np.ones((1, 12), np.int64), use_cache=True).past_key_values
    with pytest.raises(InputError, match=r"sequence length 17 \(12 cached \+ 5 new\)"):
        decoder(input_ids=np.ones((1, 5), np.int64), past_key_values=past, use_cache=True)


def test_the_compiled_path_pads_no_further_than_the_position_table(model):
    # 13 tokens would pad to the 16 bucket; with a table of 16 positions that is the limit, never past it.
    batch = padded_batch(CONFIG.vocab_size, batch=2, seq=13, fully_padded_row=False)
    batch["position_ids"] = np.broadcast_to(np.arange(3, 16), (2, 13)).copy()
    # XLA fuses and approximates transcendental functions its own way: on this config (initializer_range 0.5)
    # it lands up to ~1.1e-5 from the eager call on logits of ~4, so the bound scales with the magnitude.
    eager = model(**batch).logits
    assert max_abs_diff(model.compiled_call(**batch).logits, eager) <= scaled_tol(eager)


def test_inputs_inside_a_traced_function_are_not_checked_there(model):
    # Symbolic inputs have no values; tracing must work (CompiledCall checks on the host before it).
    traced = tf.function(lambda ids: model(input_ids=ids).logits)
    assert traced(tf.constant(_batch()["input_ids"])).shape == (2, 2)


def test_valid_edges_pass(model):
    batch = _batch(input_ids=(0, 0, 98), token_type_ids=(0, 1, 1))
    assert np.isfinite(model(**batch).logits.numpy()).all()
    assert np.isfinite(model.compiled_call(**batch).logits.numpy()).all()
