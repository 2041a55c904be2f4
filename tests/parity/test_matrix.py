"""The parity matrix: framework x head x config variant x call option, against an independent reference.

One test function; each case loads the checkpoint with the backend's public ``from_pretrained`` (built
once per framework, variant, head and dtype), runs one call option and compares every output field on
real positions with :func:`harness.assert_close`. References: transformers 5.x PyTorch (random weights
saved by transformers itself), or transformers 4.57.6's fixtures (``tests/fixtures/relative``) for what
5.x dropped: relative position embeddings and ``head_mask``. bfloat16 is bounded against the backend's own
float32 by the dtype's rounding (``TOL["bfloat16"]``). Which cells exist is data (``VARIANTS``): an axis
runs on the heads where it matters, every head appears, and every cell runs in all three backends.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pytest

from bert_core import ACTIVATIONS, HEADS
from bert_core.heads import TIED_KEYS
from harness import assert_close, tiny_config_dict, to_numpy
from matrix_backends import BACKENDS, set_attn
from matrix_reference import (SCALE, fixture_arrays, fixture_checkpoint, fixture_expected, fixture_inputs,
                              fixture_labels, hf5_checkpoint)

FRAMEWORKS = ("torch", "tf", "flax")
ALL = tuple(HEADS)
PREFIX = 6  # decoder tokens run in one call before the cached one-token steps
#: Per-head config the head needs in every variant.
HEAD_CONFIG = {"causal-lm": {"is_decoder": True}, "sequence-classification": {"num_labels": 3},
               "token-classification": {"num_labels": 5}}
#: The plain call options: forward; with labels, the loss, logits and the gradient of the loss w.r.t. every
#: weight ("grad"; "loss" without gradients only where the reference has none); every hidden state and attention.
BASIC = ("forward", "loss", "grad", "outputs")
#: "mixed_lengths": a plain call on a padded batch with no empty row (half of it padding), which torch's
#: default inference call runs on the real tokens only (bert_torch.unpad).
CALL_OPTIONS = BASIC + ("position_ids", "inputs_embeds", "return_dict", "eager", "sdpa", "bfloat16", "cache",
                        "mixed_lengths")
#: Options that act in the shared encoder run on a few heads that read it differently (pooled, per token,
#: through the choices axis, through the LM decoder), not on all nine: each Flax cell is a compile.
OPTION_HEADS = {
    "outputs": ("base", "multiple-choice", "masked-lm", "question-answering"),
    "position_ids": ("base", "multiple-choice", "causal-lm"),
    "inputs_embeds": ("base", "multiple-choice", "masked-lm"),
    "eager": ("base", "multiple-choice", "pretraining", "causal-lm"),
    "sdpa": ("base", "multiple-choice", "pretraining", "causal-lm"),
    "bfloat16": ("base", "masked-lm", "sequence-classification", "question-answering"),
    "mixed_lengths": tuple(head for head in ALL if not HEADS[head].decoder),
}


@dataclass(frozen=True)
class Variant:
    """A config variant: its overrides, the heads it runs on, the call options it runs, its reference."""

    name: str
    config: tuple = ()
    heads: tuple = ALL
    options: tuple = BASIC
    fixture: str = ""  # a 4.57.6 position type: the reference is the fixture, not transformers 5.x


GRAD_ACTS = ("gelu_new", "relu", "silu", "quick_gelu")
RELATIVE_HEADS = ("base", "masked-lm", "sequence-classification", "causal-lm")
VARIANTS = {v.name: v for v in (
    Variant("default", options=CALL_OPTIONS),
    Variant("relative_key", heads=RELATIVE_HEADS, options=BASIC + ("eager", "sdpa", "cache", "head_mask"),
            fixture="relative_key"),
    Variant("relative_key_query", heads=RELATIVE_HEADS, options=BASIC + ("eager", "sdpa", "cache", "head_mask"),
            fixture="relative_key_query"),
    Variant("head_mask", heads=("base",), options=("head_mask",), fixture="absolute"),
    Variant("untied", (("tie_word_embeddings", False),), ("pretraining", "masked-lm", "causal-lm"),
            BASIC + ("cache",)),
    # Each activation: the base model's outputs; a head's logits, loss and gradients through a few of them
    # (the derivative is the framework's autodiff of the same function: one of each family is enough).
    *(Variant(f"hidden_act={act}", (("hidden_act", act),), ("base", "token-classification") if act in GRAD_ACTS
              else ("base",), ("forward", "grad")) for act in ACTIVATIONS if act != "gelu"),
    # 1e-3, not 1e-5: on these O(0.1) activations a backend ignoring a 1e-5 eps moves outputs by ~1e-5 only.
    Variant("layer_norm_eps", (("layer_norm_eps", 1e-3),), ("base", "question-answering"), ("forward", "grad")),
    Variant("pad_token_id", (("pad_token_id", 5),), ("base", "masked-lm"), ("forward", "loss")),
    Variant("type_vocab_size=1", (("type_vocab_size", 1),), ("base", "next-sentence"), ("forward", "loss")),
    Variant("decoder+cross-attention", (("is_decoder", True), ("add_cross_attention", True)), ("base", "causal-lm"),
            BASIC + ("cache", "eager", "sdpa")),
    Variant("regression", (("num_labels", 1),), ("sequence-classification",), ("forward", "loss", "grad")),
    Variant("multi_label", (("num_labels", 3), ("problem_type", "multi_label_classification")),
            ("sequence-classification",), ("forward", "loss", "grad")),
    Variant("single_label", (("num_labels", 4), ("problem_type", "single_label_classification")),
            ("sequence-classification",), ("forward", "loss", "grad")),
)}


def config_of(variant: Variant, head: str) -> dict:
    return tiny_config_dict(initializer_range=SCALE, **{**HEAD_CONFIG.get(head, {}), **dict(variant.config)})


def applies(variant: Variant, head: str, option: str) -> bool:
    """Whether a call option means something for this head in this variant (and has a reference)."""
    config = config_of(variant, head)
    if option in OPTION_HEADS and head not in OPTION_HEADS[option]:
        return False
    if variant.name.startswith("hidden_act=") and option == "forward" and head != "base":
        return False
    has_grads = not variant.fixture or head in ("sequence-classification", "causal-lm")
    if option in ("loss", "grad"):
        return bool(HEADS[head].labels) and (has_grads if option == "grad" else not has_grads or "grad" not in variant.options)
    if option == "cache":
        return config.get("is_decoder", False) and (not variant.fixture or head == "causal-lm")
    if option == "outputs" and variant.fixture:
        return head == "base"
    return option != "head_mask" or head == "base"


CASES = [pytest.param(f, v.name, h, o, id=f"{f}-{v.name}-{h}-{o}")
         for v in VARIANTS.values() for h in v.heads for o in v.options if applies(v, h, o) for f in FRAMEWORKS]


# -- inputs ------------------------------------------------------------------------------------------


def make_inputs(variant: Variant, head: str, *, for_loss: bool = False) -> dict[str, np.ndarray]:
    """A right-padded batch of 4 x 8: lengths 8, 5, 1, 0 (a fully padded row), or 8, 5, 2, 1 for losses
    (a fully padded row's pooled logits are implementation-defined in the reference, and enter the loss;
    mixed_lengths too: with no empty row torch packs the batch);
    decoders 8, 8, 7, 3 with a cross-attention memory; multiple choice as (2 rows, 2 choices, 8)."""
    if variant.fixture:
        return fixture_inputs(head)
    config = config_of(variant, head)
    rng = np.random.default_rng(7)
    decoder = config.get("add_cross_attention", False)
    lengths = np.array([8, 8, 7, 3] if decoder else [8, 5, 2, 1] if for_loss else [8, 5, 1, 0])
    mask = (np.arange(8)[None] < lengths[:, None]).astype(np.int64)
    ids = np.where(mask == 1, rng.integers(1, config["vocab_size"], (4, 8)), config.get("pad_token_id", 0))
    types = ((np.arange(8)[None] >= 3) & (mask == 1) & (config["type_vocab_size"] > 1)).astype(np.int64)
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    if decoder:
        batch["encoder_hidden_states"] = rng.standard_normal((4, 5, config["hidden_size"])).astype(np.float32)
        batch["encoder_attention_mask"] = (np.arange(5)[None] < np.array([5, 3, 1, 4])[:, None]).astype(np.int64)
    if HEADS[head].choices:
        batch = {k: v.reshape(2, 2, 8) for k, v in batch.items()}
    return batch


def make_labels(variant: Variant, head: str, batch: dict) -> dict[str, np.ndarray]:
    """Labels as users pass them: -100 on padding, QA positions past the end, every problem type."""
    if variant.fixture:
        return fixture_labels(head)
    config, rng = config_of(variant, head), np.random.default_rng(3)
    mask, n = batch["attention_mask"], batch["attention_mask"].shape[0]
    tokens = np.where(mask == 1, rng.integers(0, config["vocab_size"], mask.shape), -100)
    num_labels = config.get("num_labels", 2)
    if head in ("masked-lm", "causal-lm"):
        return {"labels": tokens}
    if head == "pretraining":
        return {"labels": tokens, "next_sentence_label": rng.integers(0, 2, n)}
    if head == "sequence-classification" and config.get("problem_type") == "multi_label_classification":
        return {"labels": rng.integers(0, 2, (n, num_labels)).astype(np.float32)}
    if head == "sequence-classification" and num_labels == 1:
        return {"labels": rng.standard_normal(n).astype(np.float32)}
    if head == "token-classification":
        return {"labels": np.where(mask == 1, rng.integers(0, num_labels, mask.shape), -100)}
    if head == "question-answering":  # 40 lies past the sequence: clamped and ignored, as transformers does
        return {"start_positions": np.array([0, 3, 5, 40]), "end_positions": np.array([2, 40, 7, 1])}
    return {"labels": rng.integers(0, mask.shape[1] if HEADS[head].choices else num_labels, n)}


def call_of(variant: Variant, head: str, option: str) -> tuple[dict, dict, tuple[str, ...]]:
    """(inputs, flags, fields) of a call option; fields are output names, ``name/i`` inside tuples."""
    fields = HEADS[head].logits
    batch = make_inputs(variant, head, for_loss=option in ("loss", "grad", "mixed_lengths"))
    if option == "loss":
        return {**batch, **make_labels(variant, head, batch)}, {}, ("loss",) + fields
    if option == "grad":  # the loss and logits of the forward the gradients come from
        return {**batch, **make_labels(variant, head, batch)}, {}, fields
    if option == "outputs":
        config = config_of(variant, head)
        layers = range(config["num_hidden_layers"])
        names = (*(f"hidden_states/{i}" for i in range(len(layers) + 1)), *(f"attentions/{i}" for i in layers),
                 *(f"cross_attentions/{i}" for i in layers if config.get("add_cross_attention")))
        return batch, {"output_hidden_states": True, "output_attentions": True}, fields + names
    if option == "position_ids":  # positions that are not 0..seq-1, the same in every row
        return {**batch, "position_ids": np.broadcast_to(np.arange(8)[::-1] + 3, batch["input_ids"].shape).copy()}, {}, fields
    if option == "inputs_embeds":
        return batch, {}, fields  # the embeddings are looked up per model (see run)
    if option == "head_mask":
        layers = 2
        return ({**batch, "head_mask": fixture_arrays()["inputs/head_mask"]}, {"output_attentions": True},
                ("head_mask/last_hidden_state",) + tuple(f"head_mask/attentions/{i}" for i in range(layers)))
    return batch, {}, fields


# -- running -----------------------------------------------------------------------------------------


@functools.cache
def backend(framework: str):
    return BACKENDS[framework]()


def checkpoint(variant: Variant, head: str):
    if variant.fixture:
        return fixture_checkpoint(variant.fixture, head)
    return hf5_checkpoint(tuple(sorted(config_of(variant, head).items())), head)[1]


@functools.cache
def model(framework: str, variant_name: str, head: str, dtype: str = "float32"):
    """The backend's model of ``head``, loaded once with ``from_pretrained`` and shared by every option."""
    return backend(framework).load(head, checkpoint(VARIANTS[variant_name], head), dtype)


def pick(output, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``{field: array}`` from an output object (or its tuple, when fields are tuple positions)."""
    picked = {}
    for field in fields:
        name, _, index = field.removeprefix("head_mask/").partition("/")
        value = output[name] if isinstance(output, tuple) else getattr(output, name)
        picked[field] = to_numpy(value[int(index)] if index else value)
    return picked


def word_embeddings(variant: Variant, head: str) -> np.ndarray:
    from conversion import SafetensorsFile

    directory = checkpoint(variant, head)
    table = {k.removeprefix("bert."): v for k, v in SafetensorsFile(directory / "model.safetensors").items()}
    return np.asarray(table["embeddings.word_embeddings.weight"], np.float32)


def run(framework: str, variant: Variant, head: str, option: str) -> dict[str, np.ndarray]:
    """The backend's outputs of one cell."""
    impl, (batch, flags, fields) = backend(framework), call_of(variant, head, option)
    m = model(framework, variant.name, head, "bfloat16" if option == "bfloat16" else "float32")
    if option == "grad":
        output, grads = impl.loss_grads(m, batch)
        return {**pick(output, ("loss",) + fields), **{f"grad/{k}": v for k, v in grads.items()}}
    if option == "cache":
        return {"decode": impl.decode(m, batch, PREFIX)}
    if option == "inputs_embeds":
        batch = {**{k: v for k, v in batch.items() if k != "input_ids"},
                 "inputs_embeds": word_embeddings(variant, head)[batch["input_ids"]]}
    if option in ("eager", "sdpa"):
        before = getattr(m, "attn_implementation", "sdpa")
        set_attn(m, option)
        try:
            return pick(impl.call(m, batch, **flags), fields)
        finally:
            set_attn(m, before)
    if option == "return_dict":
        output = impl.call(m, batch, return_dict=False)
        assert isinstance(output, tuple), f"return_dict=False gave {type(output).__name__}"
        return {f: to_numpy(output[i]) for i, f in enumerate(fields)}
    return pick(impl.call(m, batch, **flags), fields)


# -- references --------------------------------------------------------------------------------------


@functools.cache
def expected(variant_name: str, head: str, option: str) -> dict[str, np.ndarray]:
    """The reference's outputs of one cell (float64 numpy)."""
    variant = VARIANTS[variant_name]
    batch, flags, fields = call_of(variant, head, option)
    if variant.fixture:
        ptype, arrays = variant.fixture, fixture_arrays()
        if option == "grad":
            grads = fixture_expected(ptype, head, "grad/")
            return {**{f: arrays[f"{ptype}/{head}/{f}"].astype(np.float64) for f in ("loss",) + fields},
                    **{f"grad/{k}": v for k, v in grads.items()}}
        if option == "cache":
            return {"decode": arrays[f"{ptype}/{head}/cached_logits"]}
        return {f: arrays[f"{ptype}/{head}/{f}"].astype(np.float64) for f in fields}
    import torch

    hf = hf5_checkpoint(tuple(sorted(config_of(variant, head).items())), head)[0]
    tensors = {k: torch.from_numpy(v) for k, v in batch.items()}
    if option == "grad":
        hf.zero_grad()
        output = hf(**tensors)
        output.loss.backward()
        return {**pick(output, ("loss",) + fields),
                **{f"grad/{k}": to_numpy(p.grad) for k, p in hf.named_parameters() if p.grad is not None}}
    with torch.no_grad():
        if option == "cache":  # cached decoding must give the full forward's outputs
            output = hf(**tensors, use_cache=False)
            return {"decode": to_numpy(getattr(output, "logits", None) if head != "base" else output.last_hidden_state)}
        if option == "inputs_embeds":
            inputs = {k: v for k, v in tensors.items() if k != "input_ids"}
            return pick(hf(**inputs, inputs_embeds=torch.from_numpy(word_embeddings(variant, head)[batch["input_ids"]])),
                        fields)
        return pick(hf(**tensors, **flags), fields)


def keep_mask(field: str, value: np.ndarray, batch: dict) -> np.ndarray | None:
    """Real positions of an output: tokens with attention_mask 1 for per-token outputs (the query rows of
    attention probabilities), sequences with a real token for pooled outputs, everything for the rest.
    Multiple choice's encoder outputs are (rows x choices, seq): they take the flattened mask."""
    mask = batch["attention_mask"].astype(bool)
    flat = mask.reshape(-1, mask.shape[-1])
    if field.startswith("grad/") or field == "loss":
        return None
    if "attentions/" in field:  # (batch, heads, query, key): real query rows
        return np.broadcast_to(flat[:, None, :], value.shape[:3])
    for m in (mask, flat, mask.any(-1)):
        if value.shape[:m.ndim] == m.shape:
            return m
    raise AssertionError(f"{field}: no mask rule for shape {value.shape} with mask {mask.shape}")


def one_bias(grads: dict) -> dict:
    """The decoder bias is cls.predictions.bias (bert_core.heads.TIED_KEYS); a side may list it under either
    name, or both: keep it once, under the head's name."""
    grads = dict(grads)
    decoder_bias = grads.pop("grad/cls.predictions.decoder.bias", None)
    if decoder_bias is not None:
        # An untied decoder owns its bias (transformers 5.x trains decoder.bias, not cls.predictions.bias).
        grads["grad/cls.predictions.bias"] = decoder_bias
    return grads


@pytest.mark.parametrize("framework,variant_name,head,option", CASES)
def test_matrix(framework, variant_name, head, option):
    """One cell: the backend's outputs equal the reference's on real positions (float32), or its own float32
    outputs within bfloat16's rounding; gradients of the loss equal the reference's for every weight."""
    variant = VARIANTS[variant_name]
    batch, _, _ = call_of(variant, head, option)
    dtype = "bfloat16" if option == "bfloat16" else "float32"
    ours = run(framework, variant, head, option)
    theirs = run(framework, variant, head, "forward") if option == "bfloat16" else expected(variant_name, head, option)
    if option == "grad":
        ours, theirs = one_bias(ours), one_bias(theirs)
        missing = sorted(set(theirs) - set(ours))
        assert not missing, f"no gradient for {missing}"
        extra = [k for k in sorted(set(ours) - set(theirs)) if k.removeprefix("grad/") not in TIED_KEYS]
        # Weights the reference has no gradient for (the pooler of a head that does not read it) get zeros.
        assert all(not ours[k].any() for k in extra if not variant.fixture), f"gradients the reference lacks: {extra}"
        ours = {k: ours[k] for k in theirs}
    assert sorted(ours) == sorted(theirs), f"fields {sorted(ours)} vs {sorted(theirs)}"
    failures, worst = [], {}
    for field in theirs:
        try:
            worst[field] = assert_close(ours[field], theirs[field], dtype, mask=keep_mask(field, theirs[field], batch))
        except AssertionError as err:
            failures.append(f"{field}: {err}")
    assert not failures, f"{len(failures)} of {len(theirs)} fields differ:\n" + "\n".join(failures[:8])
