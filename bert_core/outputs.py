"""Model output classes, defined once and used by all three backends.

Field names and order are those of ``transformers`` 4.x, so ``out.logits``,
``out["logits"]``, ``out[0]`` and ``out.to_tuple()`` behave as users expect:
indexing by position and iteration skip fields that are ``None``.
``bert_flax`` registers these classes as JAX pytrees and ``bert_torch`` as
torch pytrees; this module imports no framework.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

__all__ = [
    "ModelOutput",
    "BaseModelOutputWithPastAndCrossAttentions",
    "BaseModelOutputWithPoolingAndCrossAttentions",
    "BertForPreTrainingOutput",
    "CausalLMOutputWithCrossAttentions",
    "MaskedLMOutput",
    "NextSentencePredictorOutput",
    "SequenceClassifierOutput",
    "MultipleChoiceModelOutput",
    "TokenClassifierOutput",
    "QuestionAnsweringModelOutput",
    "OUTPUT_CLASSES",
]


@dataclass
class ModelOutput:
    """Base of every output: a dataclass that also reads like a mapping and a tuple."""

    def keys(self) -> list[str]:
        """Names of the fields that are set (not ``None``), in declaration order."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def values(self) -> list[Any]:
        return [getattr(self, k) for k in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in self.keys()]

    def to_tuple(self) -> tuple[Any, ...]:
        """The set fields as a tuple (what ``return_dict=False`` returns)."""
        return tuple(self.values())

    def get(self, key: str, default: Any = None) -> Any:
        value = getattr(self, key, None)
        return default if value is None else value

    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(key)
            return getattr(self, key)
        return self.to_tuple()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in {f.name for f in dataclasses.fields(self)}:
            raise KeyError(f"{type(self).__name__} has no field {key!r}")
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """All field names, set or not, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))


@dataclass
class BaseModelOutputWithPastAndCrossAttentions(ModelOutput):
    """Output of the encoder stack."""

    last_hidden_state: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None
    cross_attentions: Any = None


@dataclass
class BaseModelOutputWithPoolingAndCrossAttentions(ModelOutput):
    """Output of ``BertModel``: token states ``(batch, seq, hidden)`` and pooled ``(batch, hidden)``."""

    last_hidden_state: Any = None
    pooler_output: Any = None
    hidden_states: Any = None
    past_key_values: Any = None
    attentions: Any = None
    cross_attentions: Any = None


@dataclass
class BertForPreTrainingOutput(ModelOutput):
    """Output of ``BertForPreTraining``: MLM logits ``(batch, seq, vocab)`` and NSP logits ``(batch, 2)``."""

    loss: Any = None
    prediction_logits: Any = None
    seq_relationship_logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class CausalLMOutputWithCrossAttentions(ModelOutput):
    """Output of ``BertLMHeadModel``: next-token logits and, with ``use_cache``, the KV cache."""

    loss: Any = None
    logits: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None
    cross_attentions: Any = None


@dataclass
class MaskedLMOutput(ModelOutput):
    """Output of ``BertForMaskedLM``: logits ``(batch, seq, vocab)``."""

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class NextSentencePredictorOutput(ModelOutput):
    """Output of ``BertForNextSentencePrediction``: logits ``(batch, 2)``."""

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class SequenceClassifierOutput(ModelOutput):
    """Output of ``BertForSequenceClassification``: logits ``(batch, num_labels)``."""

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class MultipleChoiceModelOutput(ModelOutput):
    """Output of ``BertForMultipleChoice``: logits ``(batch, num_choices)``."""

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class TokenClassifierOutput(ModelOutput):
    """Output of ``BertForTokenClassification``: logits ``(batch, seq, num_labels)``."""

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    """Output of ``BertForQuestionAnswering``: span logits ``(batch, seq)`` each."""

    loss: Any = None
    start_logits: Any = None
    end_logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


OUTPUT_CLASSES: tuple[type[ModelOutput], ...] = (
    BaseModelOutputWithPastAndCrossAttentions,
    BaseModelOutputWithPoolingAndCrossAttentions,
    BertForPreTrainingOutput,
    CausalLMOutputWithCrossAttentions,
    MaskedLMOutput,
    NextSentencePredictorOutput,
    SequenceClassifierOutput,
    MultipleChoiceModelOutput,
    TokenClassifierOutput,
    QuestionAnsweringModelOutput,
)
