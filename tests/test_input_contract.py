"""The input contract (docs/architecture.md "Inputs"): out-of-range ids raise bert_core.InputError in every
backend, on every call path, naming the argument: never a NaN, a wrap or a clamp.

framework x case x path: the eager call ``model(**inputs)``, TF's ``model.compiled_call(**inputs)`` (XLA),
and the Flax wrapper call (which jits inside). A valid batch passes on every path, so a path that always
raised would fail here too.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from bert_core import BertConfig, InputError
from harness import tiny_config_dict

CONFIG = tiny_config_dict(max_position_embeddings=16)
SEQ = 8


def _batch(seq: int = SEQ) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"input_ids": rng.integers(1, CONFIG["vocab_size"], (2, seq)), "attention_mask": np.ones((2, seq), np.int64),
            "token_type_ids": np.zeros((2, seq), np.int64)}


def _with(name: str, value: int) -> dict[str, np.ndarray]:
    batch = _batch()
    array = batch.get(name, np.broadcast_to(np.arange(SEQ), (2, SEQ))).copy()
    array[1, 3] = value
    return {**batch, name: array}


#: case -> (inputs, what the message must name).
CASES = {
    "input_ids>=vocab_size": (lambda: _with("input_ids", CONFIG["vocab_size"]), "input_ids"),
    "negative input_ids": (lambda: _with("input_ids", -1), "input_ids"),
    "token_type_ids>=type_vocab_size": (lambda: _with("token_type_ids", CONFIG["type_vocab_size"]), "token_type_ids"),
    "position_ids>=max_position_embeddings": (lambda: _with("position_ids", CONFIG["max_position_embeddings"]),
                                              "position_ids"),
    "longer than max_position_embeddings": (lambda: _batch(CONFIG["max_position_embeddings"] + 4),
                                            "max_position_embeddings"),
}


@functools.cache
def model(framework: str):
    """The backend's BertModel built from a config with its constructor."""
    config = BertConfig(**CONFIG)
    if framework == "torch":
        import bert_torch

        return bert_torch.BertModel(config).eval()
    if framework == "tf":
        import bert_tf

        return bert_tf.TFBertModel(config)
    import bert_flax

    return bert_flax.FlaxBertModel(config)


def call(framework: str, path: str, inputs: dict):
    m = model(framework)
    if framework == "torch":
        import torch

        with torch.no_grad():
            return m(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    if framework == "tf":
        return m.compiled_call(**inputs) if path == "compiled" else m(**inputs, training=False)
    return m(**inputs)  # the wrapper validates on the host, then runs its jitted apply


PATHS = [("torch", "eager"), ("tf", "eager"), ("tf", "compiled"), ("flax", "wrapper")]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("framework,path", PATHS, ids=["-".join(p) for p in PATHS])
def test_out_of_range_inputs_raise_input_error_naming_the_argument(framework, path, case):
    make, argument = CASES[case]
    with pytest.raises(InputError, match=argument):
        call(framework, path, make())


@pytest.mark.parametrize("framework,path", PATHS, ids=["-".join(p) for p in PATHS])
def test_a_valid_batch_at_the_edges_of_every_range_runs(framework, path):
    batch = _batch(CONFIG["max_position_embeddings"])
    batch["input_ids"][0, :2] = (0, CONFIG["vocab_size"] - 1)
    batch["token_type_ids"][0, 2] = CONFIG["type_vocab_size"] - 1
    batch["position_ids"] = np.broadcast_to(np.arange(CONFIG["max_position_embeddings"]), batch["input_ids"].shape).copy()
    output = call(framework, path, batch)
    assert np.isfinite(np.asarray(output.last_hidden_state, np.float64)).all()
