"""bert_flax features: KV-cache decoding, bf16, remat, scan over layers, initialisation, params checks,
compiled calls, Auto classes and the unprefixed names."""

from __future__ import annotations

import numpy as np
import pytest

from harness import TOL, compiles_of, max_abs_diff, padded_batch, tiny_config_dict

jax = pytest.importorskip("jax")
jnp = jax.numpy

import bert_flax  # noqa: E402
from bert_core import BertConfig, CheckpointError  # noqa: E402
from bert_flax import greedy_search, scan_to_unscanned_params, unscanned_to_scan_params  # noqa: E402
from flax import traverse_util  # noqa: E402

F32 = TOL["float32"]


def config(**overrides) -> BertConfig:
    return BertConfig(**tiny_config_dict(initializer_range=0.2, **overrides))


def decoder(**overrides):
    return bert_flax.FlaxBertForCausalLM(config(is_decoder=True, **overrides), seed=1)


def uncached_greedy(model, prompt, max_length, **encoder):
    """Greedy decoding by full forward passes without a cache. The decoder is causal, so position t
    never sees the zeros after it: one fixed-length buffer (one compilation) serves every step."""
    batch, start = prompt.shape
    sequences = np.zeros((batch, max_length), dtype=np.int32)
    sequences[:, :start] = prompt
    for t in range(start, max_length):
        logits = model(sequences, **encoder).logits
        sequences[:, t] = np.asarray(jnp.argmax(logits[:, t - 1], -1))
    return sequences


# -- decoding ------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [{}, pytest.param({"position_embedding_type": "relative_key_query"},
                                                        marks=pytest.mark.slow),
                                       pytest.param({"add_cross_attention": True}, marks=pytest.mark.slow)],
                         ids=["absolute", "relative_key_query", "cross-attention"])
def test_cached_greedy_decode_equals_uncached(overrides):
    model = decoder(**overrides)
    prompt = np.random.default_rng(0).integers(1, 99, size=(2, 4))
    encoder = {}
    if overrides.get("add_cross_attention"):
        encoder = {"encoder_hidden_states": jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, 32)), jnp.float32)}
    cached = greedy_search(model, prompt, max_length=8, **encoder)
    assert cached.shape == (2, 8)
    assert np.array_equal(np.asarray(cached), uncached_greedy(model, prompt, 8, **encoder))


def test_cached_step_logits_equal_the_uncached_forward():
    model = decoder()
    ids = np.random.default_rng(2).integers(1, 99, size=(2, 8))
    full = model(ids).logits
    kwargs = model.prepare_inputs_for_generation(jnp.asarray(ids[:, :5]), max_length=8)
    out = model(ids[:, :5], **kwargs)
    steps = [out.logits]
    for t in range(5, 8):
        kwargs = model.update_inputs_for_generation(out, kwargs)
        out = model(ids[:, t:t + 1], **kwargs)
        steps.append(out.logits)
    assert max_abs_diff(jnp.concatenate(steps, axis=1), full) <= F32
    index = out.past_key_values["bert"]["encoder"]["layer"]["0"]["attention"]["self"]["cache_index"]
    assert int(index) == 8


def test_left_padded_prompt_decodes_like_the_unpadded_one():
    model = decoder()
    prompt = np.random.default_rng(3).integers(1, 99, size=(1, 4))
    padded = np.concatenate([np.zeros((1, 2), np.int64), prompt], axis=1)
    mask = np.array([[0, 0, 1, 1, 1, 1]])
    plain = greedy_search(model, prompt, max_length=9)
    left = greedy_search(model, padded, max_length=11, attention_mask=mask)
    assert np.array_equal(np.asarray(left[:, 2:]), np.asarray(plain))


def test_cache_needs_a_mask_over_the_whole_cache():
    model = decoder()
    kwargs = model.prepare_inputs_for_generation(jnp.ones((1, 3), "i4"), max_length=6)
    kwargs["attention_mask"] = np.ones((1, 3))
    with pytest.raises(ValueError, match=r"expected \(batch, 6\)"):
        model(np.ones((1, 3)), **kwargs)


def test_init_cache_shapes():
    model = decoder()
    cache = model.init_cache(batch_size=3, max_length=10)
    layer = cache["bert"]["encoder"]["layer"]["1"]["attention"]["self"]
    assert layer["cached_key"].shape == (3, 4, 10, 8) and layer["cached_value"].shape == (3, 4, 10, 8)
    assert int(layer["cache_index"]) == 0


# -- precision -------------------------------------------------------------------

def test_bfloat16_compute_stays_within_its_rounding_of_float32():
    """bf16 matmuls, float32 LayerNorm/softmax: the hidden states stay within TOL['bfloat16'] (6e-2)
    of the float32 model on the same weights (measured ~2e-2 on this model)."""
    cfg = config()
    f32 = bert_flax.FlaxBertModel(cfg, seed=0)
    bf16 = bert_flax.FlaxBertModel(cfg, dtype=jnp.bfloat16, _do_init=False)
    bf16.params = f32.params
    batch = padded_batch(cfg.vocab_size)
    low, ref = bf16(**batch, output_attentions=True), f32(**batch)
    assert low.last_hidden_state.dtype == jnp.bfloat16
    assert np.isfinite(np.asarray(low.last_hidden_state, np.float32)).all()
    assert max_abs_diff(low.last_hidden_state, ref.last_hidden_state, batch["attention_mask"]) <= TOL["bfloat16"]
    # probabilities were normalised in float32: rows sum to 1 up to bf16 storage of each entry
    sums = np.asarray(low.attentions[0], np.float32).sum(-1)
    assert np.abs(sums - 1).max() <= 2e-2


def test_to_bf16_and_to_fp32_cast_floating_leaves_only():
    model = bert_flax.FlaxBertModel(config(), seed=0)
    half = model.to_bf16()
    assert {x.dtype for x in jax.tree_util.tree_leaves(half)} == {jnp.dtype(jnp.bfloat16)}
    back = model.to_fp32(half)
    assert {x.dtype for x in jax.tree_util.tree_leaves(back)} == {jnp.dtype(jnp.float32)}
    assert max_abs_diff(back, model.params) <= 2 ** -8 * max(float(jnp.abs(x).max())
                                                              for x in jax.tree_util.tree_leaves(model.params))
    mask = traverse_util.unflatten_dict({k: "LayerNorm" not in k for k in traverse_util.flatten_dict(model.params)})
    partial = model.to_bf16(mask=mask)
    assert partial["embeddings"]["LayerNorm"]["scale"].dtype == jnp.float32
    assert partial["embeddings"]["word_embeddings"]["embedding"].dtype == jnp.bfloat16
    assert model.to_fp16()["pooler"]["dense"]["kernel"].dtype == jnp.float16


# -- remat and scan --------------------------------------------------------------

def loss_and_grads(model, batch, labels):
    return jax.value_and_grad(lambda p: model(**batch, labels=labels, params=p).loss)(model.params)


@pytest.fixture(scope="module")
def plain_mlm():
    """The plain (unscanned, no remat) model, its batch, outputs and gradients, computed once."""
    model = bert_flax.FlaxBertForMaskedLM(config(), seed=0)
    batch = padded_batch(99)
    labels = np.where(batch["attention_mask"] == 1, 5, -100)
    outputs = model(**batch, output_hidden_states=True, output_attentions=True)
    return model, batch, labels, outputs, loss_and_grads(model, batch, labels)


@pytest.mark.parametrize("variant", ["remat", "scan", pytest.param("scan+remat", marks=pytest.mark.slow)])
def test_remat_and_scan_give_the_plain_outputs_and_gradients(plain_mlm, variant):
    plain, batch, labels, ref, (loss_a, grads_a) = plain_mlm
    other = bert_flax.FlaxBertForMaskedLM(plain.config, _do_init=False, gradient_checkpointing="remat" in variant,
                                          scan_layers="scan" in variant)
    other.params = unscanned_to_scan_params(plain.params) if "scan" in variant else plain.params
    ours = other(**batch, output_hidden_states=True, output_attentions=True)
    assert max_abs_diff(ours.logits, ref.logits) <= F32
    assert max_abs_diff(ours.hidden_states, ref.hidden_states) <= F32
    assert max_abs_diff(ours.attentions, ref.attentions) <= F32
    loss_b, grads_b = loss_and_grads(other, batch, labels)
    assert abs(float(loss_a) - float(loss_b)) <= F32
    assert max_abs_diff(scan_to_unscanned_params(grads_b), grads_a) <= F32


def test_scan_converters_round_trip_and_stack_layers():
    model = bert_flax.FlaxBertForSequenceClassification(config(), seed=0)
    scanned = unscanned_to_scan_params(model.params)
    query = scanned["bert"]["encoder"]["layer"]["attention"]["self"]["query"]["kernel"]
    assert query.shape == (2, 32, 32)
    layer1 = model.params["bert"]["encoder"]["layer"]["1"]
    assert max_abs_diff(query[1], layer1["attention"]["self"]["query"]["kernel"]) == 0
    assert max_abs_diff(scan_to_unscanned_params(scanned), model.params) == 0


def test_enable_scan_layers_keeps_outputs_and_decoding():
    model = decoder()
    prompt = np.random.default_rng(4).integers(1, 99, size=(2, 3))
    before, logits = greedy_search(model, prompt, max_length=8), model(prompt).logits
    model.enable_scan_layers()
    assert "0" not in model.params["bert"]["encoder"]["layer"]
    assert max_abs_diff(model(prompt).logits, logits) <= F32
    assert np.array_equal(np.asarray(greedy_search(model, prompt, max_length=8)), np.asarray(before))


# -- initialisation and params -------------------------------------------------------

def test_init_weights_follow_transformers_and_the_seed():
    cfg = BertConfig(**tiny_config_dict(initializer_range=0.02, vocab_size=500, hidden_size=64))
    a, b = bert_flax.FlaxBertForMaskedLM(cfg, seed=0), bert_flax.FlaxBertForMaskedLM(cfg, seed=0)
    c = bert_flax.FlaxBertForMaskedLM(cfg, seed=1)
    assert max_abs_diff(a.params, b.params) == 0 and max_abs_diff(a.params, c.params) > 0
    flat = traverse_util.flatten_dict(a.params, sep=".")
    word = np.asarray(flat["bert.embeddings.word_embeddings.embedding"])
    assert (word[cfg.pad_token_id] == 0).all()
    assert abs(word[1:].std() - 0.02) < 0.002
    assert abs(np.asarray(flat["bert.encoder.layer.0.intermediate.dense.kernel"]).std() - 0.02) < 0.002
    for key, value in flat.items():
        if key.endswith("LayerNorm.scale"):
            assert (np.asarray(value) == 1).all(), key
        elif key.endswith("bias"):
            assert (np.asarray(value) == 0).all(), key
    assert not any("decoder" in k for k in flat)  # tied to the word embeddings


def test_parameter_paths_are_the_torch_module_paths():
    """Every parameter sits at its canonical key's Flax spelling (conversion.rules), decoder excluded."""
    from bert_core.heads import HEADS
    from conversion import to_framework_key
    from conversion.layout import canonical_shapes

    for head in ("base", "pretraining", "question-answering", "multiple-choice"):
        cfg = config(num_labels=2)
        cls = getattr(bert_flax, HEADS[head].flax_name)
        model = cls(cfg, _do_init=False)
        expected = {}
        for key, shape in canonical_shapes(cfg, head).items():
            if key.startswith("cls.predictions.decoder"):
                continue
            flax_key, transpose = to_framework_key(key, "flax")
            expected[flax_key] = tuple(reversed(shape)) if transpose else tuple(shape)
        assert model.param_shapes() == expected, head


def test_assigning_params_of_the_wrong_shape_names_the_key():
    model = bert_flax.FlaxBertModel(config(), seed=0)
    params = jax.tree_util.tree_map(lambda x: x, model.params)
    params["pooler"]["dense"]["kernel"] = jnp.zeros((32, 31))
    with pytest.raises(CheckpointError, match=r"pooler\.dense\.kernel: given \(32, 31\) vs model \(32, 32\)"):
        model.params = params
    del params["pooler"]
    with pytest.raises(CheckpointError, match="missing"):
        model.params = params


# -- calls -------------------------------------------------------------------------

def test_repeated_calls_reuse_one_compiled_function():
    from bert_flax._apply import compiled_apply as _compiled_apply

    model = bert_flax.FlaxBertForTokenClassification(config(num_labels=4, hidden_act="relu"), seed=0)
    twin = bert_flax.FlaxBertForTokenClassification(config(num_labels=4, hidden_act="relu"), seed=1)
    batch = padded_batch(99)
    before = _compiled_apply._cache_size()
    first, second, other = model(**batch), model(**batch), twin(**batch)
    assert _compiled_apply._cache_size() == before + 1  # one compilation for both instances
    assert max_abs_diff(first, second) == 0 and max_abs_diff(first, other) > 0
    model.config.hidden_act = "gelu"  # an edited config recompiles rather than reusing stale code
    assert max_abs_diff(model(**batch), first) > 0
    assert _compiled_apply._cache_size() == before + 2


def test_a_stream_of_lengths_compiles_one_program_per_shape_whatever_the_array_type():
    """model(**inputs) compiles once per distinct input shape: a stream of lengths costs one program per
    length; repeats, and the same shape as int32, a jax array or a list, cost none; outputs equal the un-jitted apply."""
    model = bert_flax.FlaxBertModel(config(type_vocab_size=3), seed=0)  # a config no other test compiles
    outputs = {}
    with compiles_of("compiled_apply") as compiled:
        for length in (5, 9, 5, 12, 9, 5):
            ids = (np.arange(length, dtype=np.int64)[None] * 7 + 1) % 99
            outputs[length] = model(input_ids=ids, attention_mask=np.ones_like(ids)).last_hidden_state
        assert len(compiled) == 3
        for same in (ids.astype(np.int32), jnp.asarray(ids), ids.tolist()):
            assert max_abs_diff(model(input_ids=same, attention_mask=np.ones_like(ids)).last_hidden_state,
                                outputs[5]) == 0
        assert len(compiled) == 3
    eager = model.module.apply({"params": model.params}, jnp.asarray(ids), jnp.ones(ids.shape, "i4"))
    assert max_abs_diff(eager.last_hidden_state, outputs[5]) <= F32


def test_outputs_are_pytrees():
    model = bert_flax.FlaxBertForQuestionAnswering(config(), seed=0)
    out = model(**padded_batch(99))
    leaves, treedef = jax.tree_util.tree_flatten(out)
    assert len(leaves) == 2
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert type(rebuilt) is type(out) and rebuilt.start_logits is leaves[0]


def test_train_mode_needs_a_dropout_key_and_uses_it():
    model = bert_flax.FlaxBertForMaskedLM(config(hidden_dropout_prob=0.1), seed=0)
    batch = padded_batch(99)
    with pytest.raises(ValueError, match="dropout_rng"):
        model(**batch, train=True)
    a = model(**batch, train=True, dropout_rng=jax.random.PRNGKey(0)).logits
    b = model(**batch, train=True, dropout_rng=jax.random.PRNGKey(1)).logits
    assert max_abs_diff(a, b) > 1e-3 and max_abs_diff(model(**batch).logits, model(**batch).logits) == 0


def test_inputs_embeds_and_defaults_match_explicit_inputs():
    model = bert_flax.FlaxBertModel(config(), seed=0)
    batch = padded_batch(99, fully_padded_row=False)
    embeds = model.params["embeddings"]["word_embeddings"]["embedding"][batch["input_ids"]]
    via_embeds = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                       token_type_ids=batch["token_type_ids"])
    assert max_abs_diff(via_embeds, model(**batch)) <= F32
    ids = batch["input_ids"]
    explicit = model(ids, token_type_ids=np.zeros_like(ids), position_ids=np.broadcast_to(np.arange(9), ids.shape),
                     attention_mask=np.ones_like(ids))
    assert max_abs_diff(model(ids), explicit) <= F32


def test_unknown_inputs_are_refused_and_the_signature_lists_the_head_inputs():
    import inspect

    model = bert_flax.FlaxBertForMaskedLM(config(), seed=0)
    with pytest.raises(TypeError, match="start_positions"):
        model(**padded_batch(99), start_positions=np.zeros(3))
    assert "labels" in inspect.signature(bert_flax.FlaxBertForMaskedLM.__call__).parameters
    qa = inspect.signature(bert_flax.FlaxBertForQuestionAnswering.__call__).parameters
    assert {"start_positions", "end_positions"} <= set(qa) and "labels" not in qa
    causal = inspect.signature(bert_flax.FlaxBertForCausalLM.__call__).parameters
    assert {"past_key_values", "encoder_hidden_states", "labels"} <= set(causal)


# -- names ---------------------------------------------------------------------------

def test_unprefixed_names_and_auto_classes(tmp_path):
    from bert_core.heads import HEADS

    for head in HEADS.values():
        assert getattr(bert_flax, head.class_name) is getattr(bert_flax, head.flax_name)
        assert getattr(bert_flax, head.auto_name).model_class() is getattr(bert_flax, head.flax_name)
    assert bert_flax.BertLMHeadModel is bert_flax.FlaxBertForCausalLM
    assert bert_flax.FlaxBertForPreTrainingOutput is bert_flax.BertForPreTrainingOutput
    model = bert_flax.FlaxBertForMaskedLM(config(), seed=0)
    model.save_pretrained(tmp_path)
    loaded = bert_flax.AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert type(loaded) is bert_flax.FlaxBertForMaskedLM
    assert max_abs_diff(loaded.params, model.params) == 0
    with pytest.raises(TypeError):
        bert_flax.FlaxAutoModel()
