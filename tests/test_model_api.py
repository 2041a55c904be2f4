"""The model API a transformers 4.x user calls, in the three backends, against transformers itself.

References: transformers 5.x PyTorch (installed) for loading, class attributes and resize + post_init;
tests/fixtures/model_api/config_attributes.json (written by 4.57.6) for the config attributes 5.x dropped;
the checkpoint file itself for the Flax dtype rules of 4.x (read from 4.57.6's modeling_flax_utils).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from harness import assert_close, padded_batch, tiny_config_dict

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from bert_core import BertConfig, InputError  # noqa: E402
from bert_core.heads import HEADS  # noqa: E402

BACKENDS = ("torch", "tf", "flax")
FIXTURE = Path(__file__).parent / "fixtures" / "model_api" / "config_attributes.json"


def backend_class(backend: str, class_name: str):
    """The backend's class for transformers' PyTorch class name (``BertForMaskedLM`` -> ``TFBertForMaskedLM``)."""
    head = next(h for h in HEADS.values() if h.class_name == class_name)
    if backend == "torch":
        import bert_torch

        return getattr(bert_torch, class_name)
    if backend == "tf":
        bert_tf = pytest.importorskip("bert_tf")
        return getattr(bert_tf, head.tf_class_name)
    bert_flax = pytest.importorskip("bert_flax")
    return getattr(bert_flax, head.flax_name)


def hf_checkpoint(directory, class_name: str = "BertForMaskedLM", **overrides):
    torch.manual_seed(0)
    config = transformers.BertConfig(**tiny_config_dict(initializer_range=0.2, **overrides))
    model = getattr(transformers, class_name)(config).eval()
    model.save_pretrained(directory)
    return model


def word_embeddings(backend: str, model) -> np.ndarray:
    if backend == "torch":
        return model.get_input_embeddings().weight.detach().numpy()
    if backend == "tf":
        return np.asarray(model.canonical_weights()["bert.embeddings.word_embeddings.weight"][0])
    return np.asarray(model.params["bert"]["embeddings"]["word_embeddings"]["embedding"])


# -- from_pretrained ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_from_pretrained_takes_transformers_keyword_name(backend, tmp_path):
    hf = hf_checkpoint(tmp_path)
    model = backend_class(backend, "BertForMaskedLM").from_pretrained(pretrained_model_name_or_path=tmp_path)
    assert_close(word_embeddings(backend, model), hf.get_input_embeddings().weight.detach().numpy(), atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_loading_info_lists_take_set_operations_and_match_transformers(backend, tmp_path):
    """A BertModel checkpoint into BertForMaskedLM: 4.x's list habits and 5.x's set habits both hold."""
    hf_checkpoint(tmp_path, "BertModel")
    _, theirs = transformers.BertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    result = backend_class(backend, "BertForMaskedLM").from_pretrained(tmp_path, output_loading_info=True)
    info = result[-1]
    # 5.x also lists the decoder bias, which it holds as a parameter of its own; tribert's is cls.predictions.bias.
    expected = theirs["missing_keys"] - {"cls.predictions.decoder.bias"}
    assert info["missing_keys"] == expected  # set equality, as with 5.x
    assert sorted(info["missing_keys"]) == sorted(expected)  # list habits, as with 4.x
    assert info["missing_keys"][0] in expected and len(info["missing_keys"]) == len(expected)
    assert info["unexpected_keys"] == theirs["unexpected_keys"] and info["unexpected_keys"] - {"x"} == {
        "pooler.dense.weight", "pooler.dense.bias"}
    assert len(info["mismatched_keys"]) == 0 and info["mismatched_keys"] == [] and info["mismatched_keys"] == set()
    assert info["error_msgs"] == theirs["error_msgs"] == []
    assert {"a"} | info["mismatched_keys"] == {"a"} and not (info["missing_keys"] & {"nothing"})


def test_torch_from_pretrained_none_with_config_and_state_dict(tmp_path):
    import bert_torch

    hf = hf_checkpoint(tmp_path)
    config = BertConfig.from_pretrained(tmp_path)
    theirs = transformers.BertForMaskedLM.from_pretrained(None, config=hf.config, state_dict=hf.state_dict()).eval()
    ours = bert_torch.BertForMaskedLM.from_pretrained(None, config=config, state_dict=hf.state_dict())
    batch = {k: torch.as_tensor(v) for k, v in padded_batch(config.vocab_size, fully_padded_row=False).items()}
    with torch.no_grad():  # real positions: the default inference call leaves padded ones at the head of zeros
        assert_close(ours(**batch).logits, theirs(**batch).logits, mask=batch["attention_mask"])
    with pytest.raises(ValueError, match="config= and state_dict="):
        bert_torch.BertForMaskedLM.from_pretrained(None, state_dict=hf.state_dict())


# -- class attributes --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("class_name", [h.class_name for h in HEADS.values()])
def test_main_input_name_and_can_generate_as_transformers(backend, class_name):
    ours, theirs = backend_class(backend, class_name), getattr(transformers, class_name)
    assert ours.main_input_name == theirs.main_input_name == "input_ids"
    assert ours.can_generate() == theirs.can_generate(), class_name
    # Keras has no layer recomputation here (4.x TF had none); torch and Flax checkpoint layers.
    assert ours.supports_gradient_checkpointing == (theirs.supports_gradient_checkpointing and backend != "tf")


def test_config_has_the_attributes_4x_code_reads():
    reference = json.loads(FIXTURE.read_text(encoding="utf-8"))
    config = BertConfig()
    for name, value in reference["attributes"].items():
        assert getattr(config, name) == value, name
    written = config.to_dict()
    assert "torchscript" not in written and "is_encoder_decoder" not in written  # config.json unchanged
    config.torchscript = True
    assert config.use_return_dict == reference["use_return_dict_with_torchscript"]
    assert BertConfig.from_dict(config.to_dict()).torchscript is True  # a set attribute is saved


# -- torch: resize + post_init, input require-grads -------------------------------------------------------


def test_post_init_after_resize_keeps_an_untied_decoder_as_transformers():
    import bert_torch

    config = tiny_config_dict(initializer_range=0.2, tie_word_embeddings=False)
    models = {"theirs": transformers.BertForMaskedLM(transformers.BertConfig(**config)),
              "ours": bert_torch.BertForMaskedLM(BertConfig(**config))}
    for name, model in models.items():
        model.resize_token_embeddings(config["vocab_size"] + 7)
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.post_init()
        after = model.state_dict()
        changed = [k for k in before if not torch.equal(before[k], after[k])]
        assert changed == [], (name, changed)


def test_input_require_grads_hook_as_transformers():
    import bert_torch

    config = tiny_config_dict()
    ids = torch.tensor([[1, 2, 3]])
    for model in (transformers.BertModel(transformers.BertConfig(**config)), bert_torch.BertModel(BertConfig(**config))):
        model.requires_grad_(False)
        model.enable_input_require_grads()
        assert model.get_input_embeddings()(ids).requires_grad
        model.disable_input_require_grads()
        assert not model.get_input_embeddings()(ids).requires_grad


# -- TF: list / tuple / dict inputs ---------------------------------------------------------------------


def test_tf_list_tuple_and_dict_inputs_in_call_order(tmp_path):
    bert_tf = pytest.importorskip("bert_tf")
    hf = hf_checkpoint(tmp_path, "BertForSequenceClassification")
    model = bert_tf.TFBertForSequenceClassification.from_pretrained(tmp_path)
    batch = padded_batch(hf.config.vocab_size, fully_padded_row=False)
    ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    with torch.no_grad():
        full = hf(**{k: torch.as_tensor(v) for k, v in batch.items()}).logits
        two = hf(torch.as_tensor(ids), torch.as_tensor(mask)).logits
    assert_close(model([ids, mask, types]).logits, full)
    assert_close(model((ids, mask, types)).logits, full)
    assert_close(model({"input_ids": ids, "attention_mask": mask, "token_type_ids": types}).logits, full)
    assert_close(model([ids, mask]).logits, two)
    assert_close(model(input_ids=ids, attention_mask=mask).logits, two)
    with pytest.raises(InputError, match="11 inputs in a list; it takes at most 10"):
        model([ids] * 11)
    with pytest.raises(InputError, match="attention_mask"):
        model([ids, mask], attention_mask=mask)


# -- Flax: _do_init=False and dtypes as 4.x -------------------------------------------------------------


def _dtypes(params) -> set[str]:
    import jax

    return {str(x.dtype) for x in jax.tree_util.tree_leaves(params)}


def test_flax_do_init_false_returns_model_and_params(tmp_path):
    bert_flax = pytest.importorskip("bert_flax")
    import jax

    hf = hf_checkpoint(tmp_path, "BertModel")
    model, params = bert_flax.FlaxBertForSequenceClassification.from_pretrained(tmp_path, _do_init=False)
    with pytest.raises(ValueError, match="_do_init=False"):
        model.params  # noqa: B018 - as 4.x: the model holds no params
    assert "classifier" not in params  # weights the checkpoint lacks are left to init_weights, as 4.x
    model.params = model.init_weights(jax.random.PRNGKey(0), model.input_shape, params)
    batch = padded_batch(hf.config.vocab_size, fully_padded_row=False)
    with torch.no_grad():
        pooled = hf(**{k: torch.as_tensor(v) for k, v in batch.items()}).pooler_output
    assert model(**batch).logits.shape == (len(batch["input_ids"]), 2)
    base, base_params = bert_flax.FlaxBertModel.from_pretrained(tmp_path, _do_init=False)
    assert_close(base(**batch, params=base_params).pooler_output, pooled)


def test_flax_float16_checkpoint_stays_float16_and_dtype_is_the_compute_dtype(tmp_path, caplog):
    bert_flax = pytest.importorskip("bert_flax")
    import jax.numpy as jnp

    hf = hf_checkpoint(tmp_path, "BertForMaskedLM")
    hf.half().save_pretrained(tmp_path / "half")
    with caplog.at_level(logging.WARNING, logger="bert_flax"):
        half = bert_flax.FlaxBertForMaskedLM.from_pretrained(tmp_path / "half")
    assert _dtypes(half.params) == {"float16"} and "float16" in caplog.text  # kept, with 4.x's warning
    assert_close(half.params["bert"]["embeddings"]["word_embeddings"]["embedding"],
                 hf.get_input_embeddings().weight.detach().numpy(), atol=0)
    assert _dtypes(half.to_fp32()) == {"float32"}
    assert _dtypes(bert_flax.FlaxBertForMaskedLM.from_pretrained(tmp_path / "half", param_dtype=jnp.float32).params
                   ) == {"float32"}
    # dtype is the computation dtype: float32 weights stay float32, activations are float16.
    compute16 = bert_flax.FlaxBertForMaskedLM.from_pretrained(tmp_path, dtype=jnp.float16)
    assert _dtypes(compute16.params) == {"float32"} and _dtypes(compute16.to_bf16()) == {"bfloat16"}
    batch = padded_batch(hf.config.vocab_size, fully_padded_row=False)
    logits = compute16(**batch).logits
    assert logits.dtype == jnp.float16
    with torch.no_grad():
        expected = hf.float()(**{k: torch.as_tensor(v) for k, v in batch.items()}).logits
    assert_close(np.asarray(logits, np.float32), expected, "float16", mask=batch["attention_mask"])


# -- errors and old config flags ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_mismatched_shapes_raise_what_transformers_raises(backend, tmp_path):
    hf_checkpoint(tmp_path, "BertForSequenceClassification")
    with pytest.raises(RuntimeError) as theirs:
        transformers.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    with pytest.raises(type(theirs.value), match="classifier.weight: checkpoint"):  # RuntimeError, as there
        backend_class(backend, "BertForSequenceClassification").from_pretrained(tmp_path, num_labels=5)


def test_config_gradient_checkpointing_flag_turns_it_on_as_transformers_4x():
    """4.57.6's post_init reads the old ``config.gradient_checkpointing`` flag (5.x dropped it)."""
    import bert_torch

    config = BertConfig(**tiny_config_dict())
    config.gradient_checkpointing = True
    model = bert_torch.BertForMaskedLM(config)
    assert model.is_gradient_checkpointing and "gradient_checkpointing" not in config.to_dict()
