"""Decoder mode: the legacy KV-cache format and cached greedy decoding equal to decoding without a cache."""

from __future__ import annotations

import pytest
import torch
import transformers

import bert_torch
from bert_core import BertConfig
from harness import max_abs_diff, scaled_tol, tiny_config_dict

DECODERS = [
    {},
    {"position_embedding_type": "relative_key"},
    {"position_embedding_type": "relative_key_query"},
    {"add_cross_attention": True},
    {"add_cross_attention": True, "position_embedding_type": "relative_key_query"},
]


def decoder(**overrides) -> bert_torch.BertLMHeadModel:
    torch.manual_seed(0)
    return bert_torch.BertLMHeadModel(BertConfig(**tiny_config_dict(is_decoder=True, **overrides))).eval()


def encoder_states(model) -> dict:
    if not model.config.add_cross_attention:
        return {}
    g = torch.Generator().manual_seed(5)
    return {"encoder_hidden_states": torch.randn(2, 5, model.config.hidden_size, generator=g),
            "encoder_attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])}


def greedy(model, prompt: torch.Tensor, steps: int, use_cache: bool, **extra) -> tuple[torch.Tensor, list]:
    """Greedy decoding; returns the tokens and each step's next-token logits."""
    tokens, past, step_logits = prompt, None, []
    with torch.no_grad():
        for _ in range(steps):
            if use_cache:
                feed = tokens if past is None else tokens[:, -1:]
                out = model(feed, past_key_values=past, use_cache=True, **extra)
                past = out.past_key_values
            else:
                out = model(tokens, use_cache=False, **extra)
            logits = out.logits[:, -1]
            step_logits.append(logits)
            tokens = torch.cat([tokens, logits.argmax(-1, keepdim=True)], dim=1)
    return tokens, step_logits


@pytest.mark.parametrize("overrides", DECODERS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "plain")
def test_cached_greedy_decode_equals_uncached(overrides):
    # In float64: cached and uncached decoding are the same algorithm, so they agree to ~1e-13 there, and a
    # wrong cache offset or mask shows up as O(1). In float32 this config (initializer_range 0.5, cross-attention)
    # is ill-conditioned: each path alone is up to 1.6e-4 from the float64 result, which would hide nothing.
    model = decoder(**overrides).double()
    extra = {k: v.double() if v.is_floating_point() else v for k, v in encoder_states(model).items()}
    prompt = torch.tensor([[5, 17, 3], [42, 8, 61]])
    cached, cached_logits = greedy(model, prompt, 6, use_cache=True, **extra)
    plain, plain_logits = greedy(model, prompt, 6, use_cache=False, **extra)
    assert torch.equal(cached, plain)
    assert max_abs_diff(cached_logits, plain_logits) <= 1e-10


def test_uncached_decode_steps_match_transformers():
    model = decoder()
    hf = transformers.BertLMHeadModel(transformers.BertConfig(**tiny_config_dict(is_decoder=True))).eval()
    hf.load_state_dict(model.state_dict())
    tokens, logits = greedy(model, torch.tensor([[5, 17, 3], [42, 8, 61]]), 4, use_cache=True)
    with torch.no_grad():
        ref = hf(tokens[:, :-1], use_cache=False).logits[:, 2:]  # the positions that predicted each new token
    assert max_abs_diff(torch.stack(logits, dim=1), ref) <= scaled_tol(logits)


def test_cache_has_the_legacy_layout():
    model = decoder(add_cross_attention=True)
    extra = encoder_states(model)
    with torch.no_grad():
        out = model(torch.tensor([[5, 17, 3], [42, 8, 61]]), use_cache=True, **extra)
    cfg = model.config
    assert len(out.past_key_values) == cfg.num_hidden_layers
    for layer in out.past_key_values:
        assert len(layer) == 4  # self key, self value, cross key, cross value
        assert [tuple(t.shape) for t in layer] == [(2, cfg.num_attention_heads, 3, cfg.head_dim)] * 2 + \
            [(2, cfg.num_attention_heads, 5, cfg.head_dim)] * 2


def test_multi_token_step_with_cache_and_padding_mask_equals_full_pass():
    model = decoder(position_embedding_type="relative_key_query")
    ids = torch.tensor([[5, 17, 3, 9, 11], [42, 8, 61, 7, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    with torch.no_grad():
        full = model(ids, attention_mask=mask, use_cache=False).logits
        first = model(ids[:, :2], attention_mask=mask[:, :2], use_cache=True)
        rest = model(ids[:, 2:], attention_mask=mask, past_key_values=first.past_key_values, use_cache=True).logits
    assert max_abs_diff(torch.cat([first.logits, rest], dim=1), full, mask.numpy()) <= scaled_tol([full])


def test_labels_turn_the_cache_off_and_encoders_never_cache():
    model = decoder()
    ids = torch.tensor([[5, 17, 3]])
    assert model(ids, labels=ids, use_cache=True).past_key_values is None
    encoder = bert_torch.BertModel(BertConfig(**tiny_config_dict())).eval()
    assert encoder(ids, use_cache=True).past_key_values is None
