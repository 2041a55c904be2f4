"""bert_tf attention against plain numpy math: relative positions, the fused path, masks, the padded row."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import bert_tf
from bert_core import BertConfig
from bert_tf.attention import TFBertSelfAttention
from harness import TOL, assert_close, max_abs_diff, padded_batch, tiny_config_dict

F32 = TOL["float32"]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def numpy_self_attention(layer: TFBertSelfAttention, hidden: np.ndarray, mask: np.ndarray, kind: str):
    """transformers 4.x ``BertSelfAttention`` written out in float64 numpy from its weights."""
    weights = {k: v.numpy().astype(np.float64) for k, v in bert_tf.named_weights(layer).items()}
    heads, dim = layer.num_attention_heads, layer.attention_head_size
    batch, seq, _ = hidden.shape

    def project(name):
        x = hidden @ weights[f"{name}.kernel"] + weights[f"{name}.bias"]
        return x.reshape(batch, seq, heads, dim).transpose(0, 2, 1, 3)

    q, k, v = project("query"), project("key"), project("value")
    scores = q @ k.transpose(0, 1, 3, 2)
    if kind != "absolute":
        table = weights["distance_embedding.embeddings"]
        distance = np.arange(seq)[:, None] - np.arange(seq)[None, :]
        r = table[distance + layer.config.max_position_embeddings - 1]  # (seq, seq, dim)
        scores = scores + np.einsum("bhld,lrd->bhlr", q, r)
        if kind == "relative_key_query":
            scores = scores + np.einsum("bhrd,lrd->bhlr", k, r)
    scores = scores / np.sqrt(dim) + np.where(mask[:, None, None, :] == 1, 0.0, np.finfo(np.float32).min)
    probs = _softmax(scores)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, heads * dim)
    return context, probs


@pytest.mark.parametrize("kind", ["absolute", "relative_key", "relative_key_query"])
def test_self_attention_equals_the_numpy_formula(kind):
    config = BertConfig(**tiny_config_dict(position_embedding_type=kind, initializer_range=0.2))
    layer = TFBertSelfAttention(config)
    layer.build()
    batch = padded_batch(config.vocab_size, batch=3, seq=7, fully_padded_row=False)
    hidden = np.random.default_rng(0).standard_normal((3, 7, config.hidden_size)).astype(np.float32)
    bias = bert_tf.make_attention_bias(batch["attention_mask"], query_length=7, key_length=7, dtype=tf.float32)
    context, probs, _ = layer(tf.constant(hidden), attention_bias=bias, output_attentions=True)
    ref_context, ref_probs = numpy_self_attention(layer, hidden.astype(np.float64), batch["attention_mask"], kind)
    # Against the float64 formula: a few float32 ulps (values reach ~2, where an ulp is 2.4e-7).
    assert_close(context, ref_context, atol=1e-6)
    assert_close(probs, ref_probs, atol=1e-6)


def test_cross_attention_has_no_distance_embedding():
    config = BertConfig(**tiny_config_dict(position_embedding_type="relative_key", is_decoder=True,
                                           add_cross_attention=True))
    keys = bert_tf.TFBertLMHeadModel(config).named_weights()
    assert "bert.encoder.layer.0.attention.self.distance_embedding.embeddings" in keys
    assert not any("crossattention.self.distance_embedding" in key for key in keys)


def test_fused_attention_equals_eager_attention():
    rng = np.random.default_rng(0)
    q, k, v = (tf.constant(rng.standard_normal((2, 4, 6, 8)).astype(np.float32)) for _ in range(3))
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])
    bias = bert_tf.make_attention_bias(mask, query_length=6, key_length=6, dtype=tf.float32)
    eager, _ = bert_tf.eager_attention(q, k, v, bias)
    assert max_abs_diff(bert_tf.fused_attention(q, k, v, bias), eager) <= 1e-6


@pytest.mark.parametrize("overrides", [{}, {"position_embedding_type": "relative_key_query"},
                                       {"is_decoder": True, "add_cross_attention": True}],
                         ids=["absolute", "relative", "decoder"])
def test_sdpa_is_the_default_and_equals_eager(overrides):
    config = BertConfig(**tiny_config_dict(initializer_range=0.2, **overrides))
    model = bert_tf.TFBertLMHeadModel(config) if config.is_decoder else bert_tf.TFBertModel(config)
    batch = padded_batch(config.vocab_size)
    if config.is_decoder:
        batch["encoder_hidden_states"] = np.random.default_rng(1).standard_normal((3, 5, 32)).astype(np.float32)
    assert model.attn_implementation == "sdpa"
    fused = model(**batch)[0]
    model.set_attn_implementation("eager")
    assert model.attn_implementation == "eager"
    assert all(layer.attn_implementation == "eager" for layer in model._attention_layers())
    eager = model(**batch)[0]
    assert max_abs_diff(fused, eager, batch["attention_mask"]) <= F32


def test_set_attn_implementation_rejects_unknown_names():
    model = bert_tf.TFBertModel(BertConfig(**tiny_config_dict()))
    with pytest.raises(ValueError, match="flash"):
        model.set_attn_implementation("flash")


def test_compiled_call_follows_the_attention_switch():
    config = BertConfig(**tiny_config_dict(initializer_range=0.2))
    model = bert_tf.TFBertModel(config)
    batch = padded_batch(config.vocab_size)
    fused = model.compiled_call(**batch).last_hidden_state
    model.set_attn_implementation("eager")
    eager = model.compiled_call(**batch).last_hidden_state
    assert model._compiled(jit_compile=True).traced_count() == 2  # one graph per implementation
    assert max_abs_diff(fused, eager, batch["attention_mask"]) <= F32


def test_a_fully_padded_row_attends_uniformly_and_stays_finite():
    config = BertConfig(**tiny_config_dict())
    model = bert_tf.TFBertModel(config)
    batch = padded_batch(config.vocab_size, batch=3, seq=5)
    assert not batch["attention_mask"][-1].any()
    out = model(**batch, output_attentions=True)
    assert np.isfinite(out.last_hidden_state.numpy()).all()
    for probs in out.attentions:
        assert max_abs_diff(probs[-1], np.full((4, 5, 5), 0.2)) <= 1e-7


def test_causal_bias_counts_the_cache_and_the_padding():
    bias = bert_tf.make_attention_bias(np.array([[0, 1, 1, 1, 1]]), query_length=2, key_length=5,
                                       dtype=tf.float32, causal=True).numpy()
    allowed = bias[0, 0] == 0
    # Queries are positions 3 and 4 (three cached keys); key 0 is padding.
    assert allowed.tolist() == [[False, True, True, True, False], [False, True, True, True, True]]
    assert bias.min() == np.finfo(np.float32).min
