"""bert_tf in decoder mode: causal mask, cross-attention vs transformers, the legacy KV cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bert_tf
from bert_core import BertConfig
from harness import TOL, max_abs_diff, padded_batch, tiny_config_dict
from test_tf_helpers import parity_config, tf_pair, to_torch

F32 = TOL["float32"]
ENC_MASK = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4, [1] + [0] * 5])


def _encoder_states(batch: int = 4) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((batch, 6, 32)).astype(np.float32)


def test_decoder_with_cross_attention_matches_transformers():
    ours, hf = tf_pair("BertLMHeadModel", is_decoder=True, add_cross_attention=True)
    inputs = padded_batch(99, batch=4, seq=9)
    kw = dict(encoder_hidden_states=_encoder_states(), encoder_attention_mask=ENC_MASK)
    mine = ours(**inputs, **kw, output_attentions=True)
    with torch.no_grad():
        # use_cache=False: transformers' cache copies keys into contiguous memory, another BLAS path.
        ref = hf(**to_torch(inputs), **to_torch(kw), output_attentions=True, use_cache=False)
    mask = inputs["attention_mask"]
    assert max_abs_diff(mine.logits, ref.logits, mask) <= F32
    assert len(mine.cross_attentions) == 2
    rows = np.broadcast_to(mask[:, None, :, None], mine.cross_attentions[0].shape)
    assert max_abs_diff(mine.cross_attentions, ref.cross_attentions, rows) <= F32
    assert max_abs_diff(mine.attentions, ref.attentions, np.broadcast_to(mask[:, None, :, None],
                                                                          mine.attentions[0].shape)) <= F32


def test_causal_mask_makes_each_position_blind_to_the_future():
    model = bert_tf.TFBertLMHeadModel(BertConfig(**tiny_config_dict(is_decoder=True)))
    ids = padded_batch(99, batch=2, seq=8, fully_padded_row=False)["input_ids"]
    changed = ids.copy()
    changed[:, 5:] = (changed[:, 5:] + 7) % 99
    a, b = model(input_ids=ids).logits.numpy(), model(input_ids=changed).logits.numpy()
    assert max_abs_diff(a[:, :5], b[:, :5]) == 0.0
    assert max_abs_diff(a[:, 5:], b[:, 5:]) > 1e-3


@pytest.mark.parametrize("overrides", [
    {"add_cross_attention": True},
    {"position_embedding_type": "relative_key_query"},
], ids=["cross-attention", "relative-key-query"])
def test_decoding_with_the_cache_equals_the_full_forward(overrides):
    config = BertConfig(**parity_config(is_decoder=True, **overrides))
    model = bert_tf.TFBertLMHeadModel(config)
    batch = padded_batch(99, batch=2, seq=7, fully_padded_row=False)
    ids, mask = batch["input_ids"], np.ones_like(batch["input_ids"])
    cross = {}
    if config.add_cross_attention:
        cross = dict(encoder_hidden_states=_encoder_states(2), encoder_attention_mask=ENC_MASK[:2])
    full = model(input_ids=ids, attention_mask=mask, **cross).logits.numpy()

    out = model(input_ids=ids[:, :4], attention_mask=mask[:, :4], use_cache=True, **cross)
    steps = [out.logits.numpy()]
    for t in range(4, 7):
        out = model(input_ids=ids[:, t:t + 1], attention_mask=mask[:, :t + 1], past_key_values=out.past_key_values,
                    use_cache=True, **cross)
        steps.append(out.logits.numpy())
    assert max_abs_diff(np.concatenate(steps, axis=1), full) <= F32

    cache = out.past_key_values
    assert len(cache) == config.num_hidden_layers
    assert all(len(layer) == (4 if config.add_cross_attention else 2) for layer in cache)
    assert tuple(cache[0][0].shape) == (2, 4, 7, 8)  # (batch, heads, seq, head_dim)
    if config.add_cross_attention:
        assert tuple(cache[0][2].shape) == (2, 4, 6, 8)


def test_use_cache_is_off_outside_decoder_mode():
    model = bert_tf.TFBertModel(BertConfig(**tiny_config_dict()))
    out = model(**padded_batch(99, batch=2, seq=4), use_cache=True)
    assert out.past_key_values is None
