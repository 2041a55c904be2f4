"""bert_flax against the backend contract (docs/architecture.md) where it used to compute silently wrong numbers:
relative positions against transformers 4.57.6 (5.x dropped them), the untied MLM decoder against
transformers 5.x, out-of-range inputs raising InputError before any compiled call, and the layer tuples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import assert_close, padded_batch, tiny_config_dict

jax = pytest.importorskip("jax")
jnp = jax.numpy

import bert_flax  # noqa: E402
from bert_core import BertConfig, InputError  # noqa: E402

RELATIVE = Path(__file__).parent / "fixtures" / "relative_positions"
CASES = {"relative_key-mlm": bert_flax.FlaxBertForMaskedLM,
         "relative_key_query-mlm": bert_flax.FlaxBertForMaskedLM,
         "relative_key_query-causal": bert_flax.FlaxBertForCausalLM}


def config(**overrides) -> BertConfig:
    return BertConfig(**tiny_config_dict(initializer_range=0.2, **overrides))


# -- relative positions: transformers 4.57.6 ---------------------------------------------------------

@pytest.fixture(scope="module")
def reference():
    return dict(np.load(RELATIVE / "reference.npz"))


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("case", list(CASES))
def test_relative_positions_match_transformers_4_57(reference, case, attn_implementation):
    """tests/fixtures/relative_positions/make_reference.py wrote 4.57.6's outputs for its own random weights;
    absolute position embeddings must not be added (they were, by 2.56, before)."""
    model = CASES[case].from_pretrained(RELATIVE / case, attn_implementation=attn_implementation)
    batch = {k.split(".", 1)[1]: v for k, v in reference.items() if k.startswith("batch.")}
    mask = batch["attention_mask"]
    out = model(**batch, output_hidden_states=True, output_attentions=attn_implementation == "eager")
    assert_close(out.logits, reference[f"{case}.logits"], mask=mask)
    assert_close(out.hidden_states[-1], reference[f"{case}.last_hidden_state"], mask=mask)
    if attn_implementation == "eager":
        rows = mask.any(-1)  # probabilities of fully padded rows are uniform in both, but compare real rows
        assert_close(out.attentions[0][rows], reference[f"{case}.attentions.0"][rows])


def test_relative_model_keeps_the_position_table_without_adding_it():
    model = bert_flax.FlaxBertModel(config(position_embedding_type="relative_key"), seed=0)
    assert "position_embeddings" in model.params["embeddings"]
    batch = padded_batch(99)
    before = model(**batch).last_hidden_state
    params = jax.tree_util.tree_map(lambda x: x, model.params)
    params["embeddings"]["position_embeddings"]["embedding"] = params["embeddings"]["position_embeddings"][
        "embedding"] * 0 + 1.0
    assert_close(model(**batch, params=params).last_hidden_state, before, atol=0, rtol=0)


# -- the untied decoder: transformers 5.x ----------------------------------------------------------

UNTIED = [("BertForMaskedLM", "FlaxBertForMaskedLM", "logits", {}),
          ("BertForPreTraining", "FlaxBertForPreTraining", "prediction_logits", {}),
          ("BertLMHeadModel", "FlaxBertForCausalLM", "logits", {"is_decoder": True})]


def hf_untied(cls_name: str, **overrides):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf_config = transformers.BertConfig(**tiny_config_dict(initializer_range=0.2, tie_word_embeddings=False,
                                                           **overrides))
    model = getattr(transformers, cls_name)(hf_config).eval()
    with torch.no_grad():  # every weight away from its initial value, the two decoder biases apart
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    head = model.cls.predictions
    assert head.decoder.weight is not model.bert.embeddings.word_embeddings.weight
    assert head.decoder.bias is not head.bias
    return model


def hf_outputs(model, batch):
    import torch

    with torch.no_grad():
        return model(**{k: torch.tensor(v) for k, v in batch.items()})


@pytest.mark.parametrize("hf_name,flax_name,field,overrides", UNTIED, ids=[u[0] for u in UNTIED])
def test_untied_decoder_loads_from_and_saves_to_transformers_5(tmp_path, hf_name, flax_name, field, overrides):
    transformers = pytest.importorskip("transformers")
    theirs = hf_untied(hf_name, **overrides)
    theirs.save_pretrained(tmp_path / "hf")
    ours, report = getattr(bert_flax, flax_name).from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not report["missing_keys"] and not report["unexpected_keys"]
    kernel = ours.params["cls"]["predictions"]["decoder"]["kernel"]  # its own weight, (hidden, vocab)
    assert_close(kernel, theirs.cls.predictions.decoder.weight.detach().numpy().T, atol=0, rtol=0)
    batch = padded_batch(99)
    mask = batch["attention_mask"]
    assert_close(getattr(ours(**batch), field), getattr(hf_outputs(theirs, batch), field), mask=mask)

    ours.save_pretrained(tmp_path / "flax")
    back, info = getattr(transformers, hf_name).from_pretrained(tmp_path / "flax", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert_close(getattr(hf_outputs(back.eval(), batch), field), getattr(ours(**batch), field), mask=mask)


def test_tied_decoder_has_no_weight_and_follows_the_embeddings():
    tied = bert_flax.FlaxBertForMaskedLM(config(), seed=0)
    assert "decoder" not in tied.params["cls"]["predictions"]
    untied = bert_flax.FlaxBertForMaskedLM(config(tie_word_embeddings=False), seed=0)
    assert untied.params["cls"]["predictions"]["decoder"]["kernel"].shape == (32, 99)
    batch = padded_batch(99)
    params = jax.tree_util.tree_map(lambda x: x, untied.params)
    params["bert"]["embeddings"]["word_embeddings"]["embedding"] = (
        params["bert"]["embeddings"]["word_embeddings"]["embedding"].at[5:].set(0.0))
    # The untied logits read the decoder, not the (edited) embedding rows the batch does not use.
    ids = np.minimum(batch["input_ids"], 4)
    assert_close(untied(ids, params=params).logits, untied(ids).logits, atol=0, rtol=0)


def test_untied_decoder_has_a_partition_rule():
    from flax import traverse_util
    from jax.sharding import PartitionSpec as P

    from bert_flax.sharding import partition_specs

    model = bert_flax.FlaxBertForMaskedLM(config(tie_word_embeddings=False), seed=0)
    specs = traverse_util.flatten_dict(partition_specs(model.params), sep="/")
    assert specs["cls/predictions/decoder/kernel"] == P("model", None)  # hidden split, as the tied table


# -- inputs: InputError before the compiled call ------------------------------------------------------

BAD_INPUTS = {
    "input_ids >= vocab_size": (dict(input_ids=np.array([[1, 99]])), "input_ids holds 99"),
    "negative input_ids": (dict(input_ids=np.array([[1, -1]])), "input_ids holds -1"),
    "token_type_ids >= type_vocab_size": (dict(input_ids=np.array([[1, 2]]), token_type_ids=np.array([[0, 2]])),
                                          "token_type_ids holds 2"),
    "position_ids >= max_position_embeddings": (dict(input_ids=np.array([[1, 2]]), position_ids=np.array([[0, 64]])),
                                                "position_ids holds 64"),
    "length > max_position_embeddings": (dict(input_ids=np.ones((1, 65), np.int64)), "sequence length 65"),
    "inputs_embeds longer than the table": (dict(inputs_embeds=np.zeros((1, 65, 32), np.float32)),
                                            "sequence length 65"),
}


@pytest.mark.parametrize("position_embedding_type", ["absolute", "relative_key_query"])
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_out_of_range_inputs_raise_input_error(case, position_embedding_type):
    """Through the wrapper (checked on the host before its jitted apply) and an eager module.apply."""
    from bert_flax._apply import compiled_apply

    model = bert_flax.FlaxBertForMaskedLM(config(position_embedding_type=position_embedding_type), seed=0)
    inputs, message = BAD_INPUTS[case]
    compiled = compiled_apply._cache_size()
    with pytest.raises(InputError, match=message):
        model(**inputs)
    assert compiled_apply._cache_size() == compiled  # nothing was traced or compiled
    with pytest.raises(InputError, match=message):
        model.module.apply({"params": model.params}, **{k: jnp.asarray(v) for k, v in inputs.items()})


def test_cached_tokens_count_towards_the_length():
    model = bert_flax.FlaxBertForCausalLM(config(is_decoder=True), seed=0)
    cache = model.init_cache(1, 64)
    out = model(np.ones((1, 60), np.int64), past_key_values=cache, attention_mask=np.ones((1, 64)))
    with pytest.raises(InputError, match=r"65 \(60 cached \+ 5 new\)"):
        model(np.ones((1, 5), np.int64), past_key_values=out.past_key_values, attention_mask=np.ones((1, 64)))
    with pytest.raises(InputError, match="sequence length 65"):
        model.init_cache(1, 65)  # a cache longer than the position table could never be filled


def test_in_range_inputs_and_traced_calls_are_not_refused():
    model = bert_flax.FlaxBertForMaskedLM(config(), seed=0)
    edge = dict(input_ids=np.array([[0, 98]]), token_type_ids=np.array([[0, 1]]), position_ids=np.array([[0, 63]]))
    assert np.isfinite(np.asarray(model(**edge).logits)).all()
    ids = np.ones((1, 64), np.int64)
    jitted = jax.jit(lambda p, i: model(i, params=p).logits)(model.params, ids)  # traced: no values to check
    assert_close(jitted, model(ids).logits)


# -- layer contract ---------------------------------------------------------------------------------------

def test_layer_returns_the_four_tuple_and_encoder_the_output_class():
    from bert_core.outputs import BaseModelOutputWithPastAndCrossAttentions

    cfg = config(is_decoder=True, add_cross_attention=True)
    layer = bert_flax.FlaxBertLayer(cfg)
    x = jnp.ones((2, 5, 32))
    encoder_states = jnp.ones((2, 3, 32))
    bias = bert_flax.make_attention_bias(None, query_length=5, key_length=5, causal=True)
    params = layer.init(jax.random.PRNGKey(0), x, bias, None, encoder_states)
    hidden, self_probs, cross_probs, present = layer.apply(params, x, bias, None, encoder_states,
                                                           output_attentions=True)
    assert hidden.shape == (2, 5, 32) and self_probs.shape == (2, 4, 5, 5) and cross_probs.shape == (2, 4, 5, 3)
    assert [p.shape for p in present] == [(2, 4, 5, 8), (2, 4, 5, 8), (2, 4, 3, 8), (2, 4, 3, 8)]
    # The returned key/values, fed back as past_key_value, give the next token's output as a full pass does.
    x6 = jnp.concatenate([x, 2 * jnp.ones((2, 1, 32))], axis=1)
    full = layer.apply(params, x6, bert_flax.make_attention_bias(None, query_length=6, key_length=6, causal=True),
                       None, encoder_states)[0]
    step = layer.apply(params, x6[:, 5:], None, None, encoder_states, None, present[:2])[0]
    assert_close(step, full[:, 5:])
    encoder = bert_flax.FlaxBertEncoder(cfg)
    variables = encoder.init(jax.random.PRNGKey(0), x, bias)
    assert isinstance(encoder.apply(variables, x, bias), BaseModelOutputWithPastAndCrossAttentions)
