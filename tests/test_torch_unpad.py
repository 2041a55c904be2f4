"""No compute on padding: the packed path equals the padded path on every real position."""

from __future__ import annotations

import copy

import pytest
import torch

import bert_torch
from bert_core import BertConfig
from harness import TOL, max_abs_diff, padded_batch, tiny_config_dict

ENCODER_HEADS = ["BertModel", "BertForMaskedLM", "BertForSequenceClassification", "BertForTokenClassification",
                 "BertForQuestionAnswering", "BertForPreTraining"]  # fmt: skip


def pair(class_name, **overrides):
    torch.manual_seed(0)
    padded = getattr(bert_torch, class_name)(BertConfig(**tiny_config_dict(**overrides))).eval()
    packed = copy.deepcopy(padded)
    packed.set_unpadding(True)
    return padded, packed


def inputs(fully_padded_row=False):
    return {k: torch.from_numpy(v) for k, v in padded_batch(99, batch=4, seq=11, fully_padded_row=fully_padded_row).items()}


def layer_input_shapes(model, batch, **kwargs):
    shapes = []
    hook = model.base_model.encoder.layer[0].register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))
    with torch.no_grad():
        model(**batch, **kwargs)
    hook.remove()
    return shapes


@pytest.mark.parametrize("class_name", ENCODER_HEADS)
def test_packed_outputs_equal_padded_outputs_on_real_positions(class_name):
    padded, packed = pair(class_name)
    batch = inputs()
    with torch.no_grad():
        a, b = padded(**batch, output_hidden_states=True), packed(**batch, output_hidden_states=True)
    mask = batch["attention_mask"]
    for name in a.keys():
        x, y = a[name], b[name]
        if isinstance(x, tuple):
            assert all(max_abs_diff(u, v, mask) <= TOL["float32"] for u, v in zip(x, y)), name
        elif x.dim() >= 2 and x.shape[:2] == mask.shape:
            assert max_abs_diff(x, y, mask) <= TOL["float32"], name
            assert torch.count_nonzero(y[mask == 0]) == 0, f"{name}: padded positions should be zeros"
        else:
            assert max_abs_diff(x, y) <= TOL["float32"], name


def test_the_encoder_sees_only_real_tokens():
    _, packed = pair("BertModel")
    batch = inputs()
    assert layer_input_shapes(packed, batch) == [(1, int(batch["attention_mask"].sum()), 32)]


def test_packing_declines_where_it_cannot_be_exact():
    """A fully padded row, a decoder, attentions or head_mask keep the padded path."""
    _, packed = pair("BertModel")
    assert layer_input_shapes(packed, inputs(fully_padded_row=True))[0][0] == 4
    dense = {k: v[:, :3] for k, v in inputs().items()}  # no padding at all
    assert layer_input_shapes(packed, dense)[0][0] == 4
    assert layer_input_shapes(packed, inputs(), output_attentions=True)[0][0] == 4
    assert layer_input_shapes(packed, inputs(), head_mask=torch.ones(4))[0][0] == 4


def test_gradients_of_the_packed_path_equal_the_padded_path():
    padded, packed = pair("BertForMaskedLM")
    padded.train(), packed.train()
    batch = inputs()
    labels = torch.where(batch["attention_mask"] == 1, batch["input_ids"], -100)
    for model in (padded, packed):
        model(**batch, labels=labels).loss.backward()
    for (name, p), (_, q) in zip(padded.named_parameters(), packed.named_parameters()):
        assert max_abs_diff(p.grad, q.grad) <= TOL["float32"], name
