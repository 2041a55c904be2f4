"""Drift test: the three backends hold the contract of docs/architecture.md and bert_torch's public names.

Public names: class names, forward arguments and parameter paths. The contract: the same files (modulo the
documented framework-only extras), the same layer classes in the same files, the contract table's call
arguments for each layer, and the attention switch on every model.

``BACKENDS`` holds one entry per backend that exists; a backend joins by adding
one function returning a :class:`Backend` (``_torch``, ``_tf``, ``_flax``). bert_torch is the reference for parameter paths; the forward arguments are
the transformers 4.x signatures, written out below as the contract.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
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


# -- the contract of docs/architecture.md: files, layer classes per file, layer call arguments, the switch --

ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
PACKAGES = {"torch": "bert_torch", "tf": "bert_tf", "flax": "bert_flax"}
#: Arguments that are each framework's own run-time switch, not the contract's (docs/architecture.md "Layers").
SWITCHES = {"self", "training", "deterministic", "init_cache", "kwargs", "args"}


def _section(title: str) -> str:
    text = ARCHITECTURE.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def contract_files() -> dict[str, list[str]]:
    """``{file: classes and functions it holds}`` from the "Files" table (``models.py``: also the eight heads;
    ``auto.py``: every ``AutoModel*``), leaving out the prose's other code words (``hidden_act``, ``conversion``)."""
    rows = re.findall(r"^\| `(\w+\.py)` \| (.*) \|$", _section("Files"), re.M)
    held = {name: [n for n in re.findall(r"`(\w+)`", holds) if n[0].isupper() or n.endswith("attention")
                   or n == "make_attention_bias"] for name, holds in rows}
    held["models.py"] += [h.class_name for h in HEADS.values() if h.class_name not in held["models.py"]]
    held["auto.py"] += [h.auto_name for h in HEADS.values() if h.auto_name not in held["auto.py"]]
    return held


def framework_extras() -> dict[str, set[str]]:
    """Each framework's documented extra files, from "Framework-only extras live in ...: torch `a.py` ...; TF ..."."""
    sentence = re.search(r"Framework-only\s+extras[^:]*:(.*?)\.\s*(\n\n|$)", _section("Files"), re.S).group(1)
    extras = {}
    for part in sentence.split(";"):
        framework = {"torch": "torch", "TF": "tf", "Flax": "flax"}[part.split()[0]]
        extras[framework] = set(re.findall(r"`(\w+\.py)`", part))
    return extras


def contract_layers() -> dict[str, list[str]]:
    """``{layer class: call argument names}`` from the "Layers" table (``same`` repeats the row above)."""
    layers, previous = {}, []
    for name, call in re.findall(r"^\| `(\w+)\([^`]*\)` \| ([^|]*) \|", _section("Layers"), re.M):
        previous = previous if call.strip() == "same" else re.findall(r"\w+", call.split("`")[1])
        layers[name] = previous
    return layers


def canonical_name(name: str) -> str:
    """A class name without its framework: ``TFBertLayer``/``FlaxBertLayer`` -> ``BertLayer``, ``TFAutoModel`` ->
    ``AutoModel``; Flax's linen
    ``...Module`` -> the class it implements (``FlaxBertModule`` -> ``BertModel``)."""
    for prefix in ("TF", "Flax"):
        if name.startswith((prefix + "Bert", prefix + "Auto")):
            name = name[len(prefix):]
    name = name.removesuffix("Module") if name != "Module" else name
    return {"Bert": "BertModel", "BertForCausalLM": "BertLMHeadModel"}.get(name, name)


def backend_files(framework: str) -> set[str]:
    package = importlib.import_module(PACKAGES[framework])
    return {p.name for p in Path(package.__file__).parent.glob("*.py")} - {"__init__.py"}


def classes_in(framework: str, file: str) -> dict[str, type]:
    """Public classes defined in ``file`` of a backend, by canonical name."""
    module = importlib.import_module(f"{PACKAGES[framework]}.{file.removesuffix('.py')}")
    return {canonical_name(name): obj for name, obj in vars(module).items()
            if inspect.isclass(obj) and obj.__module__ == module.__name__ and not name.startswith("_")}


@pytest.mark.parametrize("framework", sorted(PACKAGES))
def test_the_same_files_as_the_contract(framework):
    expected = set(contract_files()) | framework_extras()[framework]
    files = backend_files(framework)
    assert files == expected, (f"{PACKAGES[framework]}: missing {sorted(expected - files)}, "
                               f"undocumented {sorted(files - expected)}")


@pytest.mark.parametrize("file", sorted(contract_files()))
@pytest.mark.parametrize("framework", sorted(PACKAGES))
def test_each_file_holds_what_the_contract_says_and_the_same_classes_as_torch(framework, file):
    if file not in backend_files(framework):
        pytest.fail(f"{PACKAGES[framework]} has no {file}")
    ours = classes_in(framework, file)
    module = importlib.import_module(f"{PACKAGES[framework]}.{file.removesuffix('.py')}")
    names = set(ours) | {canonical_name(n) for n in vars(module)}
    missing = [n for n in contract_files()[file] if n not in names]
    assert not missing, f"{PACKAGES[framework]}/{file} lacks {missing}"
    if file in backend_files("torch"):
        reference = set(classes_in("torch", file))
        assert set(ours) == reference, (f"{file}: only here {sorted(set(ours) - reference)}, "
                                        f"only in bert_torch {sorted(reference - set(ours))}")


def _call_args(framework: str, cls: type) -> list[str]:
    function = {"torch": "forward", "tf": "call", "flax": "__call__"}[framework]
    params = inspect.signature(getattr(cls, function)).parameters.values()
    return [p.name for p in params if p.name not in SWITCHES and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


@pytest.mark.parametrize("layer", sorted(contract_layers()))
@pytest.mark.parametrize("framework", sorted(PACKAGES))
def test_layer_call_arguments_are_the_contract(framework, layer):
    file = next(f for f, names in contract_files().items() if layer in names)
    cls = classes_in(framework, file).get(layer) if file in backend_files(framework) else None
    assert cls is not None, f"{PACKAGES[framework]}/{file} has no {layer}"
    args, expected = _call_args(framework, cls), contract_layers()[layer]
    if layer == "BertLMPredictionHead" and framework != "torch":  # TF and Flax also take the embedding table
        args = [a for a in args if "embedding" not in a]
    assert args == expected, f"{cls.__name__}: {args} != {expected}"


@pytest.mark.parametrize("head", list(HEADS.values()), ids=lambda h: h.name)
def test_every_model_has_the_attention_switch(backend, head):
    cls = getattr(backend.module, backend.class_name(head))
    assert callable(getattr(cls, "set_attn_implementation", None)), f"{cls.__name__}.set_attn_implementation"
    assert hasattr(cls, "attn_implementation"), f"{cls.__name__}.attn_implementation"
