"""Drift test: every implemented backend exposes bert_torch's class names, forward arguments and parameter paths.

``BACKENDS`` holds one entry per backend that exists; a backend joins by adding
one function returning a :class:`Backend` (``_torch``, ``_tf``, ``_flax``). bert_torch is the reference for parameter paths; the forward arguments are
the transformers 4.x signatures, written out below as the contract.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import pytest

from bert_core import HEADS, BertConfig, Head
from conversion import from_framework_key
from harness import tiny_config_dict

_INPUTS = ["input_ids", "attention_mask", "token_type_ids", "position_ids", "head_mask", "inputs_embeds"]
_ENCODER = ["encoder_hidden_states", "encoder_attention_mask"]
_CACHE = ["past_key_values", "use_cache"]
_FLAGS = ["output_attentions", "output_hidden_states", "return_dict"]

#: The transformers 4.x forward signature of each head, in order (framework extras such as Keras'
#: ``training`` or Flax's ``params`` / ``dropout_rng`` / ``train`` are declared per backend).
FORWARD_ARGS: dict[str, list[str]] = {
    "base": _INPUTS + _ENCODER + _CACHE + _FLAGS,
    "pretraining": _INPUTS + ["labels", "next_sentence_label"] + _FLAGS,
    "causal-lm": _INPUTS + _ENCODER + ["labels"] + _CACHE + _FLAGS,
    "masked-lm": _INPUTS + _ENCODER + ["labels"] + _FLAGS,
    "next-sentence": _INPUTS + ["labels"] + _FLAGS,
    "sequence-classification": _INPUTS + ["labels"] + _FLAGS,
    "multiple-choice": _INPUTS + ["labels"] + _FLAGS,
    "token-classification": _INPUTS + ["labels"] + _FLAGS,
    "question-answering": _INPUTS + ["start_positions", "end_positions"] + _FLAGS,
}

#: Configs whose parameter sets differ: plain; decoder with cross-attention and relative positions.
CONFIGS = {
    "plain": tiny_config_dict(),
    "cross-relative": tiny_config_dict(is_decoder=True, add_cross_attention=True,
                                       position_embedding_type="relative_key_query"),
}


@dataclass
class Backend:
    """How to ask one backend the three questions.

    Attributes:
        module: the imported backend package.
        class_name: the exported class name of a head (prefixes such as ``TF`` / ``Flax``).
        forward_args: a model class -> its forward argument names in signature order, framework extras
            removed, as ``(name, positional)`` pairs (keyword-only arguments are not positional).
        parameter_paths: (model class, config) -> canonical parameter keys (``conversion.from_framework_key``),
            each shared weight once (torch names it at its first use: the word embeddings, ``cls.predictions.bias``).
    """

    module: object
    class_name: Callable[[Head], str]
    forward_args: Callable[[type], list[tuple[str, bool]]]
    parameter_paths: Callable[[type, BertConfig], set[str]]
    cache_by_collection: bool = False


def _torch() -> Backend:
    import bert_torch

    def forward_args(cls: type) -> list[tuple[str, bool]]:
        return _signature(cls.forward, skip=("self",))

    def parameter_paths(cls: type, config: BertConfig) -> set[str]:
        return {from_framework_key(name, "torch")[0] for name, _ in cls(config).named_parameters()}

    return Backend(bert_torch, lambda head: head.class_name, forward_args, parameter_paths)


def _signature(function: Callable, skip: tuple[str, ...]) -> list[tuple[str, bool]]:
    return [(name, p.kind is not p.KEYWORD_ONLY) for name, p in inspect.signature(function).parameters.items()
            if name not in skip and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]  # fmt: skip


def _flax() -> Backend:
    import jax

    import bert_flax

    def forward_args(cls: type) -> list[tuple[str, bool]]:
        return _signature(cls.__call__, skip=("self", "params", "dropout_rng", "train"))

    def parameter_paths(cls: type, config: BertConfig) -> set[str]:
        model = cls(config, seed=0)
        flat = jax.tree_util.tree_flatten_with_path(model.params)[0]
        paths = {".".join(str(getattr(k, "key", k)) for k in path) for path, _ in flat}
        return {from_framework_key(path, "flax")[0] for path in paths}

    # Flax caches through init_cache() and a mutable "cache" collection, as transformers 4.x Flax did,
    # so it has no use_cache switch, and past_key_values only where init_cache exists (the causal LM).
    return Backend(bert_flax, lambda head: head.flax_name, forward_args, parameter_paths, cache_by_collection=True)


def _tf() -> Backend:
    import bert_tf

    def forward_args(cls: type) -> list[tuple[str, bool]]:
        return _signature(cls.call, skip=("self", "training"))

    def parameter_paths(cls: type, config: BertConfig) -> set[str]:
        # Every weight exists once the model is constructed; the paths are the layers' attribute names.
        return {from_framework_key(path, "keras")[0] for path in cls(config).named_weights()}

    return Backend(bert_tf, lambda head: head.tf_class_name, forward_args, parameter_paths)


BACKENDS: dict[str, Callable[[], Backend]] = {
    "torch": _torch,
    "tf": _tf,
    "flax": _flax,
}


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def backend(request) -> Backend:
    return BACKENDS[request.param]()


@pytest.fixture(scope="module")
def reference() -> Backend:
    return _torch()


@pytest.mark.parametrize("head", list(HEADS.values()), ids=lambda h: h.name)
def test_class_names_and_unprefixed_aliases(backend, head):
    cls = getattr(backend.module, backend.class_name(head))
    assert getattr(backend.module, head.class_name) is cls
    assert {backend.class_name(head), head.class_name, head.auto_name} <= set(backend.module.__all__)


@pytest.mark.parametrize("head", list(HEADS.values()), ids=lambda h: h.name)
def test_forward_argument_names(backend, head):
    """The same names; the positional ones in the contract's order (keyword-only ones may come in any order)."""
    cls = getattr(backend.module, backend.class_name(head))
    args = backend.forward_args(cls)
    expected = FORWARD_ARGS[head.name]
    if backend.cache_by_collection:
        expected = [n for n in expected if n != "use_cache" and (n != "past_key_values" or hasattr(cls, "init_cache"))]
    names = [name for name, _ in args]
    positional = [name for name, is_positional in args if is_positional]
    assert sorted(names) == sorted(expected)
    assert [n for n in expected if n in positional] == positional


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
@pytest.mark.parametrize("head", list(HEADS.values()), ids=lambda h: h.name)
def test_parameter_paths(backend, reference, head, config_name):
    config = BertConfig(**CONFIGS[config_name])
    expected = reference.parameter_paths(getattr(reference.module, head.class_name), config)
    assert backend.parameter_paths(getattr(backend.module, backend.class_name(head)), config) == expected


def test_reference_paths_are_the_transformers_state_dict_keys():
    """bert_torch's own paths equal transformers' parameter names, so the reference itself cannot drift."""
    import transformers

    reference = _torch()
    for head in HEADS.values():
        for config in CONFIGS.values():
            hf = getattr(transformers, head.class_name)(transformers.BertConfig(**config))
            hf_names = {name for name, _ in hf.named_parameters()}
            ours = reference.parameter_paths(getattr(reference.module, head.class_name), BertConfig(**config))
            if config.get("position_embedding_type", "absolute") != "absolute":
                # transformers 5.x dropped relative positions. 4.x named the table
                # attention.self.distance_embedding and gave cross-attention none.
                tables = {k for k in ours if "distance_embedding" in k}
                assert tables and all(".attention.self.distance_embedding.weight" in k for k in tables)
                ours -= tables
            assert ours == hf_names, head.class_name
