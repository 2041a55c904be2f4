"""Keras ``fit`` with ``keras.optimizers.Adam`` / ``AdamW`` updates every weight, embeddings included, as
``torch.optim.Adam`` / ``AdamW`` update HF ``transformers``' PyTorch BERT from the same canonical weights
on the same batches.

The trap this guards: an embedding lookup's gradient is a ``tf.IndexedSlices`` with one row per token
occurrence, and Keras' Adam squares those rows one by one, so a token seen ``k`` times in a batch gets the
sum of ``k`` squares as its second moment instead of the square of the summed gradient (two equal
duplicate rows move a weight ``sqrt(2)`` times too far). Repeated tokens are the rule in real batches
(``[CLS]``, ``[SEP]``, token type 0 in every row), so the word and token-type embeddings trained
differently from PyTorch. ``TFBertPreTrainedModel.train_step`` (and ``bert_tf.distributed.make_train_step``)
sum the rows into a dense gradient first, as PyTorch's ``nn.Embedding`` computes it.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import bert_tf
from bert_core import BertConfig
from harness import TOL, max_abs_diff, padded_batch, tiny_config_dict

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

#: epsilon 1e-6 as in the original BERT optimizer. The attention key biases get a gradient that is zero in
#: exact arithmetic (softmax cancels the per-query constant q.b), i.e. rounding noise of ~1e-8 that differs
#: between any two implementations; Adam divides it by sqrt(v) + epsilon, and with Keras' default 1e-7 it
#: steps by ~1% of LR in a noise-chosen direction (1.1e-5 apart), with 1e-6 by ~0.05%.
LR, BETA_1, BETA_2, EPSILON, WEIGHT_DECAY = 1e-3, 0.9, 0.999, 1e-6, 0.01
STEPS, BATCH = 2, 4
HEADS = {"sequence-classification": ("TFBertForSequenceClassification", "BertForSequenceClassification"),
         "masked-lm": ("TFBertForMaskedLM", "BertForMaskedLM")}


def keras_optimizer(name: str):
    if name == "Adam":
        return keras.optimizers.Adam(LR, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPSILON)
    return keras.optimizers.AdamW(LR, weight_decay=WEIGHT_DECAY, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPSILON)


def torch_optimizer(name: str, parameters):
    if name == "Adam":
        return torch.optim.Adam(parameters, LR, betas=(BETA_1, BETA_2), eps=EPSILON)
    return torch.optim.AdamW(parameters, LR, betas=(BETA_1, BETA_2), eps=EPSILON, weight_decay=WEIGHT_DECAY)


def torch_step(optimizer, step: int) -> None:
    """One torch Adam(W) step computing Keras' update.

    Keras adds epsilon to ``sqrt(v)`` (Kingma & Ba's "epsilon hat"), PyTorch to
    ``sqrt(v / (1 - beta_2 ** t))``: the same update once PyTorch's epsilon is ``EPSILON / sqrt(1 - beta_2 ** t)``.
    """
    for group in optimizer.param_groups:
        group["eps"] = EPSILON / math.sqrt(1 - BETA_2 ** step)
    optimizer.step()


def training_batches(head: str, vocab_size: int) -> dict[str, np.ndarray]:
    """``STEPS * BATCH`` rows with repeated tokens and token types in every batch (the test asserts it)."""
    batch = padded_batch(vocab_size, batch=STEPS * BATCH, seq=12, seed=5, fully_padded_row=False)
    ids = batch["input_ids"]
    ids[:, 0], ids[np.arange(len(ids)), batch["attention_mask"].sum(1) - 1] = 2, 3  # [CLS] ... [SEP]
    if head == "sequence-classification":
        batch["labels"] = np.arange(len(ids)) % 3
    else:
        masked = (np.random.default_rng(1).random(ids.shape) < 0.3) & (batch["attention_mask"] == 1)
        batch["labels"] = np.where(masked, ids, -100)
    return batch


def rows(batch: dict[str, np.ndarray], step: int) -> dict[str, np.ndarray]:
    return {k: v[step * BATCH:(step + 1) * BATCH] for k, v in batch.items()}


def fit_in_keras(model, optimizer, batch):
    model.compile(optimizer=optimizer)  # no loss: the model's own label loss, reduced as PyTorch reduces it
    history = model.fit(batch, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    return history.history["loss"][0]


def fit_in_torch(model, optimizer_name, batch):
    optimizer = torch_optimizer(optimizer_name, model.parameters())
    model.train()
    losses = []
    for step in range(STEPS):
        inputs = {k: torch.from_numpy(v) for k, v in rows(batch, step).items()}
        optimizer.zero_grad()
        loss = model(**inputs).loss
        loss.backward()
        torch_step(optimizer, step + 1)
        losses.append(loss.item())
    return float(np.mean(losses))


@pytest.mark.parametrize("optimizer_name", ["Adam", "AdamW"])
@pytest.mark.parametrize("head", list(HEADS))
def test_fit_with_keras_adam_updates_every_weight_as_torch_adam(tmp_path, head, optimizer_name):
    tf_name, torch_name = HEADS[head]
    keras.utils.set_random_seed(0)
    model = getattr(bert_tf, tf_name)(BertConfig(**tiny_config_dict(num_labels=3, initializer_range=0.2)))
    model.save_pretrained(tmp_path)
    reference = getattr(transformers, torch_name).from_pretrained(tmp_path, attn_implementation="eager")
    batch = training_batches(head, model.config.vocab_size)
    for step in range(STEPS):  # the case that went wrong: tokens and token types repeat within each batch
        step_rows = rows(batch, step)
        for name in ("input_ids", "token_type_ids"):
            assert np.unique(step_rows[name], return_counts=True)[1].max() > 1, name

    keras_loss = fit_in_keras(model, keras_optimizer(optimizer_name), batch)
    torch_loss = fit_in_torch(reference, optimizer_name, batch)

    expected = {k: v.detach().numpy() for k, v in reference.state_dict().items()}
    ours = {key: (variable.numpy().T if transpose else variable.numpy())
            for key, (variable, transpose) in model.canonical_weights().items()}
    assert len(ours) == len(model.trainable_weights)  # every trained weight is compared
    diffs = {key: max_abs_diff(value, expected[key]) for key, value in ours.items()}
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= TOL["float32"], (worst, diffs[worst])
    assert abs(keras_loss - torch_loss) <= TOL["float32"]
    # the comparison can tell: the embeddings moved by about LR from their initial values
    initial = transformers.AutoModel.from_pretrained(tmp_path).embeddings.word_embeddings.weight.detach().numpy()
    assert max_abs_diff(ours["bert.embeddings.word_embeddings.weight"], initial) >= 0.5 * LR


def test_dense_gradients_sum_repeated_rows_so_keras_adam_steps_as_torch_adam():
    """The minimal case: a table row looked up three times. Keras' Adam on the summed gradient moves every
    row as torch.optim.Adam does on the same dense gradient (on the raw slices row 1 moved 0.8 to 1.3 LR, not LR)."""
    from bert_tf.base import dense_gradients

    rng = np.random.default_rng(0)
    table, values, ids = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)), np.array([1, 3, 1, 1])
    slices = tf.IndexedSlices(tf.constant(values, tf.float32), tf.constant(ids), tf.constant(table.shape))
    dense, untouched, missing = dense_gradients([slices, tf.ones(2), None])
    assert isinstance(dense, tf.Tensor) and missing is None and untouched.shape == (2,)
    summed = np.zeros_like(table)
    np.add.at(summed, ids, values)
    assert max_abs_diff(dense, summed) <= TOL["float32"]

    variable = keras.Variable(table.astype(np.float32))
    keras_optimizer("Adam").apply_gradients([(dense, variable)])
    parameter = torch.nn.Parameter(torch.tensor(table, dtype=torch.float32))
    parameter.grad = torch.tensor(summed, dtype=torch.float32)
    torch_step(torch_optimizer("Adam", [parameter]), 1)
    assert max_abs_diff(variable, parameter) <= TOL["float32"]
    assert max_abs_diff(variable, table) >= 0.9 * LR  # the looked-up rows moved by about LR
