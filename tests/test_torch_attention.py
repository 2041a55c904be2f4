"""Attention in bert_torch: eager == SDPA, the one mask rule, relative positions and head_mask against plain math."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import bert_torch
from bert_core import BertConfig
from bert_torch.attention import BertSelfAttention, eager_attention, fused_attention, make_attention_bias
from bert_torch.unpad import padding_read
from harness import TOL, max_abs_diff, padded_batch, tiny_config_dict


def batch_tensors(vocab_size: int = 99, **kw) -> dict:
    return {k: torch.tensor(v) for k, v in padded_batch(vocab_size, **kw).items()}


def test_eager_attention_equals_fused_attention_with_a_padding_bias():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 4, 5, 8, generator=g) for _ in range(3))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]])
    bias = make_attention_bias(mask, query_length=5, key_length=5, dtype=torch.float32, device=torch.device("cpu"))
    context, probs = eager_attention(q, k, v, bias)
    assert max_abs_diff(context, fused_attention(q, k, v, bias)) <= 1e-6
    assert torch.isfinite(context).all()
    # A row with no real key softmaxes uniformly instead of NaN.
    assert torch.allclose(probs[2], torch.full_like(probs[2], 1 / 5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_mask_bias_is_one_dtype_minimum_never_minus_inf(dtype):
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    bias = make_attention_bias(mask, query_length=3, key_length=3, dtype=dtype, device=torch.device("cpu"),
                               causal=True)
    assert bias.dtype == dtype and bias.shape == (2, 1, 3, 3)
    assert torch.isfinite(bias).all()
    assert set(bias.unique().tolist()) == {0.0, torch.finfo(dtype).min}
    # Padding AND causal: query 0 of row 0 sees key 0 only; query 2 sees keys 0 and 1.
    assert (bias[0, 0] == 0).tolist() == [[True, False, False], [True, True, False], [True, True, False]]


@pytest.mark.parametrize("overrides", [{}, {"is_decoder": True}, {"position_embedding_type": "relative_key"},
                                       {"position_embedding_type": "relative_key_query"}])
def test_model_eager_equals_sdpa(overrides):
    model = bert_torch.BertModel(BertConfig(**tiny_config_dict(**overrides))).eval()
    inputs = batch_tensors()
    with torch.no_grad():
        sdpa = model(**inputs, use_cache=False)
        model.set_attn_implementation("eager")
        eager = model(**inputs, use_cache=False)
    assert max_abs_diff(sdpa.last_hidden_state, eager.last_hidden_state) <= TOL["float32"]
    assert torch.isfinite(sdpa.last_hidden_state).all() and torch.isfinite(eager.last_hidden_state).all()


def test_fully_padded_row_attends_uniformly_and_stays_finite():
    model = bert_torch.BertForMaskedLM(BertConfig(**tiny_config_dict())).eval()
    inputs = batch_tensors()
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    assert torch.isfinite(out.logits).all()
    last_row = out.attentions[0][-1]  # (heads, seq, seq) of the row without real tokens
    assert torch.allclose(last_row, torch.full_like(last_row, 1 / last_row.shape[-1]))


def reference_relative_self_attention(module: BertSelfAttention, x: np.ndarray, mask: np.ndarray, kind: str):
    """Shaw et al. / Huang et al. relative attention, one score at a time in float64.

    score(i, j) = (q_i . k_j + q_i . r(i - j) [+ k_j . r(i - j)]) / sqrt(head_dim),
    r(d) = distance_embedding[d + max_position_embeddings - 1]; masked keys get no weight.
    """
    def proj(linear):
        return x @ linear.weight.detach().double().numpy().T + linear.bias.detach().double().numpy()

    heads, dim = module.num_attention_heads, module.attention_head_size
    q, k, v = (proj(m).reshape(x.shape[0], x.shape[1], heads, dim) for m in (module.query, module.key, module.value))
    table = module.distance_embedding.weight.detach().double().numpy()
    offset = module.max_position_embeddings - 1
    batch, seq = x.shape[:2]
    out = np.zeros((batch, seq, heads, dim))
    for b in range(batch):
        for h in range(heads):
            for i in range(seq):
                scores = np.full(seq, -np.inf)
                for j in range(seq):
                    if not mask[b, j]:
                        continue
                    r = table[i - j + offset]
                    s = q[b, i, h] @ k[b, j, h] + q[b, i, h] @ r
                    if kind == "relative_key_query":
                        s += k[b, j, h] @ r
                    scores[j] = s / math.sqrt(dim)
                weights = np.exp(scores - scores.max())
                out[b, i, h] = (weights / weights.sum()) @ v[b, :, h]
    return out.reshape(batch, seq, heads * dim)


@pytest.mark.parametrize("kind", ["relative_key", "relative_key_query"])
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_relative_position_attention_matches_plain_math(kind, attn_implementation):
    config = BertConfig(**tiny_config_dict(position_embedding_type=kind, max_position_embeddings=8))
    torch.manual_seed(0)
    module = BertSelfAttention(config).eval()
    for m in (module.query, module.key, module.value, module.distance_embedding):
        torch.nn.init.normal_(m.weight, std=0.3)
    module.attn_implementation = attn_implementation
    assert module.distance_embedding.weight.shape == (2 * 8 - 1, config.head_dim)  # the 4.x checkpoint shape
    x = torch.randn(2, 6, 32)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    bias = make_attention_bias(mask, query_length=6, key_length=6, dtype=torch.float32, device=torch.device("cpu"))
    with torch.no_grad():
        context, _, _ = module(x, bias)
    expected = reference_relative_self_attention(module, x.double().numpy(), mask.numpy(), kind)
    assert max_abs_diff(context, expected) <= 1e-5


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_relative_positions_are_folded_into_the_bias_given(attn_implementation):
    """The contract: self-attention adds ``relative_position_scores(query, key) * scaling`` to its bias."""
    config = BertConfig(**tiny_config_dict(position_embedding_type="relative_key_query"))
    torch.manual_seed(0)
    module = BertSelfAttention(config).eval()
    module.attn_implementation = attn_implementation
    x = torch.randn(2, 6, 32)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
    bias = make_attention_bias(mask, query_length=6, key_length=6, dtype=torch.float32)  # the contract's call

    def heads(linear):  # (batch, seq, hidden) -> (batch, heads, seq, head_dim)
        return linear(x).view(2, 6, 4, 8).transpose(1, 2)

    q, k, v = heads(module.query), heads(module.key), heads(module.value)
    with torch.no_grad():
        folded = bias + module.relative_position_scores(q, k) * 8**-0.5
        expected, _ = eager_attention(q, k, v, folded)  # (batch, heads, seq, head_dim)
        context, probs, (key, value) = module(x, bias)
    assert probs is None and torch.equal(key, k) and torch.equal(value, v)
    assert max_abs_diff(context, expected.transpose(1, 2).reshape(2, 6, 32)) <= 1e-6


def test_make_attention_bias_needs_no_device_and_builds_nothing_without_a_mask():
    assert make_attention_bias(None, query_length=3, key_length=3, dtype=torch.float32) is None
    causal = make_attention_bias(None, query_length=2, key_length=5, dtype=torch.float32, causal=True)
    # Two new queries after three cached keys: query 0 sees keys 0..3, query 1 sees all five.
    assert (causal[0, 0] == 0).tolist() == [[True] * 4 + [False], [True] * 5]


@pytest.mark.parametrize("scale", [0.0, 0.5])
def test_head_mask_scales_one_heads_probabilities(scale):
    """head_mask[l, h] * probs equals scaling head h's value projection in layer l (context is linear in v)."""
    config = BertConfig(**tiny_config_dict())
    model = bert_torch.BertModel(config).eval()
    inputs = batch_tensors(fully_padded_row=False)
    head_mask = torch.ones(config.num_hidden_layers, config.num_attention_heads)
    head_mask[1, 2] = scale
    with torch.no_grad(), padding_read():  # head_mask keeps the padded path: compare with the padded path
        masked = model(**inputs, head_mask=head_mask).last_hidden_state
        unmasked = model(**inputs, head_mask=torch.ones(config.num_attention_heads)).last_hidden_state
        plain = model(**inputs).last_hidden_state
        rows = slice(2 * config.head_dim, 3 * config.head_dim)
        value = model.encoder.layer[1].attention.self.value
        value.weight[rows] *= scale
        value.bias[rows] *= scale
        expected = model(**inputs).last_hidden_state
    assert max_abs_diff(unmasked, plain) <= TOL["float32"]  # head_mask takes the eager path
    assert max_abs_diff(masked, expected) <= TOL["float32"]
    assert max_abs_diff(masked, plain) > 1e-3  # the mask did something


def test_head_mask_of_the_wrong_shape_names_both_shapes():
    model = bert_torch.BertModel(BertConfig(**tiny_config_dict())).eval()
    with pytest.raises(ValueError, match=r"\(4,\) or \(2, 4\), got \(3,\)"):
        model(**batch_tensors(), head_mask=torch.ones(3))


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("position_embedding_type", ["absolute", "relative_key_query"])
def test_float16_keeps_the_fully_padded_row_finite(attn_implementation, position_embedding_type):
    """In float16 the mask minimum (-65504) has an ulp of 32: a large negative score (or relative term) added
    to it must not reach -inf, or the fully padded row would softmax to NaN."""
    config = BertConfig(**tiny_config_dict(position_embedding_type=position_embedding_type, initializer_range=2.0))
    model = bert_torch.BertModel(config).eval().to(torch.float16)
    model.set_attn_implementation(attn_implementation)
    with torch.no_grad():
        out = model(**batch_tensors())
    assert torch.isfinite(out.last_hidden_state).all()
