"""``bert_flax.create_optimizer``, the optax twin of ``bert_tf.create_optimizer`` (``transformers`` 4.x's TF
helper), checked against an independent reference: HF ``transformers`` 5.x PyTorch's schedulers and
``torch.optim.AdamW`` with the usual no-decay groups (``tests/optimizer_reference.py``).

Claims: the learning rate at every update equals ``get_linear_schedule_with_warmup`` /
``get_polynomial_decay_schedule_with_warmup`` (so the TF and Flax schedules agree); four updates
(warm-up, decay, weight decay 0.5 on all but LayerNorm and biases) leave every weight of a tiny masked
LM where torch's four AdamW steps leave it; the decay mask follows 4.x's name rule.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import max_abs_diff, tiny_config_dict
from optimizer_reference import (BATCH, BETA_1, BETA_2, EPSILON, INIT_LR, NUM_TRAIN_STEPS, NUM_WARMUP_STEPS,
                                 SCHEDULES, STEPS, WEIGHT_DECAY, WEIGHT_TOL, decay_shift, mlm_batches, torch_schedule,
                                 torch_train)

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
pytest.importorskip("torch")
pytest.importorskip("transformers")

import bert_flax  # noqa: E402
from bert_core import BertConfig, ConfigError  # noqa: E402
from bert_flax import create_optimizer, decay_mask  # noqa: E402
from bert_flax.loading import canonical_state  # noqa: E402
from flax import traverse_util  # noqa: E402


@pytest.mark.parametrize("init_lr,num_train_steps,num_warmup_steps,min_lr_ratio,power", SCHEDULES)
def test_schedule_equals_transformers_at_every_step(init_lr, num_train_steps, num_warmup_steps, min_lr_ratio, power):
    _, schedule = create_optimizer(init_lr, num_train_steps, num_warmup_steps, min_lr_ratio=min_lr_ratio, power=power)
    steps = num_train_steps + 3
    ours = np.array([float(schedule(step)) for step in range(steps)])
    np.testing.assert_allclose(ours, torch_schedule(init_lr, num_train_steps, num_warmup_steps, min_lr_ratio, power,
                                                    steps), rtol=1e-6, atol=1e-12)


def test_updates_with_create_optimizer_equal_torch_adamw_with_the_schedule(tmp_path):
    model = bert_flax.FlaxBertForMaskedLM(BertConfig(**tiny_config_dict(initializer_range=0.2)), seed=0)
    model.save_pretrained(tmp_path)
    batches = mlm_batches(model.config.vocab_size)
    optimizer, _ = create_optimizer(INIT_LR, NUM_TRAIN_STEPS, NUM_WARMUP_STEPS, adam_beta1=BETA_1, adam_beta2=BETA_2,
                                    adam_epsilon=EPSILON, weight_decay_rate=WEIGHT_DECAY)
    params, state = model.params, optimizer.init(model.params)
    grad_fn = jax.grad(lambda p, rows: model(**rows, params=p, train=False).loss)
    for step in range(STEPS):
        rows = {k: v[step * BATCH:(step + 1) * BATCH] for k, v in batches.items()}
        updates, state = optimizer.update(grad_fn(params, rows), state, params)
        params = optax.apply_updates(params, updates)

    expected = torch_train(tmp_path, batches, keras_epsilon=False)  # optax adds epsilon as PyTorch does
    ours = canonical_state(model, params)
    assert len(ours) == len(jax.tree_util.tree_leaves(params))  # every trained weight is compared
    diffs = {key: max_abs_diff(value, expected[key]) for key, value in ours.items()}
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= WEIGHT_TOL, (worst, diffs[worst])
    assert decay_shift(expected) >= 100 * WEIGHT_TOL  # decaying LayerNorm would have shown


def test_decay_mask_follows_the_4x_name_rule():
    params = bert_flax.FlaxBertForMaskedLM(BertConfig(**tiny_config_dict()), seed=0).params
    flat = traverse_util.flatten_dict(decay_mask(params), sep="/")
    assert {k for k, v in flat.items() if v} == {k for k in flat if k.endswith(("kernel", "embedding"))}
    included = traverse_util.flatten_dict(decay_mask(params, include_in_weight_decay=["LayerNorm/scale"]), sep="/")
    assert included["bert/embeddings/LayerNorm/scale"] and not included["bert/embeddings/LayerNorm/bias"]
    with pytest.raises(ConfigError, match="num_train_steps"):
        create_optimizer(1e-3, 10, 10)
