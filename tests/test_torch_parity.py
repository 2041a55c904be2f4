"""bert_torch against transformers 5.x PyTorch: every head's outputs, losses, gradients, decoder, real checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

import bert_torch
from bert_core import BertConfig, HEADS
from harness import TOL, max_abs_diff, padded_batch, tiny_config_dict

CLASS_NAMES = [head.class_name for head in HEADS.values()]


def hf_pair(class_name: str, attn_implementation: str = "sdpa", seed: int = 0, **overrides):
    """(ours, HF) of the same class with HF's random weights copied into ours, both in eval mode."""
    cfg = tiny_config_dict(**overrides)
    torch.manual_seed(seed)
    hf_config = transformers.BertConfig(**cfg)
    hf_config._attn_implementation = attn_implementation
    hf = getattr(transformers, class_name)(hf_config).eval()
    ours = getattr(bert_torch, class_name)(BertConfig(**cfg)).eval()
    ours.set_attn_implementation(attn_implementation)
    result = ours.load_state_dict(hf.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return ours, hf


def head_inputs(class_name: str, config: dict, *, seed: int = 0, fully_padded_row: bool = True) -> dict:
    """A right-padded batch shaped for the head (multiple choice gets a choices axis)."""
    batch = padded_batch(config["vocab_size"], batch=4, seq=9, seed=seed, fully_padded_row=fully_padded_row)
    inputs = {k: torch.tensor(v) for k, v in batch.items()}
    if class_name == "BertForMultipleChoice":
        inputs = {k: v.view(2, 2, -1) for k, v in inputs.items()}
    return inputs


def head_labels(class_name: str, inputs: dict, config: dict, problem_type: str | None = None) -> dict:
    """Labels as a user passes them, with -100 on padding where the head ignores positions."""
    g = torch.Generator().manual_seed(1)
    mask = inputs["attention_mask"]
    tokens = torch.where(mask == 1, torch.randint(0, config["vocab_size"], mask.shape, generator=g), -100)
    batch = mask.shape[0]
    num_labels = config.get("num_labels", 2)
    if class_name == "BertForPreTraining":
        return {"labels": tokens, "next_sentence_label": torch.randint(0, 2, (batch,), generator=g)}
    if class_name in ("BertForMaskedLM", "BertLMHeadModel"):
        return {"labels": tokens}
    if class_name == "BertForNextSentencePrediction":
        return {"labels": torch.randint(0, 2, (batch,), generator=g)}
    if class_name == "BertForSequenceClassification":
        if problem_type == "regression":
            return {"labels": torch.randn(batch, generator=g)}
        if problem_type == "multi_label_classification":
            return {"labels": torch.randint(0, 2, (batch, num_labels), generator=g).float()}
        return {"labels": torch.randint(0, num_labels, (batch,), generator=g)}
    if class_name == "BertForMultipleChoice":
        return {"labels": torch.randint(0, mask.shape[1], (batch,), generator=g)}
    if class_name == "BertForTokenClassification":
        return {"labels": torch.where(mask == 1, torch.randint(0, num_labels, mask.shape, generator=g), -100)}
    if class_name == "BertForQuestionAnswering":
        # The last start position lies past the sequence: clamped and ignored, as in transformers.
        return {"start_positions": torch.tensor([0, 3, 5, 40]), "end_positions": torch.tensor([2, 4, 8, 1])}
    return {}


def real_rows(output: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
    """Keep-mask for comparing with HF: real tokens, or rows with at least one real token."""
    mask = attention_mask.reshape(-1, attention_mask.shape[-1]).numpy().astype(bool)
    if output.dim() >= 2 and tuple(output.shape[:2]) == mask.shape:
        return mask
    rows = mask.any(-1)
    return rows.reshape(output.shape[0], -1).all(-1) if output.shape[0] != rows.shape[0] else rows


@pytest.mark.parametrize("class_name", CLASS_NAMES)
def test_every_head_matches_transformers_on_a_padded_batch(class_name):
    overrides = {"is_decoder": True} if class_name == "BertLMHeadModel" else {}
    ours, hf = hf_pair(class_name, **overrides)
    inputs = head_inputs(class_name, tiny_config_dict())
    with torch.no_grad():
        mine, ref = ours(**inputs), hf(**inputs)
    for field in HEADS[next(k for k, h in HEADS.items() if h.class_name == class_name)].logits:
        assert torch.isfinite(mine[field]).all(), f"{field}: the fully padded row must stay finite"
        keep = real_rows(mine[field], inputs["attention_mask"])
        assert max_abs_diff(mine[field], ref[field], keep) <= TOL["float32"], field


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_hidden_states_and_attentions_match_transformers(attn_implementation):
    ours, hf = hf_pair("BertModel", attn_implementation="eager")
    ours.set_attn_implementation(attn_implementation)  # output_attentions switches ours to eager by itself
    inputs = head_inputs("BertModel", tiny_config_dict())
    with torch.no_grad():
        mine = ours(**inputs, output_hidden_states=True, output_attentions=True)
        ref = hf(**inputs, output_hidden_states=True, output_attentions=True)
    mask = inputs["attention_mask"].numpy()
    assert len(mine.hidden_states) == tiny_config_dict()["num_hidden_layers"] + 1
    assert max_abs_diff(mine.hidden_states, ref.hidden_states, mask) <= TOL["float32"]
    assert max_abs_diff(mine.attentions, ref.attentions, mask[:, None, :, None] * mask[:, None, None, :]) <= 1e-6


HEAD_LOSS_CASES = [(name, None) for name in CLASS_NAMES if name != "BertModel"] + [
    ("BertForSequenceClassification", "regression"),
    ("BertForSequenceClassification", "multi_label_classification"),
]


def _loss_pair(class_name: str, problem_type: str | None):
    overrides = {"is_decoder": True} if class_name == "BertLMHeadModel" else {}
    if problem_type == "regression":
        overrides["num_labels"] = 1
    elif class_name in ("BertForSequenceClassification", "BertForTokenClassification"):
        overrides["num_labels"] = 3
    ours, hf = hf_pair(class_name, **overrides)
    config = tiny_config_dict(**overrides)
    inputs = head_inputs(class_name, config, fully_padded_row=False)
    return ours, hf, {**inputs, **head_labels(class_name, inputs, config, problem_type)}


@pytest.mark.parametrize("class_name,problem_type", HEAD_LOSS_CASES)
def test_losses_match_transformers(class_name, problem_type):
    ours, hf, inputs = _loss_pair(class_name, problem_type)
    with torch.no_grad():
        mine, ref = ours(**inputs).loss, hf(**inputs).loss
    assert mine.shape == ref.shape == ()
    assert max_abs_diff(mine, ref) <= TOL["float32"]


@pytest.mark.parametrize("class_name,problem_type", HEAD_LOSS_CASES)
def test_gradients_of_one_backward_pass_match_transformers(class_name, problem_type):
    ours, hf, inputs = _loss_pair(class_name, problem_type)
    ours.train(), hf.train()  # dropout is 0 in the tiny config; train mode exercises the training path
    ours(**inputs).loss.backward()
    hf(**inputs).loss.backward()
    compared = 0
    for name, param in ours.named_parameters():
        ref = hf.get_parameter(name).grad
        if ref is None:
            assert param.grad is None or not param.grad.any(), name
            continue
        assert max_abs_diff(param.grad, ref) <= TOL["float32"], name
        compared += 1
    assert compared >= len(list(ours.parameters())) - 2  # only the unused pooler may lack a gradient


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_decoder_with_cross_attention_matches_transformers(attn_implementation):
    ours, hf = hf_pair("BertLMHeadModel", attn_implementation=attn_implementation, is_decoder=True,
                       add_cross_attention=True)
    inputs = head_inputs("BertLMHeadModel", tiny_config_dict())
    g = torch.Generator().manual_seed(3)
    encoder_hidden_states = torch.randn(4, 6, 32, generator=g)
    encoder_attention_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4, [1] + [0] * 5])
    # use_cache=False: transformers' cache copies keys into contiguous memory, which sends its eager matmul down
    # another BLAS path (~1e-5 on these logits of magnitude ~10); the cached path is tested in test_torch_decoder.
    kw = dict(encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask,
              output_attentions=attn_implementation == "eager", use_cache=False)
    with torch.no_grad():
        mine, ref = ours(**inputs, **kw), hf(**inputs, **kw)
    mask = inputs["attention_mask"].numpy()
    assert max_abs_diff(mine.logits, ref.logits, mask) <= TOL["float32"]
    if attn_implementation == "eager":
        assert len(mine.cross_attentions) == 2
        assert max_abs_diff(mine.cross_attentions, ref.cross_attentions, mask[:, None, :, None]) <= TOL["float32"]
        assert max_abs_diff(mine.attentions, ref.attentions, mask[:, None, :, None]) <= TOL["float32"]


def test_real_all_minilm_checkpoint_matches_transformers(real_model_dir):
    ours = bert_torch.BertModel.from_pretrained(real_model_dir)
    hf = transformers.BertModel.from_pretrained(real_model_dir).eval()
    inputs = {k: torch.tensor(v) for k, v in padded_batch(ours.config.vocab_size, batch=3, seq=16).items()}
    with torch.no_grad():
        mine, ref = ours(**inputs), hf(**inputs)
    mask = inputs["attention_mask"].numpy()
    assert max_abs_diff(mine.last_hidden_state, ref.last_hidden_state, mask) <= TOL["float32"]
    assert max_abs_diff(mine.pooler_output, ref.pooler_output, mask.any(1)) <= TOL["float32"]
    assert torch.isfinite(mine.last_hidden_state).all()


def test_sentence_embeddings_match_sentence_transformers(real_model_dir):
    """The seed's sentence-embedding use: mean pooling over real tokens, L2-normalised (the checkpoint's modules)."""
    from sentence_transformers import SentenceTransformer

    sentences = ["Plants create [MASK] through a process known as photosynthesis.", "A short one.",
                 "The quick brown fox jumps over the lazy dog near the river bank."]
    reference = SentenceTransformer(str(real_model_dir), device="cpu").encode(sentences, convert_to_tensor=True)
    tokenizer = transformers.BertTokenizerFast.from_pretrained(real_model_dir)
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    model = bert_torch.BertModel.from_pretrained(real_model_dir)
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].to(hidden.dtype)
    embeddings = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert max_abs_diff(embeddings, reference) <= TOL["float32"]
