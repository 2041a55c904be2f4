"""``BertConfig``: every field of ``transformers``' BertConfig, framework-neutral.

The config is the one object every module receives whole in its constructor.
It reads and writes Hugging Face ``config.json`` in both directions (keys it
does not know are kept and written back) and accepts the original Google
``bert_config.json``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import types
from pathlib import Path
from typing import Any

from ._io import atomic_write_text
from .errors import ConfigError
from .hub import PushToHubMixin
from .limits import check_parameters, limit

__all__ = ["BertConfig", "ACTIVATIONS", "POSITION_EMBEDDING_TYPES", "PROBLEM_TYPES"]

CONFIG_NAME = "config.json"
GOOGLE_CONFIG_NAME = "bert_config.json"

#: Activation names every backend implements. ``gelu`` is the exact erf GELU;
#: ``gelu_new`` / ``gelu_fast`` / ``gelu_pytorch_tanh`` are the tanh approximations.
ACTIVATIONS = (
    "gelu",
    "gelu_python",
    "gelu_new",
    "gelu_fast",
    "gelu_pytorch_tanh",
    "quick_gelu",
    "relu",
    "silu",
    "swish",
    "tanh",
    "sigmoid",
    "linear",
)
POSITION_EMBEDDING_TYPES = ("absolute", "relative_key", "relative_key_query")
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")

# Field -> default, in the order `transformers` lists them. Model-specific first,
# then the generic `PretrainedConfig` fields a BERT user relies on.
_DEFAULTS: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "bos_token_id": None,
    "eos_token_id": None,
    "position_embedding_type": "absolute",
    "use_cache": True,
    "classifier_dropout": None,
    "is_decoder": False,
    "add_cross_attention": False,
    "tie_word_embeddings": True,
    "problem_type": None,
    "architectures": None,
    "output_attentions": False,
    "output_hidden_states": False,
    "return_dict": True,
}
_POSITIVE_INTS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)
_PROBABILITIES = ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout")
_BOOLS = ("use_cache", "is_decoder", "add_cross_attention", "tie_word_embeddings", "output_attentions",
          "output_hidden_states", "return_dict")


def _is_number(value: Any) -> bool:
    """A finite int or float; ``True`` is not a number here, NaN and inf are not finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _non_finite(value: Any, path: str) -> str | None:
    """The path of the first NaN / inf inside ``value`` (JSON cannot hold them), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        found = _non_finite(item, f"{path}[{key!r}]")
        if found:
            return found
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _label_map(value: Any, name: str, key_type: type, value_type: type) -> dict:
    """``id2label`` / ``label2id`` with their JSON string keys converted; a clear error otherwise."""
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be an object, got {type(value).__name__}")
    if len(value) > limit("MAX_LABELS"):
        raise ConfigError(f"{name} holds {len(value)} labels, above the limit of {limit('MAX_LABELS')}; "
                          f"set TRIBERT_MAX_LABELS to raise it")
    try:
        return {key_type(k): value_type(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must map {key_type.__name__} to {value_type.__name__}, got {value!r:.200}") from None
# Keys `transformers` writes that carry no meaning for the model itself.
_DROPPED_ON_READ = ("model_type", "transformers_version")


class BertConfig(PushToHubMixin):
    """Hyper-parameters of a BERT model; the same object drives all three backends.

    Args:
        vocab_size .. layer_norm_eps: the architecture, with ``transformers``' defaults
            (bert-base-uncased).
        hidden_act: one of :data:`ACTIVATIONS`; ``"gelu"`` is the exact erf GELU.
        position_embedding_type: ``"absolute"``, ``"relative_key"`` or ``"relative_key_query"``.
        is_decoder / add_cross_attention: decoder mode (causal mask, KV cache) and
            cross-attention layers.
        num_labels / id2label / label2id / problem_type: classification heads.
        **kwargs: any other key is kept as an attribute and written back by :meth:`to_dict`.

    Raises:
        ConfigError: a field is out of range (the message names the field and value).
    """

    model_type = "bert"

    # ``PretrainedConfig`` attributes that 4.x code reads on any config, with transformers' defaults. They
    # are class-level so a config.json stays as it was; setting one on an instance records and saves it.
    is_encoder_decoder = False
    torchscript = False
    chunk_size_feed_forward = 0
    tie_encoder_decoder = False
    use_bfloat16 = False
    cross_attention_hidden_size = None
    tokenizer_class = None
    prefix = None
    sep_token_id = None
    decoder_start_token_id = None
    task_specific_params = None
    finetuning_task = None
    pruned_heads = types.MappingProxyType({})  # read-only: tribert has no prune_heads
    name_or_path = ""

    @property
    def use_return_dict(self) -> bool:
        """``return_dict and not torchscript``, as ``transformers`` reads it."""
        return bool(self.return_dict) and not self.torchscript

    def __init__(self, **kwargs: Any) -> None:
        id2label = kwargs.pop("id2label", None)
        label2id = kwargs.pop("label2id", None)
        num_labels = kwargs.pop("num_labels", None)
        for key in _DROPPED_ON_READ:
            kwargs.pop(key, None)
        for name, default in _DEFAULTS.items():
            setattr(self, name, kwargs.pop(name, copy.deepcopy(default)))
        # Anything else (chunk_size_feed_forward, dtype, sentence-transformers
        # extras, Google's `directionality`...) is preserved verbatim.
        self._extra_keys: list[str] = []
        for name, value in kwargs.items():
            setattr(self, name, value)  # __setattr__ records it in _extra_keys

        if id2label is not None:
            self.id2label = _label_map(id2label, "id2label", int, str)
        else:
            self.id2label = {0: "LABEL_0", 1: "LABEL_1"}
        regenerated = num_labels is not None and num_labels != len(self.id2label)
        if num_labels is not None:
            self.num_labels = num_labels  # validates; regenerates both maps when the count differs
        if label2id is not None and not regenerated:
            self.label2id = _label_map(label2id, "label2id", str, int)
        elif not regenerated:
            self.label2id = {v: k for k, v in self.id2label.items()}
        self.validate()

    # -- labels -------------------------------------------------------------

    @property
    def num_labels(self) -> int:
        """Number of labels of a classification head (``len(id2label)``)."""
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"num_labels must be a positive int, got {value!r}")
        if value > limit("MAX_LABELS"):
            raise ConfigError(f"num_labels={value} is above the limit of {limit('MAX_LABELS')} labels; "
                              f"set TRIBERT_MAX_LABELS to raise it")
        if value != len(getattr(self, "id2label", {})):
            self.id2label = {i: f"LABEL_{i}" for i in range(value)}
            self.label2id = {v: k for k, v in self.id2label.items()}

    @property
    def head_dim(self) -> int:
        """Per-head size, ``hidden_size // num_attention_heads``."""
        return self.hidden_size // self.num_attention_heads

    # -- validation ---------------------------------------------------------

    def validate(self) -> None:
        """Check every field; raise :class:`ConfigError` naming the first bad one."""
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if value is None and name == "classifier_dropout":
                continue
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")
        if not _is_number(self.initializer_range) or self.initializer_range < 0:
            raise ConfigError(f"initializer_range must be a finite non-negative number, got {self.initializer_range!r}")
        if not _is_number(self.layer_norm_eps) or self.layer_norm_eps <= 0:
            raise ConfigError(f"layer_norm_eps must be a finite positive number, got {self.layer_norm_eps!r}")
        for name in _BOOLS:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(f"hidden_act {self.hidden_act!r} is not supported; choose one of {list(ACTIVATIONS)}")
        if self.position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise ConfigError(
                f"position_embedding_type {self.position_embedding_type!r} is not supported; "
                f"choose one of {list(POSITION_EMBEDDING_TYPES)}"
            )
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise ConfigError(f"problem_type {self.problem_type!r} is not supported; choose one of {list(PROBLEM_TYPES)}")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if value is not None and not all(_is_int(v) for v in (value if isinstance(value, list) else [value])):
                raise ConfigError(f"{name} must be an integer token id (or null), got {value!r}")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(f"pad_token_id ({self.pad_token_id}) must lie in [0, vocab_size={self.vocab_size})")
        if self.architectures is not None and not (
                isinstance(self.architectures, list) and all(isinstance(a, str) for a in self.architectures)):
            raise ConfigError(f"architectures must be a list of class names (or null), got {self.architectures!r}")
        for name in self._extra_keys:
            found = _non_finite(getattr(self, name), name)
            if found:
                raise ConfigError(f"{found} is NaN or infinite, which config.json (JSON) cannot hold")
        check_parameters(self)  # after the field checks: the count needs valid sizes

    # -- dict / json --------------------------------------------------------

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **overrides: Any) -> "BertConfig":
        """Build a config from a ``config.json`` or Google ``bert_config.json`` dict.

        ``overrides`` replace keys of ``config_dict`` (``num_labels=3``).
        """
        if not isinstance(config_dict, dict):
            raise ConfigError(f"config must be a dict, got {type(config_dict).__name__}")
        merged = {**config_dict, **overrides}
        model_type = merged.get("model_type", "bert")
        if model_type != "bert":
            raise ConfigError(f"model_type is {model_type!r}; tribert loads BERT checkpoints (model_type 'bert')")
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` dict: every field, label maps with string keys, kept extras."""
        out: dict[str, Any] = {name: copy.deepcopy(getattr(self, name)) for name in _DEFAULTS}
        out["num_labels"] = self.num_labels
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        out["label2id"] = dict(self.label2id)
        for name in self._extra_keys:
            out[name] = copy.deepcopy(getattr(self, name))
        out["model_type"] = self.model_type
        return out

    def to_json_string(self) -> str:
        """The ``config.json`` text; refuses NaN / inf, which JSON cannot hold."""
        data = self.to_dict()
        found = _non_finite(data, "config")
        if found:
            raise ConfigError(f"{found} is NaN or infinite, which config.json (JSON) cannot hold")
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "BertConfig":
        """Read a ``config.json`` (or Google ``bert_config.json``) file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a JSON object, found {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        except TypeError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def to_json_file(self, path: str | os.PathLike) -> None:
        """Write ``config.json`` atomically (temp file, then rename)."""
        atomic_write_text(path, self.to_json_string())

    # -- directories and the hub ---------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        **overrides: Any,
    ) -> "BertConfig":
        """Load ``config.json`` (or ``bert_config.json``) from a directory, file or hub repo id."""
        from .hub import resolve_file

        path = Path(name_or_path)
        if path.is_file():
            found = path
        else:
            kwargs = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
            found = resolve_file(name_or_path, CONFIG_NAME, required=False, **kwargs)
            if found is None:
                found = resolve_file(name_or_path, GOOGLE_CONFIG_NAME, required=False, **kwargs)
            if found is None:
                raise ConfigError(f"no {CONFIG_NAME} or {GOOGLE_CONFIG_NAME} found in {name_or_path}")
        config = cls.from_json_file(found)
        for key, value in overrides.items():
            setattr(config, key, value)
        config.validate()
        return config

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write ``config.json`` into ``save_directory`` (created if needed); returns its path."""
        directory = Path(save_directory)
        if directory.exists() and not directory.is_dir():
            raise ConfigError(f"save_pretrained needs a directory, but {directory} is a file")
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / CONFIG_NAME
        self.to_json_file(target)
        return target

    # -- python niceties ----------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        # Attributes a user adds later (config.foo = 1) are saved too.
        if not name.startswith("_") and name not in _DEFAULTS and name not in ("id2label", "label2id", "num_labels"):
            extra = self.__dict__.get("_extra_keys")
            if extra is not None and name not in extra:
                extra.append(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BertConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"

    def copy(self, **changes: Any) -> "BertConfig":
        """A validated copy with ``changes`` applied."""
        return type(self).from_dict(self.to_dict(), **changes)
