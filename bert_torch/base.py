"""``BertPreTrainedModel``: the one base class, holding what loading, saving and tying need.

Everything here is about parameters (initialisation, tying, resizing, dtype,
device); the forward passes live in ``models.py`` and checkpoint I/O in
``loading.py``.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import nn

from bert_core.config import BertConfig
from bert_core.errors import ConfigError
from bert_core.heads import HEADS, Head
from bert_core.hub import PushToHubMixin
from bert_core.unpad import check_unpadding

from .attention import ATTN_IMPLEMENTATIONS, BertSelfAttention
from .heads import BertLMPredictionHead

__all__ = ["BertPreTrainedModel", "init_parameter"]

#: Attribute set on a parameter once it holds its value (initialised, loaded or resized).
_INITIALIZED = "_tribert_initialized"


@torch.no_grad()
def init_parameter(module: nn.Module, leaf: str, config: BertConfig) -> None:
    """Initialise ``module.<leaf>`` as ``transformers`` does.

    Dense weights and embeddings ~ normal(0, ``initializer_range``), the word
    embedding's padding row zero, biases zero, LayerNorm weight one / bias zero.
    """
    param = getattr(module, leaf)
    if isinstance(module, nn.LayerNorm):
        param.fill_(1.0 if leaf == "weight" else 0.0)
    elif leaf == "bias" or isinstance(module, BertLMPredictionHead):
        param.zero_()
    else:
        param.normal_(mean=0.0, std=config.initializer_range)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            param[module.padding_idx].zero_()


class BertPreTrainedModel(PushToHubMixin, nn.Module):
    """Base of the public models: config, initialisation, weight tying, embeddings, I/O.

    Subclasses build their modules in ``__init__(config)`` and call
    :meth:`post_init`. Parameter names equal the canonical checkpoint keys.
    ``head`` is the :class:`bert_core.heads.Head` the class implements.
    """

    base_model_prefix = "bert"
    head: Head = HEADS["base"]
    config_class = BertConfig
    #: The argument that carries the main input, as ``transformers`` names it.
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise ConfigError(f"{type(self).__name__} needs a bert_core.BertConfig, got {type(config).__name__}")
        config.validate()  # a config edited after construction must not reach the allocators
        self.config = config

    def post_init(self) -> None:
        """Initialise the parameters not yet initialised and tie the decoder (call at the end of ``__init__``).

        A config carrying the old ``gradient_checkpointing=True`` flag turns checkpointing on, as ``transformers``
        does (the flag is then dropped from the config, as there).
        """
        self.init_weights()
        if self.config.__dict__.get("gradient_checkpointing"):
            self.gradient_checkpointing_enable()
            delattr(self.config, "gradient_checkpointing")
            self.config._extra_keys.remove("gradient_checkpointing")

    @classmethod
    def can_generate(cls) -> bool:
        """True only for the causal decoder head (``BertLMHeadModel``), as in ``transformers``."""
        return cls.head.loss == "causal_lm"

    # -- initialisation and tying -------------------------------------------

    def init_weights(self) -> None:
        """Initialise like ``transformers`` (``config.initializer_range``) every parameter not yet
        initialised, then tie.

        As in ``transformers``, parameters already set (built by an earlier ``post_init``, loaded by
        ``from_pretrained``, kept or created by ``resize_token_embeddings``) are left as they are, so
        calling it again never overwrites trained weights.
        """
        for key, param in self.named_parameters():
            if not getattr(param, _INITIALIZED, False):
                self._init_key(key)
        self.tie_weights()

    def _mark_initialized(self) -> None:
        """Flag every current parameter as set (see :meth:`init_weights`)."""
        for param in self.parameters():
            setattr(param, _INITIALIZED, True)

    def _init_key(self, key: str) -> None:
        module_path, _, leaf = key.rpartition(".")
        module = self.get_submodule(module_path)
        init_parameter(module, leaf, self.config)
        setattr(getattr(module, leaf), _INITIALIZED, True)

    @property
    def base_model(self) -> nn.Module:
        """The ``BertModel`` inside a head model (or the model itself)."""
        return getattr(self, self.base_model_prefix, self)

    def _lm_head(self) -> BertLMPredictionHead | None:
        cls = getattr(self, "cls", None)
        return getattr(cls, "predictions", None)

    def tied_keys(self) -> dict[str, str]:
        """Parameter key -> the key it shares storage with (what ``save_pretrained`` leaves out).

        ``head.tied_keys``, less the decoder weight when ``config.tie_word_embeddings`` is False.
        """
        words = f"{self.base_model_prefix}.embeddings.word_embeddings.weight"
        return {key: source for key, source in self.head.tied_keys.items()
                if source != words or self.config.tie_word_embeddings}

    @property
    def _tied_weights_keys(self) -> list[str] | None:
        """The keys that share storage with another (what ``transformers`` 4.x lists under this name; PEFT and
        accelerate read it), or None for models without an LM head."""
        return list(self.tied_keys()) or None

    def tie_weights(self) -> None:
        """Share the MLM decoder weight with the word embeddings (``config.tie_word_embeddings``) and its bias."""
        head = self._lm_head()
        if head is None:
            return
        head.decoder.bias = head.bias
        if self.config.tie_word_embeddings:
            head.decoder.weight = self.get_input_embeddings().weight

    def get_input_embeddings(self) -> nn.Embedding:
        """The word embedding table ``(vocab, hidden)``."""
        return self.base_model.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.base_model.embeddings.word_embeddings = value

    def get_output_embeddings(self) -> nn.Linear | None:
        """The MLM decoder ``Linear(hidden, vocab)``, or None for heads without one."""
        head = self._lm_head()
        return head.decoder if head is not None else None

    @torch.no_grad()
    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None,
                                mean_resizing: bool = True) -> nn.Embedding:
        """Grow or shrink the vocabulary; kept rows are copied, the decoder follows.

        Args:
            new_num_tokens: the new vocabulary size (None keeps it, up to padding).
            pad_to_multiple_of: round the size up to a multiple of this.
            mean_resizing: new rows (and new decoder-bias entries) start at the mean of the
                old ones, as ``transformers`` does (it samples around the mean with a
                1e-9-scaled covariance); False draws them from normal(0, initializer_range)
                with zero bias.

        Returns:
            The new input embedding module.
        """
        old = self.get_input_embeddings()
        old_num = old.weight.shape[0]
        new_num = old_num if new_num_tokens is None else new_num_tokens
        if pad_to_multiple_of is not None:
            if not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of <= 0:
                raise ConfigError(f"pad_to_multiple_of must be a positive int, got {pad_to_multiple_of!r}")
            new_num = math.ceil(new_num / pad_to_multiple_of) * pad_to_multiple_of
        if new_num <= 0:
            raise ConfigError(f"new_num_tokens must be positive, got {new_num}")
        keep = min(old_num, new_num)
        padding_idx = old.padding_idx if old.padding_idx is not None and old.padding_idx < new_num else None
        new = nn.Embedding(new_num, old.embedding_dim, padding_idx=padding_idx,
                           device=old.weight.device, dtype=old.weight.dtype)
        new.weight.requires_grad_(old.weight.requires_grad)
        new.weight[:keep] = old.weight[:keep]
        if new_num > old_num:
            if mean_resizing:
                new.weight[old_num:] = old.weight.float().mean(dim=0).to(old.weight.dtype)
            else:
                new.weight[old_num:].normal_(0.0, self.config.initializer_range)
        self.set_input_embeddings(new)

        head = self._lm_head()
        if head is not None:
            old_bias = head.bias
            bias = torch.zeros(new_num, device=old_bias.device, dtype=old_bias.dtype)
            bias[:keep] = old_bias[:keep]
            if new_num > old_num and mean_resizing:
                bias[old_num:] = old_bias.float().mean().to(old_bias.dtype)
            head.bias = nn.Parameter(bias, requires_grad=old_bias.requires_grad)
            decoder = nn.Linear(old.embedding_dim, new_num, device=old.weight.device, dtype=old.weight.dtype)
            if not self.config.tie_word_embeddings:
                decoder.weight[:keep] = head.decoder.weight[:keep]
                if new_num > old_num and mean_resizing:
                    decoder.weight[old_num:] = head.decoder.weight.float().mean(dim=0).to(decoder.weight.dtype)
                elif new_num > old_num:
                    decoder.weight[old_num:].normal_(0.0, self.config.initializer_range)
            head.decoder = decoder
        self.config.vocab_size = new_num
        self.tie_weights()
        self._mark_initialized()  # the rows are set: a later post_init must keep them
        return new

    # -- run-time switches ---------------------------------------------------

    @property
    def attn_implementation(self) -> str:
        """``"sdpa"`` (fused, default) or ``"eager"`` (:func:`bert_torch.attention.eager_attention`)."""
        for module in self.modules():
            if isinstance(module, BertSelfAttention):
                return module.attn_implementation
        return "sdpa"

    def set_attn_implementation(self, name: str) -> None:
        """Choose the attention path of every layer; ``output_attentions`` and ``head_mask`` always use eager."""
        if name not in ATTN_IMPLEMENTATIONS:
            raise ConfigError(f"attn_implementation {name!r} is not supported; "
                              f"choose one of {list(ATTN_IMPLEMENTATIONS)}")
        for module in self.modules():
            if isinstance(module, BertSelfAttention):
                module.attn_implementation = name

    def set_unpadding(self, enabled: bool | None = True) -> None:
        """Choose which calls follow the inference rule of :mod:`bert_core.unpad`.

        Those calls return zeros at masked positions of the encoder outputs and, on CPU, run the dense
        layers on the real tokens only (attention per sequence; :mod:`bert_torch.unpad`). Real
        positions keep their values (to float rounding); losses over padded positions (question
        answering's softmax over the sequence) change.

        Args:
            enabled: ``None`` (the default of a new model): inference calls only, i.e. eval mode, no
                gradient recorded, no labels of a per-token head, no :func:`~bert_core.unpad.padding_read`;
                ``True``: every call where packing is exact, training and CUDA included (leave it off
                when training on a loss over padded positions); ``False``: never (``transformers``'
                values at every position). Compiling, exporting and tracing always keep the padded path.
        """
        check_unpadding(enabled)
        for module in self.modules():
            if hasattr(module, "unpad_inputs"):
                module.unpad_inputs = enabled

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        """Recompute each layer's activations in the backward pass (non-reentrant ``torch.utils.checkpoint``)."""
        self.base_model.encoder.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        self.base_model.encoder.gradient_checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self.base_model.encoder.gradient_checkpointing

    def enable_input_require_grads(self) -> None:
        """Make the input embeddings' output require grad, so adapters or gradient checkpointing on a frozen
        embedding still get gradients (a forward hook, as ``transformers``)."""
        def require_grads(module, inputs, output):
            output.requires_grad_(True)

        self.disable_input_require_grads()
        self._require_grads_hook = self.get_input_embeddings().register_forward_hook(require_grads)

    def disable_input_require_grads(self) -> None:
        """Remove the hook :meth:`enable_input_require_grads` added (no-op without one)."""
        hook = self.__dict__.pop("_require_grads_hook", None)
        if hook is not None:
            hook.remove()

    # -- introspection -------------------------------------------------------

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Number of (distinct) parameters; tied weights count once."""
        embedding_ids = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)}
        return sum(p.numel() for p in self.parameters()
                   if (p.requires_grad or not only_trainable) and not (exclude_embeddings and id(p) in embedding_ids))

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the floating-point parameters."""
        return next(p.dtype for p in self.parameters() if p.is_floating_point())

    @property
    def device(self) -> torch.device:
        """The device of the parameters."""
        return next(self.parameters()).device

    # -- checkpoints ---------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike | None = None, **kwargs: Any):
        """Load a checkpoint; see :func:`bert_torch.loading.from_pretrained` for the arguments.

        ``pretrained_model_name_or_path`` may be passed by keyword, and be None with
        ``config=`` and ``state_dict=`` (as ``transformers``).
        """
        from .loading import from_pretrained

        return from_pretrained(cls, pretrained_model_name_or_path, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Write ``config.json`` + canonical weights; see :func:`bert_torch.loading.save_pretrained`."""
        from .loading import save_pretrained

        save_pretrained(self, save_directory, **kwargs)
