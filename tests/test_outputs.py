"""Output classes: the same fields, order and tuple/dict behaviour as `transformers`' outputs."""

from __future__ import annotations

import dataclasses

import pytest
import transformers.modeling_outputs as hf_outputs
import transformers.models.bert.modeling_bert as hf_bert

import bert_core
from bert_core import HEADS, get_head, head_for_class_name, head_for_config, BertConfig, ConfigError


# transformers 5.x renamed the 4.x field `past_key_values` to `cache`; tribert keeps the 4.x name.
RENAMED_IN_5X = {"cache": "past_key_values"}


def _reference(cls):
    return getattr(hf_outputs, cls.__name__, None) or getattr(hf_bert, cls.__name__)


def _ref_kwargs(values):
    inverse = {v: k for k, v in RENAMED_IN_5X.items()}
    return {inverse.get(k, k): v for k, v in values.items()}


@pytest.mark.parametrize("cls", bert_core.outputs.OUTPUT_CLASSES, ids=lambda c: c.__name__)
def test_fields_match_transformers(cls):
    ours = [f.name for f in dataclasses.fields(cls)]
    ref = [RENAMED_IN_5X.get(f.name, f.name) for f in dataclasses.fields(_reference(cls))]
    assert ours == ref


@pytest.mark.parametrize("cls", bert_core.outputs.OUTPUT_CLASSES, ids=lambda c: c.__name__)
def test_indexing_and_tuples_behave_like_transformers(cls):
    names = cls.field_names()
    # Leave the first field unset so position 0 must skip it, as in transformers.
    values = {name: f"v{i}" for i, name in enumerate(names) if i != 0}
    ours, ref = cls(**values), _reference(cls)(**_ref_kwargs(values))
    assert ours.to_tuple() == ref.to_tuple()
    assert list(ours.keys()) == [RENAMED_IN_5X.get(k, k) for k in ref.keys()]
    assert ours[0] == ref[0] and ours[-1] == ref[-1] and ours[1:] == ref[1:]
    for name in values:
        assert ours[name] == getattr(ours, name) == ref[_ref_kwargs({name: 0}).popitem()[0]]
    with pytest.raises(KeyError):
        ours[names[0]]
    assert len(ours) == len(values) == len(ref)


def test_prefixed_pretraining_output_names():
    assert bert_core.TFBertForPreTrainingOutput is bert_core.BertForPreTrainingOutput
    assert bert_core.FlaxBertForPreTrainingOutput is bert_core.BertForPreTrainingOutput


def test_head_registry_names_transformers_classes():
    for head in HEADS.values():
        assert hasattr(hf_bert, head.class_name), head.class_name
        assert head.output in bert_core.outputs.OUTPUT_CLASSES
        assert set(head.logits) <= set(head.output.field_names())
    assert head_for_class_name("TFBertForMaskedLM").name == "masked-lm"
    assert head_for_class_name("FlaxBertForCausalLM").name == "causal-lm"
    assert head_for_config(BertConfig(architectures=["BertForQuestionAnswering"])).name == "question-answering"
    assert head_for_config(BertConfig()).name == "base"
    with pytest.raises(ConfigError, match="unknown head 'mlm'"):
        get_head("mlm")
