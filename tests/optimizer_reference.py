"""The independent reference for ``create_optimizer`` (bert_tf and bert_flax): HF ``transformers`` 5.x PyTorch.

``torch.optim.AdamW`` over the parameter groups every ``transformers`` fine-tuning script builds (no decay
for names containing ``bias`` or ``LayerNorm.weight``), stepped by ``get_polynomial_decay_schedule_with_warmup``
(``get_linear_schedule_with_warmup`` when ``power=1`` and ``min_lr_ratio=0``), on the masked-LM loss of
``BertForMaskedLM``. Nothing here uses tribert.
"""

from __future__ import annotations

import math

import numpy as np

#: One run's settings, shared by the TF and Flax tests: warm-up, then a decay that the run reaches the end of.
INIT_LR, NUM_TRAIN_STEPS, NUM_WARMUP_STEPS, WEIGHT_DECAY = 1e-3, 5, 2, 0.5
#: epsilon 1e-4: the attention key biases get a gradient that is zero in exact arithmetic (softmax cancels the
#: per-query constant q.b), i.e. rounding noise of ~1e-8 that differs between any two implementations; Adam
#: divides it by sqrt(v_hat) + epsilon, so with 1e-6 it steps ~1% of the rate in a noise-chosen direction
#: (2.4e-5 apart after four updates), with 1e-4 ~0.01%. The real gradients (1e-4 .. 1e-1) still dominate.
BETA_1, BETA_2, EPSILON, STEPS, BATCH = 0.9, 0.999, 1e-4, 4, 4
#: Every weight after the run agrees within this (measured: 2.4e-7 Keras, 2.0e-7 optax, on 2 CPU cores).
WEIGHT_TOL = 1e-6
#: Schedules compared value by value at every step: (init_lr, num_train_steps, num_warmup_steps, min_lr_ratio, power).
SCHEDULES = [(1e-3, 10, 3, 0.0, 1.0), (5e-5, 7, 0, 0.0, 1.0), (2e-4, 12, 4, 0.1, 2.0)]


def torch_schedule(init_lr, num_train_steps, num_warmup_steps, min_lr_ratio, power, steps) -> np.ndarray:
    """The learning rate each of ``steps`` updates runs at, read from transformers' scheduler."""
    import torch
    import transformers

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=init_lr)
    if min_lr_ratio == 0.0 and power == 1.0:
        scheduler = transformers.get_linear_schedule_with_warmup(optimizer, num_warmup_steps, num_train_steps)
    else:
        scheduler = transformers.get_polynomial_decay_schedule_with_warmup(
            optimizer, num_warmup_steps, num_train_steps, lr_end=init_lr * min_lr_ratio, power=power)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(rates)


def mlm_batches(vocab_size: int) -> dict[str, np.ndarray]:
    """``STEPS * BATCH`` rows of masked-LM inputs and labels (-100 where nothing is predicted)."""
    from harness import padded_batch

    batch = padded_batch(vocab_size, batch=STEPS * BATCH, seq=10, seed=7, fully_padded_row=False)
    picked = (np.random.default_rng(2).random(batch["input_ids"].shape) < 0.4) & (batch["attention_mask"] == 1)
    batch["labels"] = np.where(picked, batch["input_ids"], -100)
    return batch


def torch_train(checkpoint_dir, batches: dict[str, np.ndarray], *, keras_epsilon: bool) -> dict[str, np.ndarray]:
    """``STEPS`` AdamW updates of ``BertForMaskedLM`` from ``checkpoint_dir``; returns the state dict as numpy.

    ``keras_epsilon``: Keras adds epsilon to ``sqrt(v)``, PyTorch to ``sqrt(v / (1 - beta_2 ** t))``; the
    same update once PyTorch's epsilon is ``EPSILON / sqrt(1 - beta_2 ** t)`` at update ``t`` (optax adds it
    as PyTorch does: pass False).
    """
    import torch
    import transformers

    model = transformers.BertForMaskedLM.from_pretrained(checkpoint_dir, attn_implementation="eager")
    model.train()
    no_decay = ("bias", "LayerNorm.weight")
    groups = [{"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)],
               "weight_decay": WEIGHT_DECAY},
              {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)],
               "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=INIT_LR, betas=(BETA_1, BETA_2), eps=EPSILON)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, NUM_WARMUP_STEPS, NUM_TRAIN_STEPS)
    for step in range(STEPS):
        rows = {k: torch.from_numpy(v[step * BATCH:(step + 1) * BATCH]) for k, v in batches.items()}
        optimizer.zero_grad()
        model(**rows).loss.backward()
        if keras_epsilon:
            for group in optimizer.param_groups:
                group["eps"] = EPSILON / math.sqrt(1 - BETA_2 ** (step + 1))
        optimizer.step()
        scheduler.step()
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def decay_shift(weights: dict[str, np.ndarray]) -> float:
    """How far decaying the LayerNorm weights would have moved them over the run: ``sum(lr) * wd * |w|``.

    The runs must agree far closer than this for the comparison to tell an excluded LayerNorm from a decayed one.
    """
    rates = torch_schedule(INIT_LR, NUM_TRAIN_STEPS, NUM_WARMUP_STEPS, 0.0, 1.0, STEPS)
    gammas = [np.abs(v).max() for k, v in weights.items() if "LayerNorm.weight" in k]
    return float(rates.sum() * WEIGHT_DECAY * max(gammas))
