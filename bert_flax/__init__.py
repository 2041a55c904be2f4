"""Flax linen implementation of tribert's BERT.

Linen modules (``FlaxBertModule``, ``FlaxBertForMaskedLMModule``, ...) are the
building blocks; the stateful wrappers (``FlaxBertModel``,
``FlaxBertForMaskedLM``, ...) hold ``module`` and ``params`` and load/save the
canonical checkpoint. Every class is also exported without the ``Flax`` prefix
(``BertLMHeadModel`` is ``FlaxBertForCausalLM``). Importing this package imports
jax, flax and optax only (never torch or tensorflow).
"""

from bert_core._version import __version__  # noqa: F401  (one version for every package)

from bert_core._lazy import require as _require

_require("jax")
_require("flax")

from bert_core import FlaxBertForPreTrainingOutput  # noqa: E402
from bert_core.outputs import *  # noqa: E402,F401,F403
from bert_core.outputs import __all__ as _output_names  # noqa: E402

from ._pytree import register_output_pytrees  # noqa: E402

register_output_pytrees()

from .activations import ACT2FN, get_activation  # noqa: E402
from .attention import (FlaxBertAttention, FlaxBertSelfAttention, FlaxBertSelfOutput, eager_attention,  # noqa: E402
                        fused_attention, make_attention_bias)
from .embeddings import FlaxBertEmbeddings  # noqa: E402
from .encoder import FlaxBertEncoder, FlaxBertIntermediate, FlaxBertLayer, FlaxBertOutput  # noqa: E402
from .generation import greedy_search  # noqa: E402
from .heads import (FlaxBertLMPredictionHead, FlaxBertOnlyMLMHead, FlaxBertOnlyNSPHead, FlaxBertPooler,  # noqa: E402
                    FlaxBertPredictionHeadTransform, FlaxBertPreTrainingHeads)
from .base import FlaxBertPreTrainedModel  # noqa: E402
from .models import (FlaxBertForCausalLMModule, FlaxBertForMaskedLMModule, FlaxBertForMultipleChoiceModule,  # noqa: E402
                     FlaxBertForNextSentencePredictionModule, FlaxBertForPreTrainingModule,
                     FlaxBertForQuestionAnsweringModule, FlaxBertForSequenceClassificationModule,
                     FlaxBertForTokenClassificationModule, FlaxBertModule)
from .models import (FlaxBertForCausalLM, FlaxBertForMaskedLM, FlaxBertForMultipleChoice,  # noqa: E402
                     FlaxBertForNextSentencePrediction, FlaxBertForPreTraining, FlaxBertForQuestionAnswering,
                     FlaxBertForSequenceClassification, FlaxBertForTokenClassification, FlaxBertModel)
from .scan import scan_to_unscanned_params, unscanned_to_scan_params  # noqa: E402
from .training import TrainState, create_optimizer, decay_mask, make_train_step, mask_tokens  # noqa: E402
from .auto import (FlaxAutoModel, FlaxAutoModelForCausalLM, FlaxAutoModelForMaskedLM,  # noqa: E402
                   FlaxAutoModelForMultipleChoice, FlaxAutoModelForNextSentencePrediction,
                   FlaxAutoModelForPreTraining, FlaxAutoModelForQuestionAnswering,
                   FlaxAutoModelForSequenceClassification, FlaxAutoModelForTokenClassification)

# The unprefixed names, so code can be written once across backends.
BertModel = FlaxBertModel
BertForPreTraining = FlaxBertForPreTraining
BertLMHeadModel = FlaxBertForCausalLM
BertForCausalLM = FlaxBertForCausalLM
BertForMaskedLM = FlaxBertForMaskedLM
BertForNextSentencePrediction = FlaxBertForNextSentencePrediction
BertForSequenceClassification = FlaxBertForSequenceClassification
BertForMultipleChoice = FlaxBertForMultipleChoice
BertForTokenClassification = FlaxBertForTokenClassification
BertForQuestionAnswering = FlaxBertForQuestionAnswering
AutoModel = FlaxAutoModel
AutoModelForPreTraining = FlaxAutoModelForPreTraining
AutoModelForCausalLM = FlaxAutoModelForCausalLM
AutoModelForMaskedLM = FlaxAutoModelForMaskedLM
AutoModelForNextSentencePrediction = FlaxAutoModelForNextSentencePrediction
AutoModelForSequenceClassification = FlaxAutoModelForSequenceClassification
AutoModelForMultipleChoice = FlaxAutoModelForMultipleChoice
AutoModelForTokenClassification = FlaxAutoModelForTokenClassification
AutoModelForQuestionAnswering = FlaxAutoModelForQuestionAnswering

from .pipeline import pipeline  # noqa: E402

__all__ = [
    "pipeline",
    # wrappers
    "FlaxBertPreTrainedModel", "FlaxBertModel", "FlaxBertForPreTraining", "FlaxBertForCausalLM",
    "FlaxBertForMaskedLM", "FlaxBertForNextSentencePrediction", "FlaxBertForSequenceClassification",
    "FlaxBertForMultipleChoice", "FlaxBertForTokenClassification", "FlaxBertForQuestionAnswering",
    # unprefixed aliases
    "BertModel", "BertForPreTraining", "BertLMHeadModel", "BertForCausalLM", "BertForMaskedLM",
    "BertForNextSentencePrediction", "BertForSequenceClassification", "BertForMultipleChoice",
    "BertForTokenClassification", "BertForQuestionAnswering",
    # auto classes
    "FlaxAutoModel", "FlaxAutoModelForPreTraining", "FlaxAutoModelForCausalLM", "FlaxAutoModelForMaskedLM",
    "FlaxAutoModelForNextSentencePrediction", "FlaxAutoModelForSequenceClassification",
    "FlaxAutoModelForMultipleChoice", "FlaxAutoModelForTokenClassification", "FlaxAutoModelForQuestionAnswering",
    "AutoModel", "AutoModelForPreTraining", "AutoModelForCausalLM", "AutoModelForMaskedLM",
    "AutoModelForNextSentencePrediction", "AutoModelForSequenceClassification", "AutoModelForMultipleChoice",
    "AutoModelForTokenClassification", "AutoModelForQuestionAnswering",
    # linen modules
    "FlaxBertModule", "FlaxBertForPreTrainingModule", "FlaxBertForCausalLMModule", "FlaxBertForMaskedLMModule",
    "FlaxBertForNextSentencePredictionModule", "FlaxBertForSequenceClassificationModule",
    "FlaxBertForMultipleChoiceModule", "FlaxBertForTokenClassificationModule", "FlaxBertForQuestionAnsweringModule",
    "FlaxBertEmbeddings", "FlaxBertSelfAttention", "FlaxBertSelfOutput", "FlaxBertAttention",
    "FlaxBertIntermediate", "FlaxBertOutput", "FlaxBertLayer", "FlaxBertEncoder", "FlaxBertPooler",
    "FlaxBertPredictionHeadTransform", "FlaxBertLMPredictionHead", "FlaxBertOnlyMLMHead", "FlaxBertOnlyNSPHead",
    "FlaxBertPreTrainingHeads",
    # functions
    "ACT2FN", "get_activation", "eager_attention", "fused_attention", "make_attention_bias", "greedy_search",
    "scan_to_unscanned_params", "unscanned_to_scan_params", "register_output_pytrees",
    "TrainState", "create_optimizer", "decay_mask", "make_train_step", "mask_tokens",
    # outputs
    "FlaxBertForPreTrainingOutput", *_output_names,
]
