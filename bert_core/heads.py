"""The head registry: one declarative row per BERT head, shared by the backends, Auto classes and the CLI.

A head's *name* (``"masked-lm"``) is what users type on the command line; its
``class_name`` is the unprefixed class every backend exports (``BertForMaskedLM``);
``bert_tf`` prefixes ``TF`` and ``bert_flax`` prefixes ``Flax`` (with
``FlaxBertForCausalLM`` where the others say ``BertLMHeadModel``).

Each row also says what the head *is* — which encoder output it reads, whether
the encoder keeps its pooler, the dropout before the classifier, the module it
adds, its loss and labels, its output class and tied keys — so each backend
builds its nine classes from this table with one generic builder instead of
nine hand-written classes (see ``docs/architecture.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import outputs as _out
from .errors import ConfigError

__all__ = [
    "Head",
    "HEADS",
    "LOSSES",
    "MODULES",
    "TIED_KEYS",
    "INPUT_ARGS",
    "ENCODER_ARGS",
    "CACHE_ARGS",
    "FLAG_ARGS",
    "get_head",
    "head_for_config",
    "head_for_class_name",
]

#: The decoder of the masked-LM prediction head shares the word embeddings (when
#: ``config.tie_word_embeddings``) and its bias is the prediction head's ``bias``.
TIED_KEYS: dict[str, str] = {
    "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
}

#: Head modules, by the attribute name the checkpoint uses, with what they compute:
#: ``cls`` / pretraining: ``(prediction_logits, seq_relationship_logits)`` from ``(sequence, pooled)``;
#: ``cls`` / mlm: vocabulary logits from ``sequence``; ``cls`` / nsp: 2 logits from ``pooled``;
#: ``classifier``: ``Dense(out_features)`` after dropout; ``qa_outputs``: ``Dense(2)`` split into start/end.
MODULES = ("none", "pretraining", "mlm", "nsp", "classifier", "qa_outputs")

#: Loss kinds (each backend's ``losses.py`` implements each, named ``<kind>_loss``):
#: ``masked_lm`` cross-entropy ignoring -100; ``causal_lm`` the same on labels shifted left by one;
#: ``pretraining`` masked_lm(prediction) + masked_lm(seq_relationship, next_sentence_label) when both
#: labels are given; ``next_sentence`` cross-entropy; ``sequence_classification`` by ``problem_type``
#: (inferred from num_labels and the labels' dtype as transformers 4.x); ``multiple_choice`` and
#: ``token_classification`` cross-entropy ignoring -100; ``question_answering`` the mean of the start
#: and end cross-entropies, positions clamped to ``[0, seq]`` and ``seq`` ignored.
LOSSES = ("none", "masked_lm", "causal_lm", "pretraining", "next_sentence", "sequence_classification",
          "multiple_choice", "token_classification", "question_answering")


#: The forward arguments every model takes first, then (per head) the cross-attention inputs,
#: the labels, the cache arguments and the output flags: the transformers 4.x order.
INPUT_ARGS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "head_mask", "inputs_embeds")
ENCODER_ARGS = ("encoder_hidden_states", "encoder_attention_mask")
CACHE_ARGS = ("past_key_values", "use_cache")
FLAG_ARGS = ("output_attentions", "output_hidden_states", "return_dict")


@dataclass(frozen=True)
class Head:
    """One BERT head, as data.

    Attributes:
        name: CLI / registry name.
        class_name: unprefixed model class name exported by every backend.
        auto_name: the ``AutoModelFor*`` class that picks it.
        output: the output class it returns.
        logits: the output fields a parity check compares.
        flax_class_name: the Flax wrapper's name (differs for the causal LM).
        module: the head module it adds (one of :data:`MODULES`).
        pooler: whether the encoder ``bert`` keeps its pooler (``add_pooling_layer``).
        reads: what the head module reads: ``"sequence"`` (last hidden state), ``"pooled"``
            (pooler output) or ``"both"``.
        dropout: a dropout of ``classifier_dropout`` (else ``hidden_dropout_prob``) before the module.
        out_features: the classifier's width: ``"num_labels"``, or an int (1 for multiple choice).
        loss: the loss kind (one of :data:`LOSSES`).
        labels: the label arguments of ``forward``/``call``, in order.
        choices: inputs carry a choices axis ``(batch, choices, seq)`` that is flattened for the
            encoder and folded back into the logits ``(batch, choices)``.
        decoder: forward takes ``past_key_values`` and ``use_cache`` (the causal LM).
        cross_attention: forward takes ``encoder_hidden_states`` and ``encoder_attention_mask``.
        tied_keys: checkpoint keys that may be absent because they share another key's tensor.
    """

    name: str
    class_name: str
    auto_name: str
    output: type
    logits: tuple[str, ...]
    flax_class_name: str = ""
    module: str = "none"
    pooler: bool = True
    reads: str = "sequence"
    dropout: bool = False
    out_features: int | str = "num_labels"
    loss: str = "none"
    labels: tuple[str, ...] = ()
    choices: bool = False
    decoder: bool = False
    cross_attention: bool = False
    tied_keys: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.module not in MODULES or self.loss not in LOSSES or self.reads not in ("sequence", "pooled", "both"):
            raise ConfigError(f"head {self.name!r}: bad module/loss/reads {self.module!r}/{self.loss!r}/{self.reads!r}")

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def tf_class_name(self) -> str:
        return "TF" + self.class_name

    @property
    def flax_name(self) -> str:
        return self.flax_class_name or "Flax" + self.class_name

    @property
    def forward_args(self) -> tuple[str, ...]:
        """The transformers 4.x forward arguments in order, before any framework extra (``training``...)."""
        return (INPUT_ARGS + (ENCODER_ARGS if self.cross_attention else ()) + self.labels
                + (CACHE_ARGS if self.decoder else ()) + FLAG_ARGS)

    @property
    def loss_reads_padding(self) -> bool:
        """Whether the loss reads per-token logits, padded positions included (question answering's softmax runs
        over the whole sequence): a call given labels then keeps the padded path (:mod:`bert_core.unpad`)."""
        return self.reads != "pooled"

    def num_outputs(self, config) -> int:
        """The classifier's width for ``config``."""
        return config.num_labels if self.out_features == "num_labels" else int(self.out_features)


_MLM_TIES = dict(TIED_KEYS)

HEADS: dict[str, Head] = {
    h.name: h
    for h in (
        Head("base", "BertModel", "AutoModel", _out.BaseModelOutputWithPoolingAndCrossAttentions,
             ("last_hidden_state", "pooler_output"), cross_attention=True, decoder=True),
        Head("pretraining", "BertForPreTraining", "AutoModelForPreTraining", _out.BertForPreTrainingOutput,
             ("prediction_logits", "seq_relationship_logits"), module="pretraining", reads="both",
             loss="pretraining", labels=("labels", "next_sentence_label"), tied_keys=_MLM_TIES),
        Head("causal-lm", "BertLMHeadModel", "AutoModelForCausalLM", _out.CausalLMOutputWithCrossAttentions,
             ("logits",), flax_class_name="FlaxBertForCausalLM", module="mlm", pooler=False, loss="causal_lm",
             labels=("labels",), decoder=True, cross_attention=True, tied_keys=_MLM_TIES),
        Head("masked-lm", "BertForMaskedLM", "AutoModelForMaskedLM", _out.MaskedLMOutput, ("logits",),
             module="mlm", pooler=False, loss="masked_lm", labels=("labels",), cross_attention=True,
             tied_keys=_MLM_TIES),
        Head("next-sentence", "BertForNextSentencePrediction", "AutoModelForNextSentencePrediction",
             _out.NextSentencePredictorOutput, ("logits",), module="nsp", reads="pooled", loss="next_sentence",
             labels=("labels",)),
        Head("sequence-classification", "BertForSequenceClassification", "AutoModelForSequenceClassification",
             _out.SequenceClassifierOutput, ("logits",), module="classifier", reads="pooled", dropout=True,
             loss="sequence_classification", labels=("labels",)),
        Head("multiple-choice", "BertForMultipleChoice", "AutoModelForMultipleChoice",
             _out.MultipleChoiceModelOutput, ("logits",), module="classifier", reads="pooled", dropout=True,
             out_features=1, loss="multiple_choice", labels=("labels",), choices=True),
        Head("token-classification", "BertForTokenClassification", "AutoModelForTokenClassification",
             _out.TokenClassifierOutput, ("logits",), module="classifier", pooler=False, dropout=True,
             loss="token_classification", labels=("labels",)),
        Head("question-answering", "BertForQuestionAnswering", "AutoModelForQuestionAnswering",
             _out.QuestionAnsweringModelOutput, ("start_logits", "end_logits"), module="qa_outputs",
             pooler=False, out_features=2, loss="question_answering",
             labels=("start_positions", "end_positions")),
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
