"""The inference rule of bert_core.unpad in Flax: zeros at masked positions, packed dense layers.

The reference is transformers' PyTorch model on the same random checkpoint: the default Flax call
equals it on real positions and is zero at masked ones; every exception keeps transformers' values
at every position. ``dense_rows`` reads how many token rows the jitted apply's dense layers run on
(the packed bucket, or ``batch * seq``).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest

from harness import compiles_of, max_abs_diff, padded_batch, scaled_tol, tiny_config_dict

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import bert_flax  # noqa: E402
import bert_flax.base  # noqa: E402
import bert_torch  # noqa: E402
from bert_core import BertConfig, ConfigError  # noqa: E402
from bert_core.unpad import padding_read  # noqa: E402

HEADS = {"base": ("BertModel", {}), "token": ("BertForTokenClassification", {"num_labels": 3}),
         "sequence": ("BertForSequenceClassification", {"num_labels": 3})}
MIXED = padded_batch(99, batch=4, seq=11, fully_padded_row=False)  # lengths 11, 8, 5, 3: 39% padding
MASK = MIXED["attention_mask"]
PAD = MASK == 0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """``{head: (transformers model, Flax model)}`` on the same random weights, plus bert_torch's BertModel."""
    out = {}
    for head, (name, overrides) in HEADS.items():
        torch.manual_seed(0)
        hf = getattr(transformers, name)(transformers.BertConfig(**tiny_config_dict(**overrides))).eval()
        directory = tmp_path_factory.mktemp(head)
        hf.save_pretrained(directory)
        out[head] = hf, getattr(bert_flax, "Flax" + name).from_pretrained(directory)
        if head == "base":
            out["torch"] = bert_torch.BertModel.from_pretrained(directory).eval()
    return out


def hf_call(model, batch, **kwargs):
    with torch.no_grad():
        return model(**{k: torch.from_numpy(v) for k, v in batch.items()}, **kwargs)


@contextlib.contextmanager
def dense_rows():
    """Record, per wrapper call, the token rows its dense layers run on (the jitted apply's inputs)."""
    seen = []
    real = bert_flax.base.compiled_apply

    def spy(params, inputs, dropout_rng, cache, packing=None, **kwargs):
        ids = inputs.get("input_ids", inputs.get("inputs_embeds"))
        seen.append(packing[0].shape[0] if packing is not None else math.prod(ids.shape[:2]))
        return real(params, inputs, dropout_rng, cache, packing, **kwargs)

    bert_flax.base.compiled_apply = spy
    try:
        yield seen
    finally:
        bert_flax.base.compiled_apply = real


def twin(model):
    """A second wrapper on the same parameters (its own set_unpadding; the compiled code is shared)."""
    other = type(model)(model.config, _do_init=False)
    other.params = model.params
    return other


@pytest.fixture(scope="module")
def default_base(models):
    """The default Flax call on the mixed batch, with hidden states, and the dense rows it ran."""
    with dense_rows() as rows:
        out = models["base"][1](**MIXED, output_hidden_states=True)
    return out, rows


def grads(model):
    """``jax.grad`` of the real positions' sum of ``last_hidden_state`` w.r.t. ``params``: (grads, output, rows)."""
    def loss(params):
        hidden = model(**MIXED, params=params).last_hidden_state
        return (hidden * MASK[..., None]).sum(), hidden

    with dense_rows() as rows:
        g, hidden = jax.grad(loss, has_aux=True)(model.params)
    return g, hidden, rows


@pytest.fixture(scope="module")
def padded_grads(models):
    return grads(models["base"][1])  # the default: differentiation keeps the padded path


def assert_transformers_everywhere(got, ref):
    """``got`` holds transformers' values at every position, masked ones included."""
    assert np.count_nonzero(np.asarray(ref)[PAD]) > 0
    assert max_abs_diff(got, ref) <= scaled_tol(ref)


def pooler_tol(ref):
    """The pooler's rounding scales with the hidden state its dense layer sums (|h| ~3 here), not with its tanh."""
    return scaled_tol(ref.last_hidden_state, ref.pooler_output)


def test_default_call_packs_equals_transformers_on_real_positions_and_zeros_the_padding(models, default_base):
    hf, flax = models["base"]
    out, rows = default_base
    assert rows == [32]  # 27 real tokens in a bucket of 32, not the 44 padded positions
    ref = hf_call(hf, MIXED, output_hidden_states=True)
    for got, expected in zip((out.last_hidden_state, *out.hidden_states),
                             (ref.last_hidden_state, *ref.hidden_states)):
        assert max_abs_diff(got, expected, MASK) <= scaled_tol(expected)
        assert np.count_nonzero(np.asarray(got)[PAD]) == 0
    assert max_abs_diff(out.pooler_output, ref.pooler_output) <= pooler_tol(ref)
    with padding_read():
        padded = flax(**MIXED, output_hidden_states=True)
    for got, expected in zip(out.hidden_states, padded.hidden_states):
        assert max_abs_diff(got, expected, MASK) <= scaled_tol(expected)
    assert_transformers_everywhere(padded.last_hidden_state, ref.last_hidden_state)


def test_torch_and_flax_default_calls_agree_at_every_position(models, default_base):
    out, _ = default_base
    got = hf_call(models["torch"], MIXED)
    assert max_abs_diff(out.last_hidden_state, got.last_hidden_state) <= scaled_tol(got.last_hidden_state)
    assert max_abs_diff(out.pooler_output, got.pooler_output) <= pooler_tol(got)


@pytest.mark.parametrize("case", ["left-padded", "low padding", "fully padded row"])
def test_batches_that_do_not_pack_are_zeroed_too(models, case):
    batch = {"left-padded": {k: v[:, ::-1].copy() for k, v in MIXED.items()},
             "low padding": padded_batch(99, batch=12, seq=11, fully_padded_row=False, seed=1),
             "fully padded row": padded_batch(99, batch=4, seq=11)}[case]
    if case == "low padding":
        batch["attention_mask"][:-1] = 1  # one row of 3 tokens among 12 rows of 11: 6% padding
    hf, flax = models["base"]
    with dense_rows() as rows:
        out = flax(**batch)
    assert rows == [batch["input_ids"].size]
    ref = hf_call(hf, batch)
    mask = batch["attention_mask"]
    assert max_abs_diff(out.last_hidden_state, ref.last_hidden_state, mask) <= scaled_tol(ref.last_hidden_state)
    assert np.count_nonzero(np.asarray(out.last_hidden_state)[mask == 0]) == 0
    # A row without real tokens is left out: transformers 5.x lets it attend to every key.
    assert max_abs_diff(out.pooler_output, ref.pooler_output, mask.any(1)) <= pooler_tol(ref)


def test_exceptions_keep_transformers_values_at_masked_positions(models, padded_grads):
    hf, flax = models["base"]
    ref = hf_call(hf, MIXED, output_hidden_states=True).last_hidden_state
    opted_out = twin(flax)
    opted_out.set_unpadding(False)

    def in_padding_read():
        with padding_read():
            return flax(**MIXED, output_hidden_states=True).last_hidden_state

    calls = {
        "train": lambda: flax(**MIXED, train=True, output_hidden_states=True).last_hidden_state,  # dropout 0
        "jax.jit": lambda: jax.jit(lambda b: flax(**b, output_hidden_states=True).last_hidden_state)(MIXED),
        "output_attentions": lambda: flax(**MIXED, output_attentions=True).last_hidden_state,
        "padding_read": in_padding_read,
        "set_unpadding(False)": lambda: opted_out(**MIXED, output_hidden_states=True).last_hidden_state,
    }
    assert np.count_nonzero(np.asarray(ref)[PAD]) > 0  # transformers' masked positions are not zeros
    results = {"jax.grad": padded_grads[1:]}
    for name, call in calls.items():
        with dense_rows() as rows:
            results[name] = call(), rows
    for name, (got, rows) in results.items():
        assert rows == [44], name
        assert max_abs_diff(got, ref) <= scaled_tol(ref), name


def test_set_unpadding_true_packs_under_jax_grad_with_the_padded_gradients(models, padded_grads):
    packing = twin(models["base"][1])
    packing.set_unpadding(True)
    packed, _, rows = grads(packing)
    assert rows == [32]
    padded = padded_grads[0]
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(padded), jax.tree_util.tree_leaves(packed)):
        assert max_abs_diff(a, b) <= scaled_tol(a), jax.tree_util.keystr(path)
    packing.set_unpadding(None)
    assert grads(packing)[2] == [44]  # back to the default
    with pytest.raises(ConfigError, match="set_unpadding"):
        packing.set_unpadding("yes")


def test_heads_on_the_packed_path_equal_transformers(models):
    """Token classification's logits at real positions and sequence classification's (pooled) logits."""
    labels = {"token": np.where(MASK == 1, np.arange(11)[None] % 3, -100), "sequence": np.array([0, 2, 1, 1])}
    for head in ("token", "sequence"):
        hf, flax = models[head]
        with dense_rows() as rows:
            got = flax(**MIXED).logits
        assert rows == [32], head
        ref = hf_call(hf, MIXED).logits
        assert max_abs_diff(got, ref, None if head == "sequence" else MASK) <= scaled_tol(ref), head
        # Labels: a per-token head's loss reads the whole sequence (padded path); a pooled head's does not.
        with dense_rows() as rows:
            got = flax(**MIXED, labels=labels[head])
        assert rows == [44 if head == "token" else 32], head
        ref = hf_call(hf, MIXED, labels=torch.from_numpy(labels[head]))
        assert max_abs_diff(got.loss, ref.loss) <= scaled_tol(ref.loss), head
        assert max_abs_diff(got.logits, ref.logits) <= scaled_tol(ref.logits), head


def test_a_stream_of_token_counts_compiles_one_program_per_token_bucket():
    """Per (batch, seq), the packed token count rounds up to a multiple of ceil(batch * seq / 16) rounded
    up to 8: for 4 x 16 batches, to a multiple of 8. Six batches of 18..45 real tokens: three buckets."""
    model = bert_flax.FlaxBertModel(BertConfig(**tiny_config_dict(layer_norm_eps=1e-11)), seed=0)
    stream = {(8, 4, 3, 3): 24, (16, 2, 2, 2): 24, (9, 9, 9, 3): 32, (16, 9, 4, 1): 32, (5, 5, 5, 3): 24,
              (16, 16, 12, 1): 48}  # row lengths: the bucket
    ids = np.random.default_rng(0).integers(1, 99, size=(4, 16))
    with compiles_of("compiled_apply") as compiled:
        for lengths, bucket in stream.items():
            mask = (np.arange(16)[None] < np.array(lengths)[:, None]).astype(np.int64)
            with dense_rows() as rows:
                model(input_ids=ids * mask, attention_mask=mask)
            assert rows == [bucket], lengths
    assert len(compiled) == 3
