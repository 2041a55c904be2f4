"""The head registry: one row per BERT head, shared by the backends, Auto classes and the CLI.

A head's *name* (``"masked-lm"``) is what users type on the command line; its
``class_name`` is the unprefixed class every backend exports (``BertForMaskedLM``);
``bert_tf`` prefixes ``TF`` and ``bert_flax`` prefixes ``Flax`` (with
``FlaxBertForCausalLM`` where the others say ``BertLMHeadModel``).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import outputs as _out
from .errors import ConfigError

__all__ = ["Head", "HEADS", "get_head", "head_for_config", "head_for_class_name"]


@dataclass(frozen=True)
class Head:
    """One BERT head.

    Attributes:
        name: CLI / registry name.
        class_name: unprefixed model class name exported by every backend.
        auto_name: the ``AutoModelFor*`` class that picks it.
        output: the output class it returns.
        logits: the output fields a parity check compares.
        flax_class_name: the Flax wrapper's name (differs for the causal LM).
    """

    name: str
    class_name: str
    auto_name: str
    output: type
    logits: tuple[str, ...]
    flax_class_name: str = ""

    @property
    def tf_class_name(self) -> str:
        return "TF" + self.class_name

    @property
    def flax_name(self) -> str:
        return self.flax_class_name or "Flax" + self.class_name


HEADS: dict[str, Head] = {
    h.name: h
    for h in (
        Head("base", "BertModel", "AutoModel", _out.BaseModelOutputWithPoolingAndCrossAttentions,
             ("last_hidden_state", "pooler_output")),
        Head("pretraining", "BertForPreTraining", "AutoModelForPreTraining", _out.BertForPreTrainingOutput,
             ("prediction_logits", "seq_relationship_logits")),
        Head("causal-lm", "BertLMHeadModel", "AutoModelForCausalLM", _out.CausalLMOutputWithCrossAttentions,
             ("logits",), flax_class_name="FlaxBertForCausalLM"),
        Head("masked-lm", "BertForMaskedLM", "AutoModelForMaskedLM", _out.MaskedLMOutput, ("logits",)),
        Head("next-sentence", "BertForNextSentencePrediction", "AutoModelForNextSentencePrediction",
             _out.NextSentencePredictorOutput, ("logits",)),
        Head("sequence-classification", "BertForSequenceClassification", "AutoModelForSequenceClassification",
             _out.SequenceClassifierOutput, ("logits",)),
        Head("multiple-choice", "BertForMultipleChoice", "AutoModelForMultipleChoice",
             _out.MultipleChoiceModelOutput, ("logits",)),
        Head("token-classification", "BertForTokenClassification", "AutoModelForTokenClassification",
             _out.TokenClassifierOutput, ("logits",)),
        Head("question-answering", "BertForQuestionAnswering", "AutoModelForQuestionAnswering",
             _out.QuestionAnsweringModelOutput, ("start_logits", "end_logits")),
    )
}


def get_head(name: str) -> Head:
    """Look a head up by registry name; :class:`ConfigError` lists the valid names."""
    try:
        return HEADS[name]
    except KeyError:
        raise ConfigError(f"unknown head {name!r}; choose one of {sorted(HEADS)}") from None


def head_for_class_name(class_name: str) -> Head | None:
    """The head whose class is ``class_name`` in any framework (``TFBertForMaskedLM`` too)."""
    for head in HEADS.values():
        if class_name in (head.class_name, head.tf_class_name, head.flax_name, "Flax" + head.class_name):
            return head
    return None


def head_for_config(config) -> Head:
    """The head named by ``config.architectures[0]``, or the base model if none is named."""
    for arch in config.architectures or ():
        head = head_for_class_name(arch)
        if head is not None:
            return head
    return HEADS["base"]
