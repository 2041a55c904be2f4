"""bert_flax.training: the AdamW decay mask, one jitted step with dropout, and loss going down."""

from __future__ import annotations

import numpy as np
import pytest

from harness import max_abs_diff, padded_batch, tiny_config_dict

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
jnp = jax.numpy

import bert_flax  # noqa: E402
from bert_core import BertConfig, ConfigError  # noqa: E402
from bert_flax.training import TrainState, create_optimizer, decay_mask, make_train_step, mask_tokens  # noqa: E402
from flax import traverse_util  # noqa: E402


def tiny_model(cls, **overrides):
    config = BertConfig(**tiny_config_dict(initializer_range=0.02, hidden_dropout_prob=0.1,
                                           attention_probs_dropout_prob=0.1, **overrides))
    return cls(config, seed=0)


def test_decay_mask_excludes_biases_and_layernorm():
    model = tiny_model(bert_flax.FlaxBertForMaskedLM)
    flat = traverse_util.flatten_dict(decay_mask(model.params), sep=".")
    assert flat["bert.encoder.layer.0.attention.self.query.kernel"] is True
    assert flat["bert.embeddings.word_embeddings.embedding"] is True
    assert flat["bert.encoder.layer.0.attention.self.query.bias"] is False
    assert flat["bert.encoder.layer.1.output.LayerNorm.scale"] is False
    assert flat["cls.predictions.transform.LayerNorm.bias"] is False
    assert flat["cls.predictions.bias"] is False
    decayed = {k for k, v in flat.items() if v}
    assert all(k.endswith(("kernel", "embedding")) for k in decayed)


def test_optimizer_is_clipped_adamw_with_masked_decay():
    """One update equals optax's own clip -> adamw applied by hand, and biases are not decayed."""
    params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))},
              "LayerNorm": {"scale": jnp.ones((2,)), "bias": jnp.ones((2,))}}
    grads = jax.tree_util.tree_map(lambda p: jnp.full(p.shape, 10.0), params)
    tx, _ = create_optimizer(0.1, num_train_steps=10, num_warmup_steps=0, weight_decay_rate=0.5,
                             adam_global_clipnorm=1.0)  # update 0 runs at the full rate
    updates, _ = tx.update(grads, tx.init(params), params)
    clipped = optax.clip_by_global_norm(1.0).update(grads, None)[0]
    adam = optax.adam(0.1, eps=1e-8)
    plain, _ = adam.update(clipped, adam.init(params), params)
    assert max_abs_diff(updates["dense"]["bias"], plain["dense"]["bias"]) <= 1e-7
    assert max_abs_diff(updates["LayerNorm"]["scale"], plain["LayerNorm"]["scale"]) <= 1e-7
    # decoupled decay: -lr * wd * param on the kernel only
    assert max_abs_diff(updates["dense"]["kernel"], plain["dense"]["kernel"] - 0.1 * 0.5) <= 1e-7


def synthetic_mlm_batch(config, seed=0):
    base = padded_batch(config.vocab_size, batch=8, seq=12, seed=seed, fully_padded_row=False)
    ids, labels = mask_tokens(jax.random.PRNGKey(seed), base["input_ids"], mask_token_id=3,
                              vocab_size=config.vocab_size, special_tokens_mask=base["attention_mask"] == 0,
                              mlm_probability=0.3)
    return {**base, "input_ids": ids, "labels": labels}


def run_steps(model, loss, batch, steps):
    state = TrainState.create(apply_fn=model.module.apply, params=model.params,
                              tx=create_optimizer(3e-3, num_train_steps=100, num_warmup_steps=0,
                                                  weight_decay_rate=0.01, adam_global_clipnorm=1.0)[0])
    step = make_train_step(model, loss=loss)
    rng = jax.random.PRNGKey(42)
    losses = []
    for _ in range(steps):
        state, metrics = step(state, batch, rng)
        losses.append(float(metrics["loss"]))
    return state, losses


@pytest.mark.slow
@pytest.mark.parametrize("loss,cls,overrides", [
    ("masked-lm", bert_flax.FlaxBertForMaskedLM, {}),
    ("sequence-classification", bert_flax.FlaxBertForSequenceClassification, {"num_labels": 3}),
])
def test_short_run_on_synthetic_data_lowers_the_loss(loss, cls, overrides):
    model = tiny_model(cls, **overrides)
    if loss == "masked-lm":
        batch = synthetic_mlm_batch(model.config)
    else:
        batch = padded_batch(model.config.vocab_size, batch=8, seq=12, fully_padded_row=False)
        batch["labels"] = np.arange(8) % 3
    state, losses = run_steps(model, loss, batch, steps=25)
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0], losses
    assert int(state.step) == 25


def test_train_step_is_one_jitted_function_with_dropout_keyed_by_step():
    model = tiny_model(bert_flax.FlaxBertForMaskedLM)
    batch = synthetic_mlm_batch(model.config, seed=1)
    step = make_train_step(model, loss="masked-lm")
    assert hasattr(step, "lower")  # a jax.jit-compiled function

    tx, _ = create_optimizer(1e-3, 10, 0)  # one optimizer object: it is a static part of the state, keyed by identity

    def fresh_state():
        return TrainState.create(apply_fn=model.module.apply, params=model.params, tx=tx)

    rng = jax.random.PRNGKey(0)
    _, a = step(fresh_state(), batch, rng)
    _, b = step(fresh_state(), batch, rng)
    _, c = step(fresh_state(), batch, jax.random.PRNGKey(1))
    assert float(a["loss"]) == float(b["loss"])  # same key, same step: same dropout masks
    assert float(a["loss"]) != float(c["loss"])  # dropout is on
    deterministic = float(model(**batch).loss)
    assert float(a["loss"]) != deterministic


def test_train_step_refuses_a_head_that_does_not_compute_the_loss():
    model = tiny_model(bert_flax.FlaxBertModel)
    with pytest.raises(ConfigError, match="masked-lm"):
        make_train_step(model, loss="masked-lm")


def test_mask_tokens_follows_the_80_10_10_rule():
    ids = jnp.full((64, 128), 7)
    corrupted, labels = mask_tokens(jax.random.PRNGKey(0), ids, mask_token_id=3, vocab_size=99)
    picked = np.asarray(labels != -100)
    assert 0.13 < picked.mean() < 0.17
    masked = np.asarray(corrupted == 3)[picked].mean()
    kept = np.asarray(corrupted == 7)[picked].mean()
    assert 0.77 < masked < 0.83 and 0.08 < kept < 0.13
    assert (np.asarray(corrupted)[~picked] == 7).all()
