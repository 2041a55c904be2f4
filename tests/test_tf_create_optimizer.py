"""``bert_tf.create_optimizer`` / ``AdamWeightDecay`` / ``WarmUp`` compute what ``transformers`` 4.x's TF helpers
did, checked against an independent reference: HF ``transformers`` 5.x PyTorch's schedulers and
``torch.optim.AdamW`` with the usual no-decay groups (``tests/optimizer_reference.py``).

Claims: the learning rate at every update equals ``get_linear_schedule_with_warmup`` /
``get_polynomial_decay_schedule_with_warmup``; ``fit`` with the optimizer (warm-up, decay, weight decay
0.5 on all but LayerNorm and biases) leaves every weight of a tiny masked LM where four torch AdamW steps
leave it; the decay is chosen by name as 4.x chose it; the optimizer and schedule survive a Keras
serialization round trip.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import bert_tf
from bert_core import BertConfig
from bert_core.errors import ConfigError
from bert_tf import AdamWeightDecay, WarmUp, create_optimizer
from harness import max_abs_diff, tiny_config_dict
from optimizer_reference import (BATCH, BETA_1, BETA_2, EPSILON, INIT_LR, NUM_TRAIN_STEPS, NUM_WARMUP_STEPS,
                                 SCHEDULES, STEPS, WEIGHT_DECAY, WEIGHT_TOL, decay_shift, mlm_batches, torch_schedule,
                                 torch_train)

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.mark.parametrize("init_lr,num_train_steps,num_warmup_steps,min_lr_ratio,power", SCHEDULES)
def test_schedule_equals_transformers_at_every_step(init_lr, num_train_steps, num_warmup_steps, min_lr_ratio, power):
    _, schedule = create_optimizer(init_lr, num_train_steps, num_warmup_steps, min_lr_ratio=min_lr_ratio, power=power)
    steps = num_train_steps + 3  # past the end: the rate stays at init_lr * min_lr_ratio
    ours = np.array([float(schedule(step)) for step in range(steps)])
    np.testing.assert_allclose(ours, torch_schedule(init_lr, num_train_steps, num_warmup_steps, min_lr_ratio, power,
                                                    steps), rtol=1e-6, atol=1e-12)
    assert isinstance(schedule, WarmUp) == bool(num_warmup_steps)


def test_fit_with_create_optimizer_equals_torch_adamw_with_the_schedule(tmp_path):
    keras.utils.set_random_seed(0)
    model = bert_tf.TFBertForMaskedLM(BertConfig(**tiny_config_dict(initializer_range=0.2)))
    model.save_pretrained(tmp_path)
    batches = mlm_batches(model.config.vocab_size)
    optimizer, _ = create_optimizer(INIT_LR, NUM_TRAIN_STEPS, NUM_WARMUP_STEPS, adam_beta1=BETA_1, adam_beta2=BETA_2,
                                    adam_epsilon=EPSILON, weight_decay_rate=WEIGHT_DECAY)
    assert isinstance(optimizer, AdamWeightDecay)
    model.compile(optimizer=optimizer)
    model.fit(batches, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert int(optimizer.iterations) == STEPS

    expected = torch_train(tmp_path, batches, keras_epsilon=True)
    ours = {key: (variable.numpy().T if transpose else variable.numpy())
            for key, (variable, transpose) in model.canonical_weights().items()}
    assert len(ours) == len(model.trainable_weights)  # every trained weight is compared
    diffs = {key: max_abs_diff(value, expected[key]) for key, value in ours.items()}
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= WEIGHT_TOL, (worst, diffs[worst])
    assert decay_shift(expected) >= 100 * WEIGHT_TOL  # decaying LayerNorm would have shown


def test_weight_decay_is_chosen_by_name_as_4x():
    model = bert_tf.TFBertForMaskedLM(BertConfig(**tiny_config_dict()))
    optimizer, _ = create_optimizer(1e-3, 10, 1, weight_decay_rate=0.01)
    decayed = {key for key, variable in model.named_weights().items() if optimizer._use_weight_decay(variable.value)}
    assert decayed == {k for k in model.named_weights() if k.endswith(("kernel", "embeddings"))}
    assert "bert.embeddings.word_embeddings.embeddings" in decayed
    included, _ = create_optimizer(1e-3, 10, 1, weight_decay_rate=0.01, include_in_weight_decay=["LayerNorm/gamma"])
    assert included._use_weight_decay(model.bert.embeddings.LayerNorm.gamma.value)
    assert not included._use_weight_decay(model.bert.embeddings.LayerNorm.beta)  # a keras.Variable: its path
    plain, _ = create_optimizer(1e-3, 10, 1)  # no decay: 4.x's plain Adam
    assert type(plain) is keras.optimizers.Adam and plain.epsilon == 1e-8
    clipped, _ = create_optimizer(1e-3, 10, 1, adam_global_clipnorm=1.0)
    assert clipped.global_clipnorm == 1.0
    with pytest.raises(ConfigError, match="num_train_steps"):
        create_optimizer(1e-3, 10, 10)


def test_optimizer_and_schedule_survive_keras_serialization():
    optimizer, schedule = create_optimizer(1e-3, 10, 3, weight_decay_rate=0.01, include_in_weight_decay=["x"])
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is AdamWeightDecay
    assert (restored.weight_decay_rate, restored.include_in_weight_decay, restored.exclude_patterns) == (
        0.01, ["x"], ["LayerNorm", "layer_norm", "bias"])
    assert isinstance(restored._learning_rate, WarmUp)  # Keras keeps the schedule there; .learning_rate is its value
    assert [float(restored._learning_rate(s)) for s in range(12)] == [float(schedule(s)) for s in range(12)]
