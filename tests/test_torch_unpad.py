"""No compute on padding: the packed path equals the padded path on every real position.

The default call packs for inference on CPU; ``padded`` below is the same model with ``set_unpadding(False)``,
the path transformers runs, and every test compares against it (or against transformers itself).
"""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import transformers

import bert_torch
from bert_core import BertConfig
from bert_torch.attention import eager_attention, fused_attention, make_attention_bias
from bert_core.unpad import padding_read
from bert_torch.unpad import varlen_attention
from harness import TOL, max_abs_diff, scaled_tol, padded_batch, tiny_config_dict

ENCODER_HEADS = ["BertModel", "BertForMaskedLM", "BertForSequenceClassification", "BertForTokenClassification",
                 "BertForQuestionAnswering", "BertForPreTraining"]  # fmt: skip


def pair(class_name, attn_implementation="sdpa", **overrides):
    """(opted out, default): the same weights, the first with ``set_unpadding(False)``."""
    torch.manual_seed(0)
    packed = getattr(bert_torch, class_name)(BertConfig(**tiny_config_dict(**overrides))).eval()
    packed.set_attn_implementation(attn_implementation)
    padded = copy.deepcopy(packed)
    padded.set_unpadding(False)
    return padded, packed


def inputs(fully_padded_row=False):
    return {k: torch.from_numpy(v) for k, v in padded_batch(99, batch=4, seq=11, fully_padded_row=fully_padded_row).items()}


def layer_input_shapes(model, batch, grad=False, **kwargs):
    shapes = []
    hook = model.base_model.encoder.layer[0].register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))
    with torch.set_grad_enabled(grad):
        model(**batch, **kwargs)
    hook.remove()
    return shapes


@pytest.mark.parametrize("dtype", ("float64", "float32"))
@pytest.mark.parametrize("class_name", ENCODER_HEADS)
def test_packed_outputs_equal_padded_outputs_on_real_positions(class_name, dtype):
    # float64 holds the paths to the same algorithm (they agree to ~1e-14); float32 to the rounding of
    # matmuls summed in another order, which scales with the tensor's magnitude (logits ~10 here).
    padded, packed = pair(class_name)
    padded, packed = padded.to(getattr(torch, dtype)), packed.to(getattr(torch, dtype))
    batch = inputs()
    assert layer_input_shapes(packed, batch)[0][0] == 1  # the default call packs
    with torch.no_grad():
        a, b = padded(**batch, output_hidden_states=True), packed(**batch, output_hidden_states=True)
    mask = batch["attention_mask"]
    for name in a.keys():
        x, y = a[name], b[name]
        tol = 1e-10 if dtype == "float64" else scaled_tol(x)
        if isinstance(x, tuple):
            assert all(max_abs_diff(u, v, mask) <= tol for u, v in zip(x, y)), name
        elif x.dim() >= 2 and x.shape[:2] == mask.shape:
            assert max_abs_diff(x, y, mask) <= tol, name
            assert torch.count_nonzero(y[mask == 0]) == 0, f"{name}: padded positions should be zeros"
        else:
            assert max_abs_diff(x, y) <= tol, name


def test_the_default_inference_call_sees_only_real_tokens():
    padded, packed = pair("BertModel")
    batch = inputs()
    assert layer_input_shapes(packed, batch) == [(1, int(batch["attention_mask"].sum()), 32)]
    with torch.inference_mode():
        assert layer_input_shapes(packed, batch) == [(1, int(batch["attention_mask"].sum()), 32)]
    assert layer_input_shapes(padded, batch) == [(4, 11, 32)]  # set_unpadding(False): never


@pytest.fixture(scope="module")
def models():
    return pair("BertModel")


def padded_path_output(model, batch):
    with torch.no_grad():
        return model(**batch).last_hidden_state


def assert_padded_path(got, padded, batch):
    """``got`` is the padded path's output at every position: padded ones hold the values transformers gives
    there (attention over the row's real tokens), which the packed path leaves at zero."""
    expected = padded_path_output(padded, batch)
    pad = batch["attention_mask"] == 0
    assert torch.count_nonzero(expected[pad]) > 0
    assert max_abs_diff(got, expected) <= scaled_tol(expected)


def test_training_and_recorded_gradients_keep_the_padded_path(models):
    padded, packed = models
    batch = inputs()
    assert layer_input_shapes(packed, batch, grad=True) == [(4, 11, 32)]
    assert_padded_path(packed(**batch).last_hidden_state.detach(), padded, batch)
    packed.train()
    try:
        assert layer_input_shapes(packed, batch) == [(4, 11, 32)]
    finally:
        packed.eval()
    frozen = copy.deepcopy(packed).requires_grad_(False)  # grad enabled, nothing to record: inference
    assert layer_input_shapes(frozen, batch, grad=True)[0][0] == 1
    assert layer_input_shapes(frozen, batch, grad=True, inputs_embeds=None)[0][0] == 1


class Encode(torch.nn.Module):
    """``last_hidden_state`` of positional inputs: what ``torch.jit.trace`` can record."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids, attention_mask, token_type_ids, return_dict=False)[0]


def test_compile_export_and_jit_trace_keep_the_padded_path(models):
    padded, packed = models
    batch = inputs()
    with torch.no_grad():
        compiled = torch.compile(packed, backend="eager", fullgraph=True)(**batch).last_hidden_state
        exported = torch.export.export(packed, (), kwargs=batch, strict=False).module()(**batch).last_hidden_state
        traced = torch.jit.trace(Encode(packed), tuple(batch.values()))(*batch.values())
    for got in (compiled, exported, traced):
        assert_padded_path(got, padded, batch)


def test_set_unpadding_none_restores_the_default_and_rejects_other_values(models):
    _, packed = models
    model = copy.deepcopy(packed)
    model.set_unpadding(False)
    assert layer_input_shapes(model, inputs())[0][0] == 4
    model.set_unpadding(None)
    assert layer_input_shapes(model, inputs())[0][0] == 1
    with pytest.raises(ValueError, match="set_unpadding"):
        model.set_unpadding("yes")


def test_a_loss_over_per_token_logits_keeps_the_padded_path():
    """Question answering's softmax runs over every position, padding included: the loss must be transformers'."""
    padded, packed = pair("BertForQuestionAnswering")
    batch = inputs()
    labels = {"start_positions": torch.tensor([0, 3, 5, 1]), "end_positions": torch.tensor([2, 4, 7, 1])}
    assert layer_input_shapes(packed, batch, **labels)[0][0] == 4
    with torch.no_grad():
        a, b = padded(**batch, **labels), packed(**batch, **labels)
    assert max_abs_diff(a.loss, b.loss) <= TOL["float32"] and max_abs_diff(a.start_logits, b.start_logits) <= TOL["float32"]
    pooled_padded, pooled_packed = pair("BertForSequenceClassification")  # a pooled head's loss reads no padding
    assert layer_input_shapes(pooled_packed, batch, labels=torch.tensor([0, 1, 1, 0]))[0][0] == 1
    with torch.no_grad():
        a, b = (m(**batch, labels=torch.tensor([0, 1, 1, 0])) for m in (pooled_padded, pooled_packed))
    assert max_abs_diff(a.loss, b.loss) <= TOL["float32"]


def test_packing_declines_where_it_cannot_be_exact():
    """A fully padded row, a decoder, attentions or head_mask keep the padded path."""
    _, packed = pair("BertModel")
    assert layer_input_shapes(packed, inputs(fully_padded_row=True))[0][0] == 4
    dense = {k: v[:, :3] for k, v in inputs().items()}  # no padding at all
    assert layer_input_shapes(packed, dense)[0][0] == 4
    assert layer_input_shapes(packed, inputs(), output_attentions=True)[0][0] == 4
    assert layer_input_shapes(packed, inputs(), head_mask=torch.ones(4))[0][0] == 4


def test_gradients_of_the_packed_path_equal_the_padded_path():
    """``set_unpadding(True)`` packs in training too; the gradients stay the padded path's."""
    padded, packed = pair("BertForMaskedLM")
    packed.set_unpadding(True)
    padded.train(), packed.train()
    batch = inputs()
    labels = torch.where(batch["attention_mask"] == 1, batch["input_ids"], -100)
    assert layer_input_shapes(packed, batch, grad=True)[0][0] == 1
    for model in (padded, packed):
        model(**batch, labels=labels).loss.backward()
    for (name, p), (_, q) in zip(padded.named_parameters(), packed.named_parameters()):
        assert max_abs_diff(p.grad, q.grad) <= TOL["float32"], name


@pytest.mark.parametrize("attend", ["sdpa", "eager"])
def test_varlen_attention_equals_masked_attention_in_the_padded_view(attend):
    torch.manual_seed(0)
    lengths, heads, head_dim = [5, 1, 8, 3], 2, 4
    seq, offsets = max(lengths), [0]
    for n in lengths:
        offsets.append(offsets[-1] + n)
    q, k, v = (torch.randn(heads, offsets[-1], head_dim) for _ in range(3))  # packed

    def padded(x):  # (heads, tokens, d) -> (batch, heads, seq, d), zeros after each row's length
        rows = [torch.nn.functional.pad(x[:, s:e], (0, 0, 0, seq - (e - s))) for s, e in zip(offsets[:-1], offsets[1:])]
        return torch.stack(rows)

    mask = torch.tensor([[1] * n + [0] * (seq - n) for n in lengths])
    bias = make_attention_bias(mask, query_length=seq, key_length=seq, dtype=torch.float32, device=q.device)
    reference, _ = eager_attention(padded(q), padded(k), padded(v), bias)  # (batch, heads, seq, d)
    fn = fused_attention if attend == "sdpa" else (lambda *a: eager_attention(*a)[0])
    ours = varlen_attention(q, k, v, tuple(offsets), fn)  # (heads, tokens, d)
    assert max_abs_diff(padded(ours), reference, mask[:, None, :, None].expand_as(reference)) <= 1e-6


@pytest.mark.parametrize("overrides", [{"position_embedding_type": "relative_key"},
                                       {"position_embedding_type": "relative_key_query"},
                                       {"attn_implementation": "eager"}], ids=lambda o: "-".join(map(str, o.values())))
def test_packed_path_equals_padded_path_for_every_attention_variant(overrides):
    padded, packed = pair("BertModel", **overrides)
    batch = inputs()
    with torch.no_grad():
        a, b = padded(**batch).last_hidden_state, packed(**batch).last_hidden_state
    assert layer_input_shapes(packed, batch)[0][0] == 1
    assert max_abs_diff(a, b, batch["attention_mask"]) <= TOL["float32"]


@pytest.fixture(scope="module")
def hf_and_ours():
    """transformers' BertModel (the independent reference) and ours with the same weights."""
    cfg = tiny_config_dict()
    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig(**cfg), add_pooling_layer=True).eval()
    ours = bert_torch.BertModel(BertConfig(**cfg)).eval()
    ours.load_state_dict(hf.state_dict())
    return hf, ours


def test_packed_path_equals_transformers_on_real_positions(hf_and_ours):
    hf, ours = hf_and_ours
    batch = inputs()
    with torch.no_grad():
        ref, got = hf(**batch), ours(**batch)
    assert layer_input_shapes(ours, batch)[0][0] == 1
    assert max_abs_diff(got.last_hidden_state, ref.last_hidden_state, batch["attention_mask"]) <= TOL["float32"]
    assert max_abs_diff(got.pooler_output, ref.pooler_output) <= TOL["float32"]


def _layout(name: str) -> dict[str, torch.Tensor]:
    batch = inputs(fully_padded_row=name == "fully_padded_row")
    if name == "left_padded":  # position 0 is padding: the pooler reads a padded position, as in transformers
        batch = {k: v.flip(1) for k, v in batch.items()}
    if name == "little_padding":  # 1 padded position of 44: under MIN_PADDING_FRACTION
        batch["attention_mask"] = torch.ones_like(batch["attention_mask"])
        batch["attention_mask"][3, -1] = 0
    return batch


@pytest.mark.parametrize("layout", ["left_padded", "fully_padded_row", "little_padding"])
def test_inference_calls_that_do_not_pack_read_zeros_at_masked_positions_too(hf_and_ours, layout):
    """bert_core.unpad's rule does not depend on whether a batch was packed: masked positions of every hidden
    state read zeros, real positions and the pooler are transformers'."""
    hf, ours = hf_and_ours
    batch = _layout(layout)
    assert layer_input_shapes(ours, batch)[0][0] == 4  # the padded compute ran
    with torch.no_grad():
        ref, got = hf(**batch, output_hidden_states=True), ours(**batch, output_hidden_states=True)
    mask = batch["attention_mask"]
    for theirs, mine in zip((ref.last_hidden_state, *ref.hidden_states), (got.last_hidden_state, *got.hidden_states)):
        assert max_abs_diff(mine, theirs, mask) <= TOL["float32"]
        assert torch.count_nonzero(mine[mask == 0]) == 0
    rows = mask.any(-1)  # a row with no real token attends to nothing: its pooled value is implementation-defined
    assert max_abs_diff(got.pooler_output[rows], ref.pooler_output[rows]) <= TOL["float32"]


@pytest.mark.parametrize("option", ["output_attentions", "head_mask", "padding_read", "set_unpadding_false"])
def test_calls_outside_the_rule_keep_transformers_values_at_masked_positions(hf_and_ours, option):
    hf, ours = hf_and_ours
    batch = _layout("left_padded")
    kwargs = {"output_attentions": {"output_attentions": True}, "head_mask": {"head_mask": torch.ones(4)}}.get(option, {})
    model = ours
    if option == "set_unpadding_false":
        model = copy.deepcopy(ours)
        model.set_unpadding(False)
    with torch.no_grad(), padding_read() if option == "padding_read" else contextlib.nullcontext():
        ref, got = hf(**batch, **kwargs), model(**batch, **kwargs)
    assert torch.count_nonzero(ref.last_hidden_state[batch["attention_mask"] == 0]) > 0
    assert max_abs_diff(got.last_hidden_state, ref.last_hidden_state) <= TOL["float32"]  # every position


def test_packing_needs_right_padding():
    _, packed = pair("BertModel")
    batch = {k: v.flip(1) for k, v in inputs().items()}  # left-padded: position 0 is padding
    assert layer_input_shapes(packed, batch)[0][0] == 4


def test_a_mask_without_padding_builds_no_bias():
    """All-ones mask == no mask: the dense path runs SDPA without a bias, as transformers does."""
    model = pair("BertModel")[0]
    batch = {k: v[:, :3] for k, v in inputs().items()}
    seen = []
    hook = model.encoder.layer[0].register_forward_pre_hook(lambda m, args: seen.append(args[1]))
    with torch.no_grad():
        with_mask = model(**batch).last_hidden_state
        without = model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"]).last_hidden_state
    hook.remove()
    assert seen == [None, None]
    assert torch.equal(with_mask, without)
