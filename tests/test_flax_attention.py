"""Attention math of bert_flax against plain numpy: eager vs fused, masks, head_mask, relative positions
(transformers 5.x dropped relative_key / relative_key_query and head_mask, so the reference is written
here from the transformers 4.x formulas), and every activation against transformers'."""

from __future__ import annotations

import numpy as np
import pytest

from harness import TOL, max_abs_diff, padded_batch, tiny_config_dict

jax = pytest.importorskip("jax")
jnp = jax.numpy

import bert_flax  # noqa: E402
from bert_core import ACTIVATIONS, BertConfig  # noqa: E402
from bert_core.unpad import padding_read  # noqa: E402
from bert_flax.attention import (FlaxBertSelfAttention, eager_attention, fused_attention,  # noqa: E402
                                 make_attention_bias)

F32 = TOL["float32"]
RELATIVE = ("relative_key", "relative_key_query")


def numpy_self_attention(x, params, config, mask, head_mask=None):
    """transformers 4.x BertSelfAttention in float64 numpy (kernels stored [in, out]).

    scores = q k^T (+ q.E[i-j] (+ k.E[i-j])) / sqrt(d) + (mask ? 0 : min); softmax; * head_mask; probs v.
    """
    x = x.astype(np.float64)
    b, s, _ = x.shape
    h, d = config.num_attention_heads, config.head_dim

    def project(name):
        p = params[name]
        y = x @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)
        return y.reshape(b, s, h, d).transpose(0, 2, 1, 3)

    q, k, v = project("query"), project("key"), project("value")
    scores = q @ k.transpose(0, 1, 3, 2)
    if config.position_embedding_type in RELATIVE:
        table = np.asarray(params["distance_embedding"]["embedding"], np.float64)
        distance = np.arange(s)[:, None] - np.arange(s)[None, :]
        emb = table[distance + config.max_position_embeddings - 1]  # (q, k, d)
        scores = scores + np.einsum("bhld,lrd->bhlr", q, emb)
        if config.position_embedding_type == "relative_key_query":
            scores = scores + np.einsum("bhrd,lrd->bhlr", k, emb)
    scores = scores / np.sqrt(d)
    scores = scores + np.where(mask[:, None, None, :] == 1, 0.0, np.finfo(np.float32).min)
    scores = scores - scores.max(-1, keepdims=True)
    probs = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    if head_mask is not None:
        probs = probs * np.asarray(head_mask, np.float64)[None, :, None, None]
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, h * d)
    return context, probs


def self_attention_case(position_embedding_type="absolute", seed=0):
    config = BertConfig(**tiny_config_dict(position_embedding_type=position_embedding_type, initializer_range=0.2))
    module = FlaxBertSelfAttention(config)
    x = np.random.default_rng(seed).normal(size=(3, 9, config.hidden_size)).astype(np.float32)
    mask = padded_batch(config.vocab_size)["attention_mask"]
    bias = make_attention_bias(jnp.asarray(mask), query_length=9, key_length=9, dtype=jnp.float32)
    params = module.init(jax.random.PRNGKey(seed), x, bias)["params"]
    return config, module, params, x, mask, bias


@pytest.mark.parametrize("position_embedding_type", ["absolute", *RELATIVE])
@pytest.mark.parametrize("output_attentions", [False, True], ids=["fused", "eager"])
def test_self_attention_matches_numpy_reference(position_embedding_type, output_attentions):
    config, module, params, x, mask, bias = self_attention_case(position_embedding_type)
    context, probs, _ = module.apply({"params": params}, x, bias, output_attentions=output_attentions)
    ref_context, ref_probs = numpy_self_attention(x, params, config, mask)
    assert max_abs_diff(context, ref_context) <= F32
    if output_attentions:
        assert max_abs_diff(probs, ref_probs) <= F32


@pytest.mark.parametrize("position_embedding_type", ["absolute", "relative_key_query"])
def test_head_mask_multiplies_the_probabilities(position_embedding_type):
    config, module, params, x, mask, bias = self_attention_case(position_embedding_type, seed=1)
    head_mask = jnp.array([1.0, 0.0, 0.5, 1.0])
    context, probs, _ = module.apply({"params": params}, x, bias, head_mask.reshape(1, 4, 1, 1),
                                     output_attentions=True)
    ref_context, ref_probs = numpy_self_attention(x, params, config, mask, head_mask=head_mask)
    assert max_abs_diff(context, ref_context) <= F32
    assert max_abs_diff(probs, ref_probs) <= F32
    assert float(jnp.abs(probs[:, 1]).max()) == 0.0


@pytest.mark.parametrize("shape", ["per-layer", "shared"])
def test_model_head_mask_reaches_the_right_layer_and_head(shape):
    config = BertConfig(**tiny_config_dict(initializer_range=0.2))
    model = bert_flax.FlaxBertModel(config, seed=0)
    batch = padded_batch(config.vocab_size)
    head_mask = np.ones((2, 4), np.float32)
    head_mask[1, 2] = 0.0
    if shape == "shared":
        head_mask = head_mask[1]  # (heads,): the same mask in every layer
    masked = model(**batch, head_mask=head_mask, output_attentions=True).attentions
    plain = model(**batch, output_attentions=True).attentions
    assert float(np.abs(masked[1][:, 2]).max()) == 0.0
    if shape == "per-layer":
        assert max_abs_diff(masked[0], plain[0]) == 0.0  # layer 0 untouched
    else:
        assert float(np.abs(masked[0][:, 2]).max()) == 0.0
    with padding_read():  # a head_mask keeps transformers' values at masked positions; so does padding_read
        plain = model(**batch).last_hidden_state
    assert max_abs_diff(model(**batch, head_mask=np.ones(4)).last_hidden_state, plain) <= F32


def test_fused_attention_equals_eager_attention():
    rng = np.random.default_rng(2)
    q, k, v = (jnp.asarray(rng.normal(size=(2, 4, 7, 8)), jnp.float32) for _ in range(3))
    per_query = jnp.asarray(rng.random((2, 7, 7)) > 0.3)  # (batch, q_len, k_len), as packed sequences use
    bias = make_attention_bias(per_query, query_length=7, key_length=7, dtype=jnp.float32)
    eager, _ = eager_attention(q, k, v, bias)
    assert max_abs_diff(fused_attention(q, k, v, bias), eager) <= 1e-6


@pytest.mark.parametrize("position_embedding_type", ["absolute", *RELATIVE])
@pytest.mark.parametrize("decoder", [False, True], ids=["encoder", "decoder"])
def test_set_attn_implementation_eager_equals_sdpa(position_embedding_type, decoder):
    """The switch on every wrapper: same parameters, same numbers, and the module is rebuilt with it."""
    cfg = BertConfig(**tiny_config_dict(position_embedding_type=position_embedding_type, is_decoder=decoder,
                                        initializer_range=0.2))
    model = bert_flax.FlaxBertForMaskedLM(cfg, seed=4)
    batch = padded_batch(cfg.vocab_size)
    assert model.attn_implementation == "sdpa"
    sdpa = model(**batch).logits
    model.set_attn_implementation("eager")
    assert model.attn_implementation == "eager" and model.module.attn_implementation == "eager"
    assert max_abs_diff(model(**batch).logits, sdpa, batch["attention_mask"]) <= F32
    with pytest.raises(ValueError, match="attn_implementation"):
        model.set_attn_implementation("flash")


def test_make_attention_bias_causal_part_counts_the_cache():
    """Queries at cache index 3 of a 6-slot cache: key j is allowed iff j <= 3 + i and the mask has it."""
    mask = np.array([[0, 1, 1, 1, 1, 1]])
    bias = make_attention_bias(jnp.asarray(mask), query_length=2, key_length=6, dtype=jnp.float32, causal=True,
                               past_key_values_length=3)
    allowed = (mask[:, None, None, :] == 1) & (np.arange(6)[None, :] <= 3 + np.arange(2)[:, None])
    assert bias.shape == (1, 1, 2, 6)
    assert np.array_equal(np.asarray(bias) == 0, allowed)
    assert float(np.asarray(bias).min()) == float(jnp.finfo(jnp.float32).min)
    # Without a cache index the queries are the last positions, as in torch.
    assert np.array_equal(np.asarray(make_attention_bias(jnp.asarray(mask), query_length=2, key_length=6,
                                                         causal=True)) == 0,
                          (mask[:, None, None, :] == 1) & (np.arange(6)[None, :] <= 4 + np.arange(2)[:, None]))
    assert make_attention_bias(None, query_length=2, key_length=2) is None


def test_fully_padded_row_attends_uniformly_and_stays_finite():
    config, module, params, x, mask, bias = self_attention_case()
    assert mask[-1].sum() == 0
    context, probs, _ = module.apply({"params": params}, x, bias, output_attentions=True)
    assert np.isfinite(np.asarray(context)).all()
    assert max_abs_diff(probs[-1], np.full(probs[-1].shape, 1.0 / mask.shape[1])) <= 1e-7


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_attention_bias_is_the_dtype_minimum_added_once(dtype):
    bias = make_attention_bias(jnp.array([[1, 0]]), query_length=1, key_length=2, dtype=dtype)
    assert bias.dtype == dtype and bias.shape == (1, 1, 1, 2)
    assert float(bias[0, 0, 0, 0]) == 0.0 and float(bias[0, 0, 0, 1]) == float(jnp.finfo(dtype).min)


@pytest.mark.parametrize("position_embedding_type", RELATIVE)
def test_relative_positions_change_the_model_and_fused_equals_eager(position_embedding_type):
    config = BertConfig(**tiny_config_dict(position_embedding_type=position_embedding_type, initializer_range=0.2))
    model = bert_flax.FlaxBertModel(config, seed=3)
    assert "distance_embedding" in model.params["encoder"]["layer"]["0"]["attention"]["self"]
    batch = padded_batch(config.vocab_size)
    fused = model(**batch).last_hidden_state
    eager = model(**batch, output_attentions=True).last_hidden_state
    assert max_abs_diff(fused, eager, batch["attention_mask"]) <= F32
    absolute = bert_flax.FlaxBertModel(config.copy(position_embedding_type="absolute"), _do_init=False)
    params = jax.tree_util.tree_map(lambda a: a, model.params)
    for layer in params["encoder"]["layer"].values():
        del layer["attention"]["self"]["distance_embedding"]
    absolute.params = params
    assert max_abs_diff(absolute(**batch).last_hidden_state, fused, batch["attention_mask"]) > 1e-3


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_matches_transformers(name):
    torch = pytest.importorskip("torch")
    from transformers.activations import ACT2FN

    x = np.linspace(-6, 6, 1001, dtype=np.float32)
    ours = bert_flax.get_activation(name)(jnp.asarray(x))
    theirs = ACT2FN[name](torch.tensor(x))
    assert max_abs_diff(ours, theirs) <= 1e-6
