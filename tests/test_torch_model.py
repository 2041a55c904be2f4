"""Model-level behaviour of bert_torch: activations, init, tying, resizing, checkpointing, dtypes, compile,
pytrees, Auto classes, the public surface and import isolation."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch
import transformers
import transformers.activations

import bert_torch
from bert_core import ACTIVATIONS, BertConfig, HEADS, InputError
from bert_core.heads import LOSSES
from bert_torch.activations import ACT2FN
from bert_torch.unpad import padding_read
from harness import TOL, assert_close, max_abs_diff, padded_batch, tiny_config_dict

CLASS_NAMES = [head.class_name for head in HEADS.values()]


def batch(vocab_size: int = 99, **kw) -> dict:
    return {k: torch.tensor(v) for k, v in padded_batch(vocab_size, **kw).items()}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_match_transformers(name):
    x = torch.linspace(-6, 6, 1001)
    assert max_abs_diff(ACT2FN[name](x), transformers.activations.ACT2FN[name](x)) <= 1e-6


def test_gelu_is_the_exact_erf_gelu_not_the_tanh_approximation():
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    assert max_abs_diff(ACT2FN["gelu"](x), x * 0.5 * (1 + torch.erf(x / 2**0.5))) <= 1e-12
    assert max_abs_diff(ACT2FN["gelu"](x), ACT2FN["gelu_new"](x)) > 1e-4


@pytest.mark.parametrize("class_name", CLASS_NAMES)
def test_parameter_count_and_names_equal_transformers(class_name):
    cfg = tiny_config_dict()
    ours = getattr(bert_torch, class_name)(BertConfig(**cfg))
    hf = getattr(transformers, class_name)(transformers.BertConfig(**cfg))
    assert list(ours.state_dict()) == list(hf.state_dict())
    assert ours.num_parameters() == hf.num_parameters()
    assert ours.num_parameters(exclude_embeddings=True) == hf.num_parameters(exclude_embeddings=True)


def test_initialisation_follows_initializer_range():
    config = BertConfig(**tiny_config_dict(hidden_size=64, intermediate_size=256, initializer_range=0.02))
    model = bert_torch.BertForMaskedLM(config)
    dense = model.bert.encoder.layer[0].intermediate.dense
    assert abs(float(dense.weight.detach().std()) - 0.02) < 0.002 and not dense.bias.any()
    words = model.bert.embeddings.word_embeddings.weight
    assert abs(float(words.detach().std()) - 0.02) < 0.003 and not words[config.pad_token_id].any()
    norm = model.bert.embeddings.LayerNorm
    assert bool((norm.weight == 1).all()) and not norm.bias.any()
    assert not model.cls.predictions.bias.any()


def test_mlm_decoder_is_tied_and_untied_on_request():
    tied = bert_torch.BertForMaskedLM(BertConfig(**tiny_config_dict()))
    assert tied.get_output_embeddings().weight is tied.get_input_embeddings().weight
    untied = bert_torch.BertForMaskedLM(BertConfig(**tiny_config_dict(tie_word_embeddings=False)))
    assert untied.get_output_embeddings().weight is not untied.get_input_embeddings().weight
    assert untied.cls.predictions.decoder.bias is untied.cls.predictions.bias  # one parameter, two names
    assert bert_torch.BertModel(BertConfig(**tiny_config_dict())).get_output_embeddings() is None


def test_untied_save_writes_the_keys_transformers_writes(tmp_path):
    from safetensors.numpy import load_file

    cfg = tiny_config_dict(tie_word_embeddings=False)
    bert_torch.BertForMaskedLM(BertConfig(**cfg)).save_pretrained(tmp_path / "ours")
    transformers.BertForMaskedLM(transformers.BertConfig(**cfg)).save_pretrained(tmp_path / "hf")
    assert set(load_file(tmp_path / "ours" / "model.safetensors")) == \
        set(load_file(tmp_path / "hf" / "model.safetensors"))


@pytest.mark.parametrize("new_size,multiple", [(110, None), (101, 8), (90, None)])
def test_resize_token_embeddings_matches_transformers(new_size, multiple):
    cfg = tiny_config_dict()
    torch.manual_seed(0)
    hf = transformers.BertForMaskedLM(transformers.BertConfig(**cfg)).eval()
    ours = bert_torch.BertForMaskedLM(BertConfig(**cfg)).eval()
    ours.load_state_dict(hf.state_dict())
    ours.resize_token_embeddings(new_size, pad_to_multiple_of=multiple)
    hf.resize_token_embeddings(new_size, pad_to_multiple_of=multiple)
    size = hf.config.vocab_size
    assert ours.config.vocab_size == size and ours.get_input_embeddings().weight.shape == (size, 32)
    assert ours.cls.predictions.decoder.weight is ours.bert.embeddings.word_embeddings.weight
    assert ours.cls.predictions.bias.shape == (size,) and ours.cls.predictions.decoder.bias is ours.cls.predictions.bias
    keep = min(size, 99)
    inputs = batch(keep, fully_padded_row=False)
    with torch.no_grad(), padding_read():  # every position, bit for bit: the padded path
        mine, ref = ours(**inputs).logits, hf(**inputs).logits
    assert max_abs_diff(mine[..., :keep], ref[..., :keep]) == 0.0
    # New rows: transformers samples around the old mean with a 1e-9-scaled covariance; ours is the mean.
    assert max_abs_diff(mine, ref) <= 1e-3


def test_gradient_checkpointing_gives_the_same_gradients():
    config = BertConfig(**tiny_config_dict(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1))
    model = bert_torch.BertForMaskedLM(config).train()
    inputs = batch(fully_padded_row=False)
    labels = torch.where(inputs["attention_mask"] == 1, inputs["input_ids"], -100)

    def grads():
        model.zero_grad()
        torch.manual_seed(7)  # same dropout masks: non-reentrant checkpointing replays the RNG state
        model(**inputs, labels=labels).loss.backward()
        return {k: p.grad.clone() for k, p in model.named_parameters()}

    plain = grads()
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    checkpointed = grads()
    model.gradient_checkpointing_disable()
    assert max(max_abs_diff(plain[k], checkpointed[k]) for k in plain) <= 1e-6


def test_inputs_embeds_position_ids_and_tuple_outputs():
    model = bert_torch.BertModel(BertConfig(**tiny_config_dict())).eval()
    inputs = batch()
    with torch.no_grad():
        ref = model(**inputs)
        embeds = model.get_input_embeddings()(inputs["input_ids"])
        by_embeds = model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"],
                          token_type_ids=inputs["token_type_ids"])
        explicit = model(**inputs, position_ids=torch.arange(9)[None, :].expand(3, -1))
        as_tuple = model(**inputs, return_dict=False)
    assert max_abs_diff(by_embeds, ref) == 0.0 and max_abs_diff(explicit, ref) == 0.0
    assert isinstance(as_tuple, tuple) and max_abs_diff(as_tuple, ref.to_tuple()) == 0.0
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        model(input_ids=inputs["input_ids"], inputs_embeds=embeds)


@pytest.mark.parametrize("dtype,bound", [(torch.bfloat16, TOL["bfloat16"]), (torch.float16, TOL["float16"])])
def test_half_precision_on_cpu_stays_within_the_dtype_bound(dtype, bound, real_model_dir):
    """Real all-MiniLM-L6-v2 hidden states (|h| up to ~6): measured 0.042 (bf16) and 0.006 (fp16) vs float32."""
    inputs = batch(30522, seq=16)
    mask = inputs["attention_mask"].numpy()
    with torch.no_grad():
        ref = bert_torch.BertModel.from_pretrained(real_model_dir)(**inputs)
        half = bert_torch.BertModel.from_pretrained(real_model_dir, dtype=dtype)(**inputs)
    assert half.last_hidden_state.dtype == dtype and torch.isfinite(half.last_hidden_state).all()
    assert max_abs_diff(half.last_hidden_state, ref.last_hidden_state, mask) <= bound


def test_output_objects_are_torch_pytrees():
    from torch.utils import _pytree as pytree

    model = bert_torch.BertForQuestionAnswering(BertConfig(**tiny_config_dict())).eval()
    with torch.no_grad():
        out = model(**batch(), output_hidden_states=True)
    leaves, spec = pytree.tree_flatten(out)
    tensors = [x for x in leaves if x is not None]
    assert len(tensors) == 2 + 3  # start/end logits + embeddings and two layers' hidden states
    rebuilt = pytree.tree_unflatten([None if x is None else x * 2 for x in leaves], spec)
    assert type(rebuilt) is type(out) and torch.equal(rebuilt.start_logits, out.start_logits * 2)


@pytest.mark.slow
def test_torch_compile_runs_and_matches_eager():
    # Inductor generates its own fused kernels (other reduction orders, vectorised erf), so the claim
    # is float32 closeness on a realistically initialised model, not bit equality.
    model = bert_torch.BertForMaskedLM(BertConfig(**tiny_config_dict(initializer_range=0.02))).eval()
    inputs = batch()
    with torch.no_grad():
        with padding_read():  # traced code computes masked positions as transformers does (bert_core.unpad)
            ref = model(**inputs)
        compiled = torch.compile(model)(**inputs)
    assert type(compiled) is type(ref)
    assert_close(compiled.logits, ref.logits)  # inductor fuses and reorders: float32 rounding on logits ~5


@pytest.mark.slow
def test_torch_export_handles_the_output_classes():
    model = bert_torch.BertModel(BertConfig(**tiny_config_dict())).eval()
    inputs = batch()
    exported = torch.export.export(model, (), kwargs=inputs)
    out = exported.module()(**inputs)
    assert isinstance(out, bert_torch.BaseModelOutputWithPoolingAndCrossAttentions)
    with padding_read():  # an exported program computes masked positions as transformers does
        eager = model(**inputs)
    assert max_abs_diff(out.last_hidden_state, eager.last_hidden_state) <= TOL["float32"]


@pytest.mark.parametrize("head", list(HEADS.values()), ids=lambda h: h.name)
def test_auto_classes_pick_the_head(head, tmp_path):
    auto = getattr(bert_torch, head.auto_name)
    model = auto.from_config(BertConfig(**tiny_config_dict()))
    assert type(model).__name__ == head.class_name
    model.save_pretrained(tmp_path)
    assert type(auto.from_pretrained(tmp_path)).__name__ == head.class_name
    with pytest.raises(ValueError, match="from_pretrained"):
        auto()


def test_public_surface_lists_every_head_and_auto_class():
    names = set(bert_torch.__all__)
    assert {h.class_name for h in HEADS.values()} <= names
    assert {h.auto_name for h in HEADS.values()} <= names
    assert all(hasattr(bert_torch, n) for n in bert_torch.__all__)


def _ids_and_mask(inputs: dict) -> dict:
    return {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}


#: (case, inputs -> the bad call's keyword arguments, the argument the message names, the range it names).
BAD_INPUTS = {
    "id >= vocab_size": (lambda x: {**x, "input_ids": x["input_ids"].index_fill(1, torch.tensor([2]), 99)},
                         "input_ids holds 99", r"\[0, 99\)"),
    "negative id": (lambda x: {**x, "input_ids": x["input_ids"].index_fill(1, torch.tensor([0]), -1)},
                    "input_ids holds -1", r"\[0, 99\)"),
    "token type >= type_vocab_size": (lambda x: {**x, "token_type_ids": torch.full_like(x["input_ids"], 2)},
                                      "token_type_ids holds 2", r"\[0, 2\)"),
    "position >= max_position_embeddings": (
        lambda x: {**x, "position_ids": torch.arange(56, 65)[None, :]}, "position_ids holds 64", r"\[0, 64\)"),
    "too long": (lambda x: {"input_ids": torch.ones(2, 65, dtype=torch.long)}, "sequence length 65",
                 "max_position_embeddings=64"),
    "too long by embeddings": (lambda x: {"inputs_embeds": torch.zeros(1, 65, 32)}, "sequence length 65",
                               "max_position_embeddings=64"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.parametrize("class_name,overrides", [("BertModel", {}), ("BertForSequenceClassification", {}),
                                                  ("BertModel", {"position_embedding_type": "relative_key"})])
def test_out_of_range_inputs_raise_input_error_not_index_error(case, class_name, overrides):
    """transformers raises a bare IndexError from F.embedding; the input contract names the argument and range."""
    model = getattr(bert_torch, class_name)(BertConfig(**tiny_config_dict(**overrides))).eval()
    bad, argument, valid = BAD_INPUTS[case]
    with pytest.raises(InputError, match=argument) as error:
        model(**bad(_ids_and_mask(batch())))
    assert isinstance(error.value, ValueError) and error.match(valid)


def test_cached_tokens_count_towards_max_position_embeddings():
    config = BertConfig(**tiny_config_dict(is_decoder=True, max_position_embeddings=12))
    model = bert_torch.BertLMHeadModel(config).eval()
    with torch.no_grad():
        past = model(torch.ones(1, 8, dtype=torch.long), use_cache=True).past_key_values
        model(torch.ones(1, 4, dtype=torch.long), past_key_values=past)  # 8 + 4 = 12 positions: fits
        with pytest.raises(InputError, match=r"sequence length 13 \(8 cached \+ 5 new\)"):
            model(torch.ones(1, 5, dtype=torch.long), past_key_values=past)


def test_in_range_edges_pass_the_input_contract():
    model = bert_torch.BertModel(BertConfig(**tiny_config_dict())).eval()
    ids = torch.tensor([[0, 98] + [5] * 62])  # the smallest and largest id, 64 = max_position_embeddings tokens
    with torch.no_grad():
        out = model(ids, token_type_ids=torch.ones_like(ids), position_ids=torch.arange(64)[None, :])
    assert out.last_hidden_state.shape == (1, 64, 32)


@pytest.mark.parametrize("head", [h for h in HEADS.values() if h.name != "base"], ids=lambda h: h.name)
def test_built_head_classes_keep_the_transformers_class_surface(head):
    """Each head class is built from bert_core.heads.HEADS but reads as the hand-written class did."""
    cls = getattr(bert_torch, head.class_name)
    assert (cls.__name__, cls.__qualname__, cls.__module__) == (head.class_name, head.class_name, "bert_torch.models")
    assert cls.head is head and cls.__doc__ and cls.forward.__doc__
    assert tuple(inspect.signature(cls.forward).parameters) == ("self", *head.forward_args)
    assert list(inspect.signature(cls.__init__).parameters) == ["self", "config"]


@pytest.mark.parametrize("class_name", ["BertForSequenceClassification", "BertForMaskedLM", "BertLMHeadModel"])
def test_head_forward_takes_positional_arguments_and_rejects_unknown_ones(class_name):
    model = getattr(bert_torch, class_name)(BertConfig(**tiny_config_dict(is_decoder=class_name == "BertLMHeadModel")))
    inputs = batch()
    with torch.no_grad():
        by_name = model(**inputs)
        positional = model(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
    assert max_abs_diff(positional.logits, by_name.logits) == 0.0
    with pytest.raises(TypeError, match="unexpected keyword argument 'label'"):
        model(**inputs, label=None)
    with pytest.raises(TypeError, match="multiple values for argument 'input_ids'"):
        model(inputs["input_ids"], input_ids=inputs["input_ids"])


def test_one_loss_function_per_loss_kind():
    from bert_torch import losses

    kinds = [kind for kind in LOSSES if kind != "none"]
    assert sorted(losses.LOSS_FUNCTIONS) == sorted(kinds)
    assert all(losses.LOSS_FUNCTIONS[kind] is getattr(losses, f"{kind}_loss") for kind in kinds)


def test_importing_bert_torch_imports_no_tensorflow_or_jax():
    code = ("import sys, bert_torch; bad = [m for m in ('tensorflow', 'jax', 'flax', 'keras') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
