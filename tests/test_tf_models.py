"""bert_tf against transformers 5.x PyTorch: every head's outputs, losses, gradients, hidden states, attentions."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import torch

import bert_tf
from harness import TOL, max_abs_diff, tiny_config_dict
from test_tf_helpers import CLASS_NAMES, parity_config, HEAD_OF_CLASS, head_config, head_inputs, head_labels, keep_mask, tf_pair, to_torch


@pytest.mark.parametrize("class_name", CLASS_NAMES)
def test_every_head_matches_transformers_on_a_padded_batch(class_name):
    ours, hf = tf_pair(class_name, **head_config(class_name))
    inputs = head_inputs(class_name, parity_config(**head_config(class_name)))
    mine = ours(**inputs)
    with torch.no_grad():
        ref = hf(**to_torch(inputs))
    for field in HEAD_OF_CLASS[class_name].logits:
        value = mine[field].numpy()
        assert np.isfinite(value).all(), f"{field}: the fully padded row must stay finite"
        keep = keep_mask(value.shape, inputs["attention_mask"])
        assert max_abs_diff(value, ref[field], keep) <= TOL["float32"], field


def test_unprefixed_names_are_the_tf_classes():
    for class_name in CLASS_NAMES:
        assert getattr(bert_tf, class_name) is getattr(bert_tf, "TF" + class_name)
    assert bert_tf.TFBertForPreTrainingOutput is bert_tf.BertForPreTrainingOutput


def test_hidden_states_and_attentions_match_transformers():
    ours, hf = tf_pair("BertModel")
    inputs = head_inputs("BertModel", parity_config())
    mine = ours(**inputs, output_hidden_states=True, output_attentions=True)
    with torch.no_grad():
        ref = hf(**to_torch(inputs), output_hidden_states=True, output_attentions=True)
    mask = inputs["attention_mask"]
    assert len(mine.hidden_states) == parity_config()["num_hidden_layers"] + 1
    assert max_abs_diff(mine.hidden_states, ref.hidden_states, mask) <= TOL["float32"]
    pairs = np.broadcast_to(mask[:, None, :, None] * mask[:, None, None, :], mine.attentions[0].shape)
    assert max_abs_diff(mine.attentions, ref.attentions, pairs) <= 1e-6


def test_return_dict_false_gives_the_tuple_of_set_fields():
    ours, _ = tf_pair("BertForQuestionAnswering")
    inputs = head_inputs("BertForQuestionAnswering", parity_config())
    as_tuple = ours(**inputs, return_dict=False)
    as_object = ours(**inputs)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 2
    assert max_abs_diff(as_tuple, as_object.to_tuple()) == 0.0


@pytest.mark.parametrize("head_mask_shape", [(4,), (2, 4)])
def test_head_mask_multiplies_attention_probabilities_like_transformers_4(head_mask_shape):
    # transformers 5.x dropped head_mask; 4.x multiplied the probabilities of each (layer, head).
    ours, hf = tf_pair("BertModel")
    inputs = head_inputs("BertModel", parity_config(), fully_padded_row=False)
    head_mask = np.random.default_rng(0).integers(0, 2, head_mask_shape).astype(np.float32)
    masked = ours(**inputs, head_mask=head_mask, output_attentions=True)
    plain = ours(**inputs, output_attentions=True)
    per_layer = np.broadcast_to(head_mask, (2, 4))
    for layer in range(2):
        expected = plain.attentions[layer].numpy() * per_layer[layer][None, :, None, None]
        if layer == 0:  # later layers see different inputs once a head of layer 0 is masked
            assert max_abs_diff(masked.attentions[0], expected) <= 1e-7
        zeroed = masked.attentions[layer].numpy()[:, per_layer[layer] == 0]
        assert not zeroed.any()


HEAD_LOSS_CASES = [(name, None) for name in CLASS_NAMES if name != "BertModel"] + [
    ("BertForSequenceClassification", "regression"),
    ("BertForSequenceClassification", "multi_label_classification"),
]


def _loss_case(class_name: str, problem_type: str | None):
    overrides = head_config(class_name, problem_type)
    ours, hf = tf_pair(class_name, **overrides)
    config = parity_config(**overrides)
    inputs = head_inputs(class_name, config, fully_padded_row=False)
    return ours, hf, {**inputs, **head_labels(class_name, inputs, config, problem_type)}


@pytest.mark.parametrize("class_name,problem_type", HEAD_LOSS_CASES)
def test_losses_and_gradients_of_one_training_step_match_transformers(class_name, problem_type):
    ours, hf, inputs = _loss_case(class_name, problem_type)
    hf.train()  # dropout is 0 in the tiny config; train mode exercises the training path
    ref_loss = hf(**to_torch(inputs)).loss
    ref_loss.backward()
    weights = ours.canonical_weights()
    with tf.GradientTape() as tape:
        loss = ours(**inputs, training=True).loss
    grads = tape.gradient(loss, [variable.value for variable, _ in weights.values()])
    assert loss.shape == () and max_abs_diff(loss, ref_loss) <= TOL["float32"]
    compared = 0
    for (key, (variable, transpose)), grad in zip(weights.items(), grads):
        ref = hf.get_parameter(key).grad
        if ref is None:  # the pooler of a head that does not read it
            assert grad is None or not np.any(grad), key
            continue
        grad = tf.convert_to_tensor(grad).numpy()
        assert max_abs_diff(grad.T if transpose else grad, ref) <= TOL["float32"], key
        compared += 1
    assert compared >= len(weights) - 2


def test_hot_weights_stay_as_close_to_float64_as_torch():
    """With the harness's hot weights (std 0.5) both float32 implementations drift from the exact (float64)
    logits by ~1e-5; ours must be no further from the truth than PyTorch's own float32."""
    ours, hf = tf_pair("BertForPreTraining", initializer_range=0.5)
    inputs = head_inputs("BertForPreTraining", parity_config())
    with torch.no_grad():
        exact = hf.double()(**to_torch(inputs)).prediction_logits
        torch_error = max_abs_diff(hf.float()(**to_torch(inputs)).prediction_logits, exact, inputs["attention_mask"])
    ours_error = max_abs_diff(ours(**inputs).prediction_logits, exact, inputs["attention_mask"])
    assert ours_error <= max(2 * torch_error, TOL["float32"])
